"""Monophone GMM-HMM training and forced alignment on the tiny corpus."""

import json

import numpy as np
import pytest
from lhotse import CutSet

from asr_kd.gmm.labels import read_pdf_counts
from asr_kd.gmm.mono import MonoConfig

TINY_MONO = MonoConfig(num_iters=8, max_iter_inc=5, realign_iters=(1, 2, 3, 4, 5, 6), total_gauss=150)


@pytest.fixture(scope="module")
def aligned(tiny_features, tmp_path_factory):
    from asr_kd.stages.align import train_and_align
    from asr_kd.lang.lexicon import build_lexicon
    from asr_kd.lang.prepare_lang import prepare_lang
    from asr_kd.data.synth.digits import DIGIT_WORDS

    root = tmp_path_factory.mktemp("align")
    lex, _ = build_lexicon([w.upper() for w in DIGIT_WORDS], g2p_voices=["en-us", "en"])
    prepare_lang(lex, root / "lang")
    summary = train_and_align(
        tiny_features / "fbank",
        "digits",
        ["train", "dev", "test"],
        lang_dir=root / "lang",
        exp_dir=root / "exp",
        cfg=TINY_MONO,
        nj=2,
        held_out_accents=("en-gb-scotland", "en-029"),
    )
    return root, summary


def test_likelihood_rises_during_training(aligned):
    root, _ = aligned
    history = json.loads((root / "exp" / "train_history.json").read_text())
    likes = [h["log_like"] for h in history]
    assert len(likes) == TINY_MONO.num_iters
    assert likes[-1] > likes[1] > likes[0]
    for a, b in zip(likes[1:], likes[2:]):
        assert b >= a - 0.05, likes  # Viterbi EM: non-decreasing up to small noise from realignment


def test_labels_cover_every_frame_of_every_cut(aligned, tiny_features):
    root, summary = aligned
    for split in ("train", "dev", "test"):
        cuts = CutSet.from_file(root / "exp" / f"digits_{split}_cuts.jsonl.gz")
        failed = (root / "exp" / f"digits_{split}_failed.txt").read_text().split()
        feats = CutSet.from_file(tiny_features / "fbank" / f"digits_cuts_{split}.jsonl.gz")
        assert len(cuts) + len(failed) == len(feats)
        for cut in cuts:
            pdf, phone, tid = cut.load_pdf_ali(), cut.load_phone_ali(), cut.load_tid_ali()
            assert len(pdf) == len(phone) == len(tid) == cut.num_frames == cut.load_features().shape[0]
            assert pdf.min() >= 0 and pdf.max() < summary["num_pdfs"]


def test_pdf_counts_and_map(aligned):
    root, summary = aligned
    counts = read_pdf_counts(root / "exp" / "pdf_counts.txt")
    assert len(counts) == summary["num_pdfs"] and counts.sum() > 0
    pdf2phone = dict(line.split() for line in (root / "exp" / "pdf_to_phone.txt").read_text().splitlines())
    assert len(pdf2phone) == summary["num_pdfs"]
    assert sum(1 for p in pdf2phone.values() if p == "SIL") == 5


def test_log_priors_are_the_training_alignment_pdf_counts(aligned):
    """Hybrid priors (decode, realignment) come from the training split's labels, nothing else."""
    from asr_kd.hybrid.likelihoods import log_priors

    root, summary = aligned
    counts = np.zeros(summary["num_pdfs"], np.int64)
    for cut in CutSet.from_file(root / "exp" / "digits_train_cuts.jsonl.gz"):
        counts += np.bincount(cut.load_pdf_ali(), minlength=summary["num_pdfs"])
    stored = read_pdf_counts(root / "exp" / "pdf_counts.txt")
    assert stored.tolist() == counts.tolist()
    priors = log_priors(stored)
    seen = counts > 0
    assert np.allclose(priors[seen], np.log(counts[seen] / counts.sum()), atol=1e-6)
    assert np.exp(priors[seen]).sum() == pytest.approx(1.0, abs=1e-5)
    assert (priors[~seen] <= np.log(1e-8) + 1e-6).all()  # unseen pdfs get the floor, not -inf


def test_report_and_picture(aligned):
    root, summary = aligned
    report = json.loads((root / "exp" / "alignment_report.json").read_text())
    for split in ("train", "dev", "test"):
        r = report["splits"][split]["all"]
        # measured on this tiny corpus: frame phone agreement 0.58 / 0.79 / 0.68 (train / dev / test);
        # labels that ignore the audio (or a phone map off by one) fall far below half
        assert r["frame_agreement"] > 0.5, (split, r)
    assert report["splits"]["train"]["all"]["boundary_accuracy"] > 0.3  # measured 0.41
    test = report["splits"]["test"]
    assert test["seen_accents"]["utterances"] + test["held_out_accents"]["utterances"] == test["all"]["utterances"]
    for groups in report["splits"].values():
        assert all(g["utterances"] < groups["all"]["utterances"] for name, g in groups.items() if name != "all")
    png = root / "exp" / "alignment_example.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_subsets_by_accent_and_recording_condition():
    from asr_kd.align.report import subsets_of

    clean = {"accent": "en-029", "degradation": {"noise": None, "reverb_rt60": None}}
    assert subsets_of(clean, ["en-029"]) == ["held_out_accents", "no_added_noise"]
    noisy = {"accent": "en-us", "degradation": {"noise": {"snr_db": 4.9}, "reverb_rt60": 0.4}}
    assert subsets_of(noisy, ["en-029"]) == ["seen_accents", "snr_below_5db", "reverberant"]
    assert subsets_of({"degradation": {"noise": {"snr_db": 5.0}, "reverb_rt60": None}}) == []
    assert subsets_of({}) == []  # real corpora: no subsets


def test_reference_config_is_the_flat_start_config_with_overrides(tmp_path):
    from asr_kd.gmm.mono import MonoConfig
    from asr_kd.utils.config import section

    path = tmp_path / "c.yaml"
    path.write_text("mono:\n  total_gauss: 300\n  use_deltas: false\nmono_reference:\n  use_deltas: true\n")
    flat, ref = section(path, "mono", MonoConfig), section(path, "mono_reference", MonoConfig, base="mono")
    assert (flat.total_gauss, flat.use_deltas) == (300, False)
    assert (ref.total_gauss, ref.use_deltas) == (300, True)
    path.write_text("mono:\n  total_gauss: 300\nmono_reference:\n  no_such_key: 1\n")
    with pytest.raises(ValueError, match="no_such_key"):
        section(path, "mono_reference", MonoConfig, base="mono")


def test_transcript_with_oov_word_is_rejected_before_training(aligned):
    from asr_kd.gmm.mono import GmmAligner

    root, _ = aligned
    aligner = GmmAligner(root / "lang", TINY_MONO, nj=1)
    with pytest.raises(ValueError, match=r"utterance bad-utt: word\(s\) \['ELEVEN'\]"):
        aligner.set_data({"bad-utt": np.zeros((50, 39), np.float32)}, {"bad-utt": "ONE ELEVEN"})


def test_one_hot_loglikes_from_an_alignment_realign_to_it(aligned, tiny_features):
    """Hybrid-style alignment through DecodableCtc (one column per transition-id) gives back the
    GMM's own alignment when the log-likelihoods are one-hot on its pdfs."""
    from asr_kd.align.dnn_align import align_with_loglikes
    from asr_kd.gmm.mono import GmmAligner

    root, summary = aligned
    aligner = GmmAligner.load(root / "exp" / "final.mdl", root / "lang")
    cuts = CutSet.from_file(root / "exp" / "digits_dev_cuts.jsonl.gz").to_eager()
    loglikes = {}
    for cut in cuts:
        pdf = cut.load_pdf_ali()
        m = np.full((len(pdf), summary["num_pdfs"]), -20.0, np.float32)
        m[np.arange(len(pdf)), pdf] = 0.0
        loglikes[cut.id] = m
    ali, failed, _ = align_with_loglikes(aligner, cuts, loglikes, acoustic_scale=1.0)
    assert not failed
    id2pdf = np.asarray(aligner.tm.id2pdf_id)
    for cut in cuts:
        assert np.array_equal(id2pdf[np.asarray(ali[cut.id])], cut.load_pdf_ali()), cut.id


def test_training_is_reproducible(aligned, tiny_features, tmp_path):
    """A rerun gives the same model: Gaussian splitting must not use an unseeded generator."""
    from asr_kd.stages.align import train_and_align

    root, _ = aligned
    train_and_align(
        tiny_features / "fbank",
        "digits",
        ["train"],
        lang_dir=root / "lang",
        exp_dir=tmp_path / "again",
        cfg=TINY_MONO,
        nj=2,
    )
    first = json.loads((root / "exp" / "train_history.json").read_text())
    again = json.loads((tmp_path / "again" / "train_history.json").read_text())
    assert [h["log_like"] for h in first] == [h["log_like"] for h in again]
    assert (root / "exp" / "pdf_counts.txt").read_text() == (tmp_path / "again" / "pdf_counts.txt").read_text()


def test_phone_segments_agree_with_frame_labels(aligned):
    """Phone segments (boundaries for the report and the picture) tile the utterance and every frame
    of a segment carries that segment's phone: the training graphs are reordered, so a phone's
    exit transition is followed by its last state's self-loops, which still belong to it."""

    from asr_kd.gmm.labels import label_maps, phone_segments
    from asr_kd.gmm.mono import GmmAligner

    root, _ = aligned
    aligner = GmmAligner.load(root / "exp" / "final.mdl", root / "lang")
    maps = label_maps(aligner.tm)
    trailing_self_loops = 0
    for cut in CutSet.from_file(root / "exp" / "digits_dev_cuts.jsonl.gz"):
        tids, phones = cut.load_tid_ali(), cut.load_phone_ali()
        segs = phone_segments(tids, maps)
        assert segs[0][1] == 0 and segs[-1][2] == len(tids)
        assert all(a[2] == b[1] for a, b in zip(segs, segs[1:]))
        for p, s, e in segs:
            assert (phones[s:e] == p).all(), (cut.id, p, s, e)
            assert maps["final"][tids[s:e]].sum() == 1
        trailing_self_loops += sum(1 for t, u in zip(tids, tids[1:]) if maps["final"][t] and maps["self_loop"][u])
    assert trailing_self_loops > 0  # the alignments are reordered, so the case above is exercised


def test_oracle_labels_and_the_oracle_trained_reference(aligned, tiny_features, tmp_path):
    """Labels from oracle phone times put every oracle phone frame in that phone; the GMM trained on
    them (the reference of the alignment report) then aligns closer to the oracle than the flat start."""

    from asr_kd.gmm.labels import label_maps
    from asr_kd.gmm.mono import GmmAligner
    from asr_kd.stages.align import train_oracle_reference
    from asr_kd.data.features import feature_cuts_path

    root, flat = aligned
    aligner = GmmAligner.load(root / "exp" / "final.mdl", root / "lang")
    maps = label_maps(aligner.tm)
    pdf2phone = {int(maps["pdf"][t]): aligner.lang.id2phone[int(maps["phone"][t])] for t in range(1, len(maps["pdf"]))}
    usable = 0
    cuts = CutSet.from_file(feature_cuts_path(tiny_features / "fbank", "digits", "train"))
    for cut in cuts:
        lab = aligner.oracle_pdf_labels(cut)
        if lab is None:
            continue
        usable += 1
        assert len(lab) == cut.num_frames
        centres = (np.arange(cut.num_frames) + 0.5) * 0.01
        labelled = np.array([pdf2phone[p] for p in lab])
        for a in cut.supervisions[0].alignment["phone"]:
            inside = (centres >= a.start) & (centres < a.end)
            assert (labelled[inside] == a.symbol).all(), (cut.id, a.symbol)
        assert labelled[0] == labelled[-1] == "SIL"
    assert usable >= 0.8 * len(cuts)
    ref = train_oracle_reference(
        tiny_features / "fbank",
        "digits",
        ["train", "dev", "test"],
        lang_dir=root / "lang",
        exp_dir=tmp_path / "ref",
        cfg=TINY_MONO,
        nj=2,
    )
    assert (tmp_path / "ref" / "alignment_report.md").is_file()
    got = ref["report"]["train"]["all"]["boundary_accuracy"]
    assert got > flat["report"]["train"]["all"]["boundary_accuracy"] + 0.05 and got > 0.6, got


def test_alignment_failures_reach_the_user_as_one_line(monkeypatch, caplog, tmp_path):
    """The CLI's error path (the aligner itself is exercised above): no traceback, one line, exit 1."""
    import asr_kd.cli.align as align_commands
    from asr_kd.cli import main
    from asr_kd.gmm.mono import AlignmentFailures

    def no_alignment(*args, **kwargs):
        raise AlignmentFailures("no utterance could be aligned: nothing to train on")

    monkeypatch.setattr(align_commands, "train_and_align", no_alignment)
    rc = main(
        [
            "train-mono",
            "--fbank-dir",
            str(tmp_path),
            "--corpus",
            "digits",
            "--lang",
            str(tmp_path),
            "--exp",
            str(tmp_path / "exp"),
        ]
    )
    assert rc == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["AlignmentFailures: no utterance could be aligned: nothing to train on"]
