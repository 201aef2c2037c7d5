"""Error rates with their uncertainty: bootstrap intervals and paired comparisons."""
