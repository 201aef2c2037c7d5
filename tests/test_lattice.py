"""Lattices (asr_kd.decode.lattice): decoded once, their best path at any LM weight and penalty
equals re-decoding, they round-trip through Kaldi's text archive, and the oracle is never worse
than the 1-best."""

import numpy as np
import pytest

LMWTS = (2.0, 5.0, 10.0, 20.0)
PENALTIES = (0.0, 0.5, 1.0)


@pytest.fixture(scope="module")
def noisy(tiny_graph):
    """Log-likelihoods that compete: the forced alignment's one-hot plus seeded noise (test split)."""
    from conftest import oracle_loglikes

    from asr_kd.gmm.mono import load_gmm

    root, _ = tiny_graph
    tm = load_gmm(root / "exp" / "final.mdl")["tm"]
    cuts, onehot = oracle_loglikes(root / "exp", tm)
    rng = np.random.default_rng(7)
    loglikes = {u: (0.1 * m + 1.5 * rng.standard_normal(m.shape)).astype(np.float32) for u, m in onehot.items()}
    return root, tm, cuts, loglikes


def _lattices(root, tm, loglikes):
    from asr_kd.decode.lattice import decode_lattices
    from asr_kd.kaldi.fst import read_fst

    id2pdf = np.asarray(tm.id2pdf_id)
    return decode_lattices(
        read_fst(root / "graph" / "HCLG.fst"),
        {u: ll[:, id2pdf[1:]] for u, ll in loglikes.items()},
        acoustic_scale=0.1,
        beam=30.0,
        lattice_beam=20.0,
    )


def test_lattice_best_path_equals_re_decoding_at_every_weight_and_penalty(noisy, tmp_path):
    """One vectorised pass over the whole grid gives, at every point, the words and alignment of
    re-decoding with that LM weight and penalty (a small graph and wide beams: pruning cannot differ)."""
    from asr_kd.decode.kaldi_decoder import decode
    from asr_kd.decode.lattice import LatticeSet, write_lattices

    root, tm, cuts, loglikes = noisy
    texts = _lattices(root, tm, loglikes)
    write_lattices(tmp_path / "lat.1.gz", texts)
    back = LatticeSet.read(tmp_path / "lat.1.gz")
    direct = LatticeSet.from_texts(texts.items())
    assert back.utts == sorted(texts)
    for name in ("graph", "acoustic", "word", "tid", "final_graph"):
        order = [direct.utts.index(u) for u in back.utts]
        assert np.allclose(
            np.concatenate([_arcs_of(back, k, name) for k in range(len(back.utts))]),
            np.concatenate([_arcs_of(direct, k, name) for k in order]),
        ), name
    points = [(lmwt, wip) for lmwt in LMWTS for wip in PENALTIES]
    paths = back.best_paths(points, alignments=True)
    differs = 0
    for (lmwt, wip), got in zip(points, paths):
        ref = decode(
            root / "graph" / "HCLG.fst", tm, {u: ll / lmwt for u, ll in loglikes.items()}, beam=30.0, word_penalty=wip
        )
        for u in texts:
            words, tids, frames = got[u]
            assert words == ref[u]["words"] and tids == ref[u]["alignment"], (u, lmwt, wip)
            assert len(frames) == len(words) and frames == sorted(frames)
            differs += words != paths[0][u][0]
    assert differs > 0  # the weights matter on these likelihoods: the sweep is not vacuous


def _arcs_of(lats, k, name):
    """Arc (or final) values of utterance k in source-state order, for comparing two LatticeSets."""
    lo, hi = lats.offset[k], lats.offset[k + 1]
    if name == "final_graph":
        sel = (lats.final_state >= lo) & (lats.final_state < hi)
        return lats.final_graph[sel]
    sel = (lats.src >= lo) & (lats.src < hi)
    order = np.lexsort((lats.dst[sel], lats.src[sel]))
    return getattr(lats, name)[sel][order]


def test_nbest_lists_distinct_word_sequences_best_first(noisy):
    from asr_kd.decode.lattice import LatticeSet

    root, tm, cuts, loglikes = noisy
    lats = LatticeSet.from_texts(_lattices(root, tm, loglikes).items())
    best = lats.best_paths([(5.0, 0.5)])[0]
    longer = 0
    for u in lats.utts:
        nb = lats.nbest(u, 5, 5.0, penalty=0.5)
        seqs = [tuple(w) for w, _ in nb]
        assert nb and len(set(seqs)) == len(seqs) and list(seqs[0]) == best[u][0], u
        assert [c for _, c in nb] == sorted(c for _, c in nb)
        longer += len(nb) > 1
    assert longer > 0


def test_oracle_is_never_worse_than_the_one_best(noisy):
    from kaldialign import edit_distance

    from asr_kd.decode.lattice import LatticeSet
    from asr_kd.lang.prepare_lang import Lang

    root, tm, cuts, loglikes = noisy
    lang = Lang(root / "lang")
    lats = LatticeSet.from_texts(_lattices(root, tm, loglikes).items())
    refs = {cut.id: [lang.word2id[w] for w in cut.supervisions[0].text.split()] for cut in cuts}
    hyps = {u: p[0] for u, p in lats.best_paths([(10.0, 0.0)])[0].items()}
    oracle = lats.oracle_errors(refs)
    assert lats.oracle_errors(hyps) == {u: 0 for u in hyps}  # the 1-best is a lattice path
    one_best = {u: edit_distance(refs[u], hyps[u])["total"] for u in refs}
    assert all(0 <= oracle[u] <= one_best[u] for u in refs)
    # against a reference that is another lattice path (each lattice's second best word sequence)
    # the oracle finds it: no errors, where the 1-best has some
    second = {u: nb[1][0] for u in lats.utts if len(nb := lats.nbest(u, 2, 10.0)) > 1}
    assert second and lats.subset(list(second)).oracle_errors(second) == {u: 0 for u in second}
    assert all(edit_distance(second[u], hyps[u])["total"] > 0 for u in second)


def test_pruning_keeps_the_paths_within_its_beam_and_only_the_states_they_touch(noisy):
    """Pruned at (LM weight, penalty, beam): best paths at that point are unchanged, every kept path
    is within the beam, and the states are renumbered to the ones the kept arcs touch (a k2 lattice
    keeps millions of dead states otherwise), the utterances' blocks and the archive still whole."""
    from asr_kd.decode.lattice import LatticeSet

    root, tm, cuts, loglikes = noisy
    lats = LatticeSet.from_texts(_lattices(root, tm, loglikes).items())
    small = lats.pruned(5.0, 0.5, 2.0)
    assert len(small.src) < len(lats.src) and small.num_states < lats.num_states
    assert small.utts == lats.utts and np.all(np.diff(small.offset) >= 1)
    touched = np.zeros(small.num_states, bool)
    touched[np.concatenate([small.src, small.dst, small.final_state, small.start])] = True
    assert touched.all()
    assert np.array_equal(small.state_utt[small.src], small.state_utt[small.dst])
    before, after = (
        lats.best_paths([(5.0, 0.5)], alignments=True)[0],
        small.best_paths([(5.0, 0.5)], alignments=True)[0],
    )
    assert before == after
    slack, final_slack = small.path_slack(5.0, 0.5)
    assert slack.max() <= 2.0 + 1e-6 and np.all(np.isfinite(slack))
    back = LatticeSet.from_texts(small.texts().items())
    assert back.best_paths([(10.0, 0.0)])[0] == small.best_paths([(10.0, 0.0)])[0]
    assert back.num_states == small.num_states and len(back.src) == len(small.src)


@pytest.fixture(scope="module")
def mixed(tiny_graph):
    """Every aligned cut; half of them with clear likelihoods (the one-hot weighs 0.3 against unit
    noise), half with nearly none (0.03): words of the second half are often wrong."""
    from conftest import oracle_loglikes

    from asr_kd.gmm.mono import load_gmm

    root, _ = tiny_graph
    tm = load_gmm(root / "exp" / "final.mdl")["tm"]
    cuts, onehot = [], {}
    for split in ("train", "dev", "test"):
        c, o = oracle_loglikes(root / "exp", tm, split)
        cuts += list(c)
        onehot.update(o)
    rng = np.random.default_rng(7)
    loglikes = {
        u: ((0.3 if i % 2 == 0 else 0.03) * m + rng.standard_normal(m.shape)).astype(np.float32)
        for i, (u, m) in enumerate(sorted(onehot.items()))
    }
    return root, tm, cuts, loglikes


def test_word_confidences_are_probabilities_and_higher_on_correct_words(mixed):
    from kaldialign import align

    from asr_kd.decode.lattice import LatticeSet, decode_lattices
    from asr_kd.kaldi.fst import read_fst
    from asr_kd.lang.prepare_lang import Lang

    root, tm, cuts, loglikes = mixed
    lang = Lang(root / "lang")
    id2pdf = np.asarray(tm.id2pdf_id)
    lmwt = 2.0
    lats = LatticeSet.from_texts(
        decode_lattices(
            read_fst(root / "graph" / "HCLG.fst"),
            {u: ll[:, id2pdf[1:]] for u, ll in loglikes.items()},
            acoustic_scale=1 / lmwt,
            beam=30.0,
            lattice_beam=20.0,
        ).items()
    )
    confs = lats.word_confidences(lmwt)
    best = lats.best_paths([(lmwt, 0.0)])[0]
    post, _ = lats.arc_posteriors(lmwt)
    frame = lats.levels.frame
    right, wrong = [], []
    for cut in cuts:
        conf = confs[cut.id]
        assert [w for w, _, _ in conf] == best[cut.id][0]
        assert all(0.0 <= c <= 1.0 for _, _, c in conf)
        k = lats.utts.index(cut.id)
        mine = (lats.src >= lats.offset[k]) & (lats.src < lats.offset[k + 1]) & (lats.tid != 0)
        last = int(frame[lats.offset[k] : lats.offset[k + 1]].max())
        for t in (0, last // 2, last - 1):  # every complete path consumes frame t on exactly one arc
            mass = post[mine & (frame[lats.src] == t)].sum()
            assert mass == pytest.approx(1.0, abs=1e-3), (cut.id, t)
        pairs = align(cut.supervisions[0].text.split(), [lang.id2word[w] for w, _, _ in conf], "*")
        for ok, (_, _, c) in zip([r == h for r, h in pairs if h != "*"], conf):
            (right if ok else wrong).append(c)
    assert len(right) >= 10 and len(wrong) >= 2, (len(right), len(wrong))
    assert np.mean(right) > np.mean(wrong) + 0.2, (np.mean(right), np.mean(wrong))
    from asr_kd.decode.lattice import Calibration, normalised_cross_entropy, reliability

    conf, ok = right + wrong, [True] * len(right) + [False] * len(wrong)
    cal = Calibration.fit(conf, ok)
    assert normalised_cross_entropy(cal(conf), ok) >= normalised_cross_entropy(conf, ok) - 1e-9  # fitted on these words
    assert sum(r["words"] for r in reliability(cal(conf), ok)) == len(conf)
    # NCE measures calibration as well as ranking: reported (decode rows), checked here on its own
    assert np.isfinite(normalised_cross_entropy(right + wrong, [True] * len(right) + [False] * len(wrong)))
    assert normalised_cross_entropy([0.99, 0.98, 0.02, 0.97], [True, True, False, True]) > 0.8
    assert abs(normalised_cross_entropy([0.75] * 4, [True, False, True, True])) < 1e-6  # the base rate: no information


def test_decode_stage_on_lattices_chooses_what_re_decoding_chooses(tiny_graph, tiny_features, tmp_path):
    """``decode_models(decoder="lattice")``: each split decoded once, the grid swept on the stored
    lattices; same chosen LM weight / penalty and WERs as re-decoding every grid point."""
    from asr_kd.decode.lattice import LatticeSet
    from asr_kd.stages.decode import decode_models

    root, _ = tiny_graph
    rows = [("GMM", [str(root / "exp" / "final.mdl")])]
    common = dict(lmwts=(5, 10, 20), penalties=(0.0, 0.5, 1.0), beam=20.0)
    common.update(fbank_dir=tiny_features / "fbank", corpus="digits", graph_dir=root / "graph")
    args = (rows, root / "exp", root / "lang")
    old = decode_models(*args, out_dir=tmp_path / "redecode", decoder="kaldi", **common)[0]
    new = decode_models(*args, out_dir=tmp_path / "lattice", decoder="lattice", **common)[0]
    forked = decode_models(*args, out_dir=tmp_path / "lattice2", decoder="lattice", nj=2, **common)[0]  # two processes
    assert old["decoder"] == "kaldi" and new["decoder"] == forked["decoder"] == "lattice"
    assert (tmp_path / "lattice" / "GMM" / "lat.dev.gz").read_bytes() != b""
    for key in ("best_lmwt", "best_wip", "dev_wer", "test_wer", "test_oracle_wer"):
        assert forked[key] == new[key], key
    assert (new["best_lmwt"], new["best_wip"]) == (old["best_lmwt"], old["best_wip"])
    assert new["dev_wer"] == pytest.approx(old["dev_wer"], abs=1e-3) and new["test_wer"] == pytest.approx(
        old["test_wer"], abs=1e-3
    )
    out = tmp_path / "lattice" / "GMM"
    assert len(LatticeSet.read(out / "lat.test.gz").utts) > 0 and (out / "lattice_options.json").is_file()
    assert 0.0 <= new["test_oracle_wer"] <= new["test_wer"]
    conf = [line.split() for line in (out / "test.conf.txt").read_text().splitlines()]
    assert conf and all(
        0.0 <= float(c) <= 1.0 and 0.0 <= float(r) <= 1.0 and ok in ("0", "1") for _, _, c, r, ok in conf
    )
    import json

    info = json.loads((out / "confidence.json").read_text())
    assert sum(r["words"] for r in info["reliability_calibrated"]) == len(conf) == info["test_words"]


def test_rescoring_with_the_graph_lm_changes_nothing_and_a_closer_lm_helps(mixed, tmp_path):
    import json

    from kaldialign import edit_distance

    from asr_kd.decode.lattice import LatticeSet
    from asr_kd.decode.rescore import ArpaCost, rescore
    from asr_kd.lang.lm import train_arpa
    from asr_kd.lang.prepare_lang import Lang

    root, tm, cuts, loglikes = mixed  # half of the utterances with nearly no acoustic evidence: errors to fix
    lang = Lang(root / "lang")
    lats = LatticeSet.from_texts(_lattices(root, tm, loglikes).items())
    old = ArpaCost(json.loads((root / "graph" / "graph_summary.json").read_text())["arpa"])
    best = lats.best_paths([(2.0, 0.0)])[0]
    same, stats = rescore(lats, 2.0, 0.0, id2word=lang.id2word, old=old, new=old, n=20)
    assert same == {u: best[u][0] for u in lats.utts} and stats["changed"] == 0
    # an LM of the references themselves: rescoring moves towards them
    refs = {c.id: c.supervisions[0].text.split() for c in cuts}
    train_arpa([" ".join(r) for r in refs.values()] * 3, 3, tmp_path / "refs.arpa", estimator="python")
    closer, stats = rescore(lats, 2.0, 0.0, id2word=lang.id2word, old=old, new=ArpaCost(tmp_path / "refs.arpa"), n=20)

    def errors(hyps):
        return sum(edit_distance(refs[u], [lang.id2word[w] for w in hyps[u]])["total"] for u in refs)

    assert stats["changed"] > 0 and errors(closer) < errors(same), (errors(closer), errors(same))


def test_a_lattice_search_that_misses_the_one_best_path_is_searched_again(noisy):
    """At a beam too narrow for these flat likelihoods the lattice search loses paths that the
    1-best check (min-active 200) keeps; the utterance is searched again wider, so each lattice's
    best path costs no more than the 1-best search's, and the counts say how often it happened."""
    from asr_kd.decode import lattice as L
    from asr_kd.decode.kaldi_decoder import decode
    from asr_kd.kaldi.fst import read_fst

    root, tm, cuts, loglikes = noisy
    id2pdf = np.asarray(tm.id2pdf_id)
    graph = read_fst(root / "graph" / "HCLG.fst")
    cols = {u: ll[:, id2pdf[1:]] for u, ll in loglikes.items()}
    stats = {}
    texts = L.decode_lattices(graph, cols, 0.5, beam=1.0, lattice_beam=4.0, stats=stats)
    assert stats["utterances"] == len(cols) and stats["widened"] > 0, stats
    best = L.LatticeSet.from_texts(texts.items()).best_paths([(2.0, 0.0)])[0]
    wide = decode(root / "graph" / "HCLG.fst", tm, {u: ll / 2.0 for u, ll in loglikes.items()}, beam=40.0)
    same = sum(best[u][0] == wide[u]["words"] for u in cols)
    assert same >= len(cols) - stats["still_worse"], (same, stats)
    # without the second search the narrow beam alone loses some of them
    L.SEARCH_RETRIES, saved = 0, L.SEARCH_RETRIES
    try:
        narrow = L.LatticeSet.from_texts(L.decode_lattices(graph, cols, 0.5, beam=1.0, lattice_beam=4.0).items())
    finally:
        L.SEARCH_RETRIES = saved
    lost = sum(narrow.best_paths([(2.0, 0.0)])[0][u][0] != wide[u]["words"] for u in cols)
    assert lost > 0


def test_lattices_decoded_with_a_penalty_keep_it_out_of_their_graph_costs(noisy, tmp_path):
    """A split scored at one tuned point is decoded with its penalty in the graph; the archive's
    graph costs include it (lattice_options.json says how much) and reading them back takes it off,
    so the best path at that point is the one the search found, and equals re-decoding's."""
    from asr_kd.decode.kaldi_decoder import decode
    from asr_kd.decode.lattice import LatticeSet
    from asr_kd.decode.lattice_search import decode_lattices_parallel

    root, tm, cuts, loglikes = noisy
    id2pdf = np.asarray(tm.id2pdf_id)
    cols = {u: ll[:, id2pdf[1:]] for u, ll in loglikes.items()}
    lmwt, wip = 5.0, 1.0
    lats, stats = decode_lattices_parallel(
        root / "graph" / "HCLG.fst", cols, 1 / lmwt, archive=tmp_path / "lat.gz", beam=30.0, nj=2, word_penalty=wip
    )
    back = LatticeSet.read(tmp_path / "lat.gz", word_penalty=wip)
    raw = LatticeSet.read(tmp_path / "lat.gz")
    assert sorted(back.utts) == sorted(lats.utts) == sorted(cols) and stats["utterances"] == len(cols)
    assert np.allclose(np.sort(raw.graph[raw.word != 0] - wip), np.sort(back.graph[back.word != 0]))
    ref = decode(
        root / "graph" / "HCLG.fst", tm, {u: ll / lmwt for u, ll in loglikes.items()}, beam=30.0, word_penalty=wip
    )
    for got in (lats, back):
        best = got.best_paths([(lmwt, wip)])[0]
        assert all(best[u][0] == ref[u]["words"] for u in cols)


def test_a_bad_lattice_line_is_named(noisy):
    from asr_kd.decode.lattice import LatticeSet

    root, tm, cuts, loglikes = noisy
    items = list(_lattices(root, tm, loglikes).items())
    utt, text = items[0]
    broken = text.split("\n")
    broken[1] = broken[1] + " 7"
    with pytest.raises(ValueError, match=f"lattice {utt}: bad line"):
        LatticeSet.from_texts([(utt, "\n".join(broken))], "here")


def _dies(part):  # a search process killed mid-part (the kernel's OOM killer does this)
    import os

    os._exit(9)


def test_a_search_process_that_dies_fails_the_decode_in_one_line(noisy, tmp_path, monkeypatch):
    """A part's process dying (out of memory) stops the decode with one error naming the archive and
    what to lower, promptly (the parts' likelihoods go to the processes as files, so nothing is left
    blocked writing to a dead pool), and leaves no part files behind."""
    from asr_kd.decode import lattice_search

    root, tm, cuts, loglikes = noisy
    id2pdf = np.asarray(tm.id2pdf_id)
    monkeypatch.setattr(lattice_search, "_decode_part", _dies)  # forked processes inherit it
    with pytest.raises(RuntimeError, match=r"lat\.test\.gz: a lattice search process died .* lower --nj"):
        lattice_search.decode_lattices_parallel(
            root / "graph" / "HCLG.fst",
            {u: ll[:, id2pdf[1:]] for u, ll in loglikes.items()},
            0.1,
            archive=tmp_path / "lat.test.gz",
            nj=2,
        )
    assert list(tmp_path.iterdir()) == []


def test_an_archive_whose_writing_failed_is_named_and_leaves_no_parts(tmp_path):
    """ArchiveWriter.wait: a part whose write raised (or whose process died) fails with one error
    naming the archive, and the parts and lattice stashes are gone; a finished one is joined."""
    import gzip
    from concurrent.futures import Future

    from asr_kd.decode.lattice_search import ArchiveWriter, _lattice_stash

    writer = ArchiveWriter()
    good, bad = tmp_path / "lat.dev.gz", tmp_path / "lat.test.gz"
    parts = {a: [a.with_name(f"{a.name}.part{i}.gz") for i in range(2)] for a in (good, bad)}
    for a, paths in parts.items():
        futures = []
        for i, p in enumerate(paths):
            p.write_bytes(gzip.compress(f"u{i}\n\n".encode()))
            if a == bad:  # a part that finished removed its stash; a failed one may leave it
                _lattice_stash(p).write_bytes(b"")
            futures.append(Future())
            if a == bad and i == 1:
                futures[-1].set_exception(MemoryError("killed"))
            else:
                futures[-1].set_result(None)
        writer.add(a, paths, futures)
    writer.wait(good)
    assert gzip.decompress(good.read_bytes()) == b"u0\n\nu1\n\n" and len(writer.pending) == 1
    with pytest.raises(RuntimeError, match="lat.test.gz: writing the lattice archive failed"):
        writer.wait()
    assert not bad.exists() and not list(tmp_path.glob("*.part*")) and not writer.pending
