"""Alignments compared by the DNNs they train (asr_kd.align.compare), with and without oracle times."""

import shutil

import pytest


def _oracle_phone_accuracy(ckpt, ali_dir, features):
    import torch
    from lhotse import CutSet

    from asr_kd.data.features import FeatureNormalizer
    from asr_kd.nnet.checkpoint import load_model

    model = load_model(ckpt)
    norm = FeatureNormalizer.load(features / "fbank" / "cmvn.npz")
    pdf2phone = dict(line.split() for line in (ali_dir / "pdf_to_phone.txt").read_text().splitlines())
    right = total = 0
    for cut in CutSet.from_file(ali_dir / "digits_test_cuts.jsonl.gz"):
        x = torch.from_numpy(norm.normalize_cut(cut))
        t, c = x.shape[0], model.context
        win = torch.stack([x[min(max(i + k, 0), t - 1)] for i in range(t) for k in range(-c, c + 1)]).view(
            t, 2 * c + 1, -1
        )
        with torch.no_grad():
            pred = model(win).argmax(-1).numpy()
        for i, p in enumerate(pred):
            centre = (i + 0.5) * 0.01
            phone = next((a.symbol for a in cut.supervisions[0].alignment["phone"] if a.start <= centre < a.end), "SIL")
            right += pdf2phone[str(p)] == phone
            total += 1
    return right / total


def _no_times(sup):
    from lhotse.utils import fastcopy

    return fastcopy(sup, alignment=None)


def _without_oracle(src, dst):
    """The alignment folder as a corpus without phone times would have it (LibriSpeech)."""
    from lhotse import CutSet

    shutil.copytree(src, dst)
    (dst / "alignment_report.json").unlink()
    for split in ("train", "dev", "test"):
        path = dst / f"digits_{split}_cuts.jsonl.gz"
        cuts = CutSet.from_cuts(c.map_supervisions(_no_times) for c in CutSet.from_file(path))
        cuts.to_file(path)
    return dst


def test_rows_get_wer_per_seed_and_oracle_figures_only_where_there_are_oracle_times(
    dnn_on_gmm_labels, tiny_features, tmp_path
):
    from asr_kd.stages.realign import AlignmentRow, DecodeSettings, alignment_table_lines, compare_alignments

    root, ckpts = dnn_on_gmm_labels
    plain = _without_oracle(root / "exp", tmp_path / "no_oracle")
    decode = DecodeSettings(
        str(root / "lang"), str(tiny_features / "manifests"), str(root / "graph"), lmwts=(1, 3), penalties=(0.0,)
    )
    rows = [AlignmentRow("with oracle", root / "exp", ckpts), AlignmentRow("no oracle", plain, ckpts[:1])]
    res = compare_alignments(rows, tiny_features / "fbank", "digits", out_dir=tmp_path / "dec", decode=decode)
    assert res[0]["oracle"] is not None and res[0]["oracle"]["frame_agreement"] > 0.5
    assert res[0]["dnn_oracle_phone_accuracy"]["n"] == 2
    # the measure, recomputed independently: per 10 ms frame, the phone of the DNN's best pdf against
    # the oracle phone at the frame's centre (SIL outside the oracle's phones)
    assert res[0]["dnn_oracle_phone_accuracy"]["values"] == pytest.approx(
        [_oracle_phone_accuracy(c, root / "exp", tiny_features) for c in ckpts], abs=1e-9
    )
    assert res[0]["test_wer"]["n"] == 2 and len(res[0]["decode"]) == 2
    assert res[1]["oracle"] is None and "dnn_oracle_phone_accuracy" not in res[1]
    # same labels, same seed, same priors: the one DNN of row 2 decodes exactly as row 1's first
    assert res[1]["test_wer"]["values"] == res[0]["test_wer"]["values"][:1]
    lines = alignment_table_lines(res, "t")
    assert lines[4].startswith("| with oracle | ") and " ± " in lines[4]
    assert lines[5].startswith("| no oracle | - | - | - | - | - | ")


def test_a_row_with_another_transition_model_is_refused(dnn_on_gmm_labels, tiny_features, tmp_path):
    from asr_kd.cli.common import alignment_row
    from asr_kd.stages.realign import AlignmentRow, DecodeSettings, compare_alignments
    from asr_kd.gmm.mono import MonoConfig, GmmAligner
    from asr_kd.lang.lexicon import Lexicon
    from asr_kd.lang.prepare_lang import LangConfig, prepare_lang

    root, ckpts = dnn_on_gmm_labels
    with pytest.raises(ValueError, match="ID=ALI_DIR"):
        alignment_row("only=two")
    with pytest.raises(ValueError, match="is not a system id"):
        alignment_row("flat start=exp/mono=a.pt")
    # the same phones with 2-state HMMs: other transition-ids, so the shared HCLG would misread them
    lang2 = prepare_lang(
        Lexicon.read(root / "lang" / "lexiconp.txt"), tmp_path / "lang2", LangConfig(num_nonsil_states=2)
    )
    other = tmp_path / "other"
    shutil.copytree(root / "exp", other)
    GmmAligner(lang2, MonoConfig()).save(other / "final.mdl")
    decode = DecodeSettings(
        str(root / "lang"), str(tiny_features / "manifests"), str(root / "graph"), lmwts=(1,), penalties=(0.0,)
    )
    rows = [AlignmentRow("gmm", root / "exp", ckpts[:1]), AlignmentRow("other", other, ckpts[:1])]
    with pytest.raises(ValueError, match="transition model differs"):
        compare_alignments(rows, tiny_features / "fbank", "digits", out_dir=tmp_path / "dec", decode=decode)


def test_realignment_is_kept_for_the_same_models_and_redone_for_others(dnn_on_gmm_labels, tiny_features, tmp_path):
    from asr_kd.align.dnn_align import realign

    root, ckpts = dnn_on_gmm_labels
    args = (root / "exp", root / "lang")
    kw = dict(
        fbank_dir=tiny_features / "fbank", corpus="digits", splits=["train", "dev", "test"], out_dir=tmp_path / "ali"
    )
    first = realign(ckpts, *args, **kw)
    h5 = tmp_path / "ali" / "digits_train_ali.h5"
    written = h5.stat().st_mtime_ns
    assert realign(ckpts, *args, **kw) == first and h5.stat().st_mtime_ns == written
    other = realign(ckpts[:1], *args, **kw)
    assert other["key"] != first["key"] and other["models"] == ckpts[:1] and h5.stat().st_mtime_ns != written
