"""Layer 9 (experiments, below specialists, which read its MNIST data): the paper's image
experiments: MNIST distillation and transfer (``mnist``, ``data``, ``bias``, ``experiment``,
``report``). They share asr_kd's models, losses and training loop with the speech side."""
