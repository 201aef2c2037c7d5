"""Triphone systems: alignment conversion, tri1 / tri2 training, LDA and MLLT, and the
context-dependent HCLG decoded with oracle likelihoods."""

import json

import numpy as np
from lhotse import CutSet

from asr_kd.gmm.lda_mllt import estimate_lda, estimate_mllt, lda_stats, splice
from asr_kd.gmm.mono import GmmAligner, load_gmm
from asr_kd.gmm.tree import ContextTree
from asr_kd.gmm.triphone import TransitionTable, TriConfig, convert_alignment
from asr_kd.lang.prepare_lang import Lang


def test_converted_alignments_keep_phones_states_and_take_the_tree_pdfs(tiny_tri_graph):
    root, tri, _ = tiny_tri_graph
    lang = Lang(root / "lang")
    topo = lang.topology()
    mono, tri1 = load_gmm(root / "exp" / "final.mdl"), load_gmm(tri / "final.mdl")
    old, new = TransitionTable(mono["tm"], mono["tree"], topo), TransitionTable(tri1["tm"], tri1["tree"], topo)
    tree = ContextTree.from_kaldi(tri1["tree"])
    assert tree.context_width == 3 and tree.central_position == 1
    cuts = CutSet.from_file(root / "exp" / "digits_test_cuts.jsonl.gz")
    for cut in cuts:
        tids = cut.load_tid_ali()
        conv = convert_alignment(tids, old, new, new_tree=tree)
        assert (new.phone[conv] == old.phone[tids]).all() and (new.hmm_state[conv] == old.hmm_state[tids]).all()
        assert (new.maps["self_loop"][conv] == old.maps["self_loop"][tids]).all()
        assert [s[0] for s in new.segments(conv)] == [s[0] for s in old.segments(tids)]
        events = old.events(tids)
        assert [tree.pdf(e[:3], e[3]) for e in events] == list(new.pdf[conv])
        assert not np.array_equal(new.pdf[conv], old.pdf[tids]) or len(set(new.pdf[conv])) < 2


def test_tri1_is_trained_written_in_kaldi_formats_and_aligns(tiny_tri_graph):
    root, tri, info = tiny_tri_graph
    history = json.loads((tri / "train_history.json").read_text())
    likes = [h["log_like"] for h in history]
    assert likes[-1] > likes[0]
    tree = ContextTree.read(tri / "tree")
    assert ContextTree.read(tri / "tree.txt") == tree
    model = load_gmm(tri / "final.mdl")
    assert model["tree"].num_pdfs == tree.num_pdfs == model["am"].num_pdfs
    assert (tri / "tree_info.txt").read_text() == f"num-pdfs {tree.num_pdfs}\ncontext-width 3\ncentral-position 1\n"
    assert model["am"].num_gauss > model["am"].num_pdfs  # Gaussians were split
    summary = json.loads((tri / "summary.json").read_text())
    mono = json.loads((root / "exp" / "summary.json").read_text())
    # a dozen training utterances: the monophone system already fails on a few; the triphones no more often
    assert summary["num_pdfs"] == tree.num_pdfs and sum(summary["failed"].values()) <= sum(mono["failed"].values())
    assert info["hclg"]["states"] > 0


def test_context_dependent_hclg_decodes_oracle_likelihoods_to_the_reference(tiny_tri_graph):
    from conftest import oracle_loglikes

    from asr_kd.decode.kaldi_decoder import decode

    root, tri, _ = tiny_tri_graph
    tm = GmmAligner.load(tri / "final.mdl", root / "lang").tm
    lang = Lang(root / "lang")
    cuts, loglikes = oracle_loglikes(tri, tm)
    res = decode(root / "graph_tri1" / "HCLG.fst", tm, loglikes, nj=2)
    for cut in cuts:
        assert [lang.id2word[w] for w in res[cut.id]["words"]] == cut.supervisions[0].text.split(), cut.id


def test_lda_whitens_the_within_class_scatter_and_mllt_gains():
    rng = np.random.default_rng(1)
    mix = rng.normal(size=(6, 6))
    labels = rng.integers(0, 5, size=4000)
    means = rng.normal(scale=3.0, size=(5, 6))
    x = (means[labels] + rng.normal(size=(4000, 6)) * [3, 1, 1, 0.5, 0.2, 0.1]) @ mix.T
    proj = estimate_lda(*lda_stats([(x, labels)], 5), dim=4)
    y = x @ proj.T
    within = sum(np.cov(y[labels == c].T, bias=True) * (labels == c).sum() for c in range(5)) / len(y)
    assert np.allclose(within, np.eye(4), atol=1e-4)
    # MLLT: frames from class-specific diagonal Gaussians seen through a rotation; the transform
    # undoes it, so the objective gains and A x has (nearly) uncorrelated dimensions per class
    rot = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    cls = rng.integers(0, 3, size=6000)
    z = rng.normal(size=(6000, 4)) * rng.uniform(0.3, 3.0, size=(3, 4))[cls]
    xz = z @ rot.T
    var = np.array([np.var(xz[cls == c], 0) for c in range(3)])
    G = sum(np.einsum("i,de->ide", 1 / var[c], xz[cls == c].T @ xz[cls == c]) for c in range(3))
    A, gain = estimate_mllt(G, 6000.0)
    assert gain > 0.1
    c0 = np.cov((xz[cls == 0] @ A.T).T)
    off = np.abs(c0 - np.diag(np.diag(c0))).max() / np.abs(np.diag(c0)).max()
    assert off < 0.05


def test_splice_repeats_edge_frames():
    x = np.arange(4, dtype=np.float32)[:, None]
    assert splice(x, 1).tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]


def test_tri2_stores_its_transform_and_decodes_with_it(tiny_tri_graph, tiny_features, tmp_path):
    from asr_kd.stages.align import train_triphone_and_align
    from asr_kd.decode.search import load_decode_data
    from asr_kd.hybrid.likelihoods import model_loglikes

    root, tri, _ = tiny_tri_graph
    cfg = TriConfig(
        num_iters=4,
        max_iter_inc=3,
        realign_iters=(3,),
        mllt_iters=(2,),
        total_gauss=150,
        num_leaves=40,
        min_leaf_count=20,
        splice=3,
        use_deltas=False,
        lda_dim=20,
    )
    train_triphone_and_align(
        tiny_features / "fbank",
        "digits",
        ["train", "dev", "test"],
        lang_dir=root / "lang",
        prev_dir=tri,
        exp_dir=tmp_path / "tri2",
        cfg=cfg,
        nj=1,
    )
    model = load_gmm(tmp_path / "tri2" / "final.mdl")
    assert model["transform"].shape == (20, 13 * 7)
    timings = json.loads((tmp_path / "tri2" / "timings.json").read_text())
    assert timings["lda"]["output_dim"] == 20
    history = json.loads((tmp_path / "tri2" / "train_history.json").read_text())
    assert history[1]["mllt_gain_per_frame"] > 0
    _, _, priors, splits = load_decode_data(
        tmp_path / "tri2", root / "lang", tiny_features / "fbank", corpus="digits", split_names=("train",)
    )
    ll = model_loglikes([str(tmp_path / "tri2" / "final.mdl")], splits, priors)["train"]
    assert ll.shape[1] == model["am"].num_pdfs and np.isfinite(ll).all()
    # decoding sees the training features: on its training split, the GMM's own alignment is mostly
    # its most likely pdf (a dozen utterances: dev and test are mostly beyond this model)
    cuts = CutSet.from_file(tmp_path / "tri2" / "digits_train_cuts.jsonl.gz").to_eager()
    data_cuts, data = splits["train"]
    hits = total = 0
    for i, c in enumerate(data_cuts):
        if c.id in cuts.ids:
            pdf = cuts[c.id].load_pdf_ali()
            hits += (ll[data.utterance(i)].argmax(1) == pdf).sum()
            total += len(pdf)
    assert hits / total > 0.5
    # rerun: loaded, not retrained
    before = (tmp_path / "tri2" / "final.mdl").stat().st_mtime
    train_triphone_and_align(
        tiny_features / "fbank",
        "digits",
        ["train", "dev", "test"],
        lang_dir=root / "lang",
        prev_dir=tri,
        exp_dir=tmp_path / "tri2",
        cfg=cfg,
        nj=1,
    )
    assert (tmp_path / "tri2" / "final.mdl").stat().st_mtime == before
