"""Layer 3: corpora (the embedded digits, yesno, LibriSpeech, TIMIT, any Kaldi data dir or audio
folder) as lhotse manifests, and features (fbank, CMVN)."""
