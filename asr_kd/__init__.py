"""asr_kd: Kaldi-style knowledge distillation of speech acoustic models.

Layout (one responsibility per module):
  asr_kd.data      corpora (synthetic digits, user corpora), lhotse manifests, features
  asr_kd.utils     atomic writes, stage markers, logging, configs, seeding
  asr_kd.cli       the command line; each subcommand is one Python function
"""
__version__ = "0.1.0"
