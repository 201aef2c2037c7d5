"""Layer 5, GMM side: cepstral features, training graphs, the GMM-HMM trainer (monophone: flat start,
Viterbi EM, forced alignment), decision trees in Kaldi's formats, the triphone systems (tri1 deltas,
tri2 LDA+MLLT) and the frame labels (pdf-ids) they produce."""
