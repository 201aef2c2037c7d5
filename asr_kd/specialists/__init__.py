"""Layer 10 (experiments, beside distill): specialist models (Hinton, Vinyals & Dean 2015,
section 5): confusable-class clusters from a generalist's predictions, specialists with a dustbin
class, and KL-combined inference. Generic over class posteriors (``clusters``, ``combine``,
``training``): image classes (``experiment``) or speech HMM states (``speech``) alike."""
