"""asr_kd: Kaldi-style knowledge distillation of speech acoustic models.

A layered library; every import points to a lower layer (checked by tests/test_architecture.py):

  10 asr_kd.cli                          the command line (python -m asr_kd ...)
   9 asr_kd.distill | asr_kd.specialists the paper's experiments (speech distillation, specialists)
   8 asr_kd.images                       the MNIST experiments
   7 asr_kd.scoring                      significance, the WER table, the alignment table
   6 asr_kd.align | asr_kd.decode        the alignment stage | graphs, Kaldi and k2 search, WER
   5 asr_kd.hybrid                       priors and hybrid log-likelihoods
   4 asr_kd.gmm | asr_kd.nnet            the monophone GMM-HMM | networks, losses, training
   3 asr_kd.lang                         lexicons, lang directory, LMs
   2 asr_kd.data                         corpora as lhotse manifests, features
   1 asr_kd.kaldi                        the one door to the Kaldi bindings, FST helpers
   0 asr_kd.utils                        atomic writes, kept-work validity, configs, numerics
"""

__version__ = "0.1.0"
