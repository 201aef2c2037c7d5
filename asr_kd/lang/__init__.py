"""Layer 4: lexicons (dictionary, eSpeak G2P, graphemes, BPE), the vocabulary and OOV report, the
lang directory (phones, L.fst, topology) and n-gram LMs."""
