"""Specialist models (Hinton, Vinyals & Dean 2015, section 5): confusable-class clusters from a
generalist's predictions, specialists with a dustbin class, and KL-combined inference. Generic over
class posteriors: image classes or speech HMM states alike."""
