"""Layer 9 (experiments, beside specialists): the paper's speech experiment: ensemble soft targets, training
baselines, members and students, and the frame-accuracy tables (5a-5d)."""
