import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# tests/k2_lane run in the k2 lane (tools/k2_lane.sh: Python 3.9, torch 1.13.1, k2 1.23.4); the main
# environment has no k2, so they are not collected there (rather than reported as skipped).
_k2 = importlib.util.find_spec("k2")
collect_ignore_glob = [] if _k2 is not None and _k2.origin else ["k2_lane/*"]

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
    cuts = compute_fbank(
        root / "manifests", root / "fbank", "digits", splits=["train", "dev", "test"], cfg=FeatureConfig(), num_jobs=1
    )
    compute_cmvn(cuts, "global").save(root / "fbank" / "cmvn.npz")
    return root


@pytest.fixture(scope="session")
def tiny_graph(tmp_path_factory, tiny_features):
    """lang, a small monophone GMM (exp) and HCLG (graph) over the tiny corpus: (root, build info)."""

    from asr_kd.gmm.mono import MonoConfig
    from asr_kd.stages.align import train_and_align
    from asr_kd.data.synth.digits import DIGIT_WORDS
    from asr_kd.decode.search import build_graph
    from asr_kd.lang.lexicon import build_lexicon
    from asr_kd.lang.prepare_lang import prepare_lang

    root = tmp_path_factory.mktemp("decode")
    lex, _ = build_lexicon([w.upper() for w in DIGIT_WORDS], g2p_voices=["en-us"])
    prepare_lang(lex, root / "lang")
    train_and_align(
        tiny_features / "fbank",
        "digits",
        ["train", "dev", "test"],
        lang_dir=root / "lang",
        exp_dir=root / "exp",
        cfg=MonoConfig(num_iters=6, max_iter_inc=4, realign_iters=(1, 2, 3, 4), total_gauss=120),
        nj=1,
    )
    info = build_graph(
        root / "lang", root / "exp", tiny_features / "manifests", corpus="digits", graph_dir=root / "graph", lm_order=2
    )
    return root, info


def oracle_loglikes(ali_dir, tm, split: str = "test"):
    """One-hot log-likelihoods from the forced alignment of ``split``: (cuts, {cut id: frames x pdfs})."""
    import numpy as np
    from lhotse import CutSet

    cuts = CutSet.from_file(Path(ali_dir) / f"digits_{split}_cuts.jsonl.gz").to_eager()
    loglikes = {}
    for cut in cuts:
        pdf = cut.load_pdf_ali()
        m = np.full((len(pdf), tm.num_pdfs), -30.0, np.float32)
        m[np.arange(len(pdf)), pdf] = 0.0
        loglikes[cut.id] = m
    return cuts, loglikes


@pytest.fixture(scope="session")
def tiny_tri_graph(tiny_graph, tiny_features):
    """tri1 (a small triphone tree) from ``tiny_graph``'s monophone alignments, and its context-dependent
    HCLG: (root, exp dir, graph info)."""
    from asr_kd.stages.align import train_triphone_and_align
    from asr_kd.decode.search import build_graph
    from asr_kd.gmm.configs import TriConfig

    root, _ = tiny_graph
    cfg = TriConfig(
        num_iters=6, max_iter_inc=4, realign_iters=(3, 5), total_gauss=200, num_leaves=50, min_leaf_count=20
    )
    train_triphone_and_align(
        tiny_features / "fbank",
        "digits",
        ["train", "dev", "test"],
        lang_dir=root / "lang",
        prev_dir=root / "exp",
        exp_dir=root / "tri1",
        cfg=cfg,
        nj=2,
    )
    info = build_graph(
        root / "lang",
        root / "tri1",
        tiny_features / "manifests",
        corpus="digits",
        graph_dir=root / "graph_tri1",
        lm_order=2,
    )
    return root, root / "tri1", info


@pytest.fixture(scope="session")
def dnn_on_gmm_labels(tiny_graph, tiny_features):
    """Two small DNNs (seeds 1, 2) trained on the tiny GMM's labels: (root, checkpoints)."""
    from asr_kd.nnet.data import load_split
    from asr_kd.gmm.labels import num_pdfs
    from asr_kd.nnet.models import ModelConfig
    from asr_kd.nnet.train import TrainConfig, train_model

    root, _ = tiny_graph
    ali = root / "exp"
    train = load_split(ali, tiny_features / "fbank", "digits", split="train")
    dev = load_split(ali, tiny_features / "fbank", "digits", split="dev")
    ckpts = []
    for seed in (1, 2):
        train_model(
            train,
            dev,
            num_pdfs(ali),
            out_dir=root / f"dnn{seed}",
            model_cfg=ModelConfig(hidden=64, num_layers=1, context=2),
            cfg=TrainConfig(epochs=2, batch_size=128, lr=0.003),
            seed=seed,
        )
        ckpts.append(str(root / f"dnn{seed}" / "best.pt"))
    return root, ckpts
