"""Layer 7: result tables with their uncertainty: bootstrap intervals and paired comparisons
(significance), the WER table of a decode, and the alignment comparison."""
