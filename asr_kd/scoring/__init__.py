"""Layer 1: uncertainty of error rates: bootstrap intervals of a rate over utterances and seeds, paired
comparisons, and the share of a gain kept (``significance``). Imports nothing of asr_kd."""
