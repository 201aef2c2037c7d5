"""Layer 6 (beside align): graphs (HCLG), the two search backends side by side (Kaldi's
LatticeFasterDecoder and k2; neither imports the other), WER scoring and the decode stage."""
