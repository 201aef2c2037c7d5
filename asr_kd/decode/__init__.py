"""Layer 7 (beside align): graphs (HCLG), the two search backends side by side (Kaldi's
LatticeFasterDecoder and k2; neither imports the other), lattices and their rescoring, WER scoring,
and the search settings of a decode (``search``: graph building, decode data, lattice store, tuning on
dev). The decode stage that drives them is ``asr_kd.stages.decode``."""
