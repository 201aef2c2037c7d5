"""Image-side experiments of the paper: MNIST distillation and transfer (``mnist``, ``data``,
``bias``) and specialist models. They share asr_kd's models, losses and training loop with the
speech side."""
