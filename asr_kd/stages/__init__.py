"""Layer 11: the recipe stages, one module per stage, each driving the libraries below and writing its
table: ``align`` (stage 4: GMM systems and the alignment of every split), ``frame_tables`` (8-11:
frame accuracy, tables 5a-5d), ``realign`` (12: which alignment gives the better DNN), ``decode``
(13: decoding every system, dev tuning, the WER table), ``k2_decode`` (14: k2 beside Kaldi's
decoder), ``deploy`` (15: the deployment table), ``systems`` (16: GMM systems and their labels),
``teaching`` (17-19: the 5e tables and the student's diagnosis). The recipes' run.sh lines call them
through ``python -m asr_kd`` and ``steps/``."""
