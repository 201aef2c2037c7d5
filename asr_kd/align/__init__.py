"""Layer 7 (beside decode): GMM-HMM training and alignment as a library: the monophone and triphone
systems' inputs, realignment of every split with DNNs (``dnn_align``) and the report of an alignment
against the oracle phone times (``report``). The alignment stage that drives them is ``asr_kd.stages.align``."""
