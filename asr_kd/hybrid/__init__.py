"""Layer 6: hybrid DNN-HMM scoring, the bridge between networks and HMMs: priors from pdf counts
and the (pseudo) log-likelihoods decoders and aligners consume."""
