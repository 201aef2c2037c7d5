"""Layer 5, network side: frame data, models and losses chosen by name, the training loop,
checkpoints, soft-target formats and frame-level evaluation. Knows nothing of GMMs or graphs."""
