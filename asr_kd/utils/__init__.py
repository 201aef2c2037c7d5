"""Layer 0: atomic writes, the validity rule for kept work (keys of inputs), the config loader,
the NaN check, device choice, logging and result-table writing. Imports nothing of asr_kd."""
