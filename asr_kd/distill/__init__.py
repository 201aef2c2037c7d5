"""Layer 10 (experiments, beside specialists): the paper's speech experiment as a library: ensemble soft
targets, training baselines, members and students, and the ways of teaching (online ensemble,
augmented views). Its tables are written by ``asr_kd.stages``."""
