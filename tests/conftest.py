import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TINY = dict(train_speakers=3, dev_speakers=2, test_speakers=2, utts_per_speaker=4)


@pytest.fixture(scope="session")
def tiny_config():
    from asr_kd.data.synth.digits import DigitsCorpusConfig

    return DigitsCorpusConfig(**TINY)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory, tiny_config):
    """A tiny embedded corpus, generated once per test session."""
    from asr_kd.data.synth.digits import generate_corpus

    out = tmp_path_factory.mktemp("corpus")
    generate_corpus(tiny_config, out, num_jobs=2)
    return out


@pytest.fixture(scope="session")
def tiny_features(tmp_path_factory, tiny_corpus):
    from asr_kd.data.features import FeatureConfig, compute_cmvn, compute_fbank
    from asr_kd.data.manifests import prepare_digits

    root = tmp_path_factory.mktemp("feats")
    prepare_digits(tiny_corpus, root / "manifests")
    cuts = compute_fbank(root / "manifests", root / "fbank", "digits", ["train", "dev", "test"], FeatureConfig(), num_jobs=1)
    compute_cmvn(cuts, "global").save(root / "fbank" / "cmvn.npz")
    return root
