"""Layer 6 (beside decode): the alignment stage (monophone training and alignment of every split,
realignment with DNNs) and its report against the oracle phone times."""
