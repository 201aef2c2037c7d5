"""Layer 4, GMM side: the monophone GMM-HMM (flat start, Viterbi EM, forced alignment), its
features (cepstra + deltas) and the frame labels (pdf-ids) it produces."""
