"""Layer 2: the one door to the Kaldi bindings: every other module takes ``khg`` (kaldi_hmm_gmm) and
``kaldifst`` (and ``kaldi_decoder``, the online FasterDecoder) from here, so the import order that
avoids a silent deadlock is kept in one place: kaldi_hmm_gmm first, then kaldifst and kaldi_decoder;
kaldilm never in-process (``asr_kd.kaldi.fst.arpa_to_fst`` runs it as a subprocess). FST helpers live in ``asr_kd.kaldi.fst``."""

import kaldi_hmm_gmm as khg  # noqa: I001  (first: see the module docstring)
import kaldifst
import kaldi_decoder

__all__ = ["khg", "kaldifst", "kaldi_decoder"]
