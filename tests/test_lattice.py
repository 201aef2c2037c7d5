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
    return decode_lattices(read_fst(root / "graph" / "HCLG.fst"), {u: ll[:, id2pdf[1:]] for u, ll in loglikes.items()},
                           acoustic_scale=0.1, beam=30.0, lattice_beam=20.0)


def test_lattice_best_path_equals_re_decoding_at_every_weight_and_penalty(noisy, tmp_path):
    from asr_kd.decode.kaldi_decoder import decode
    from asr_kd.decode.lattice import best_path, lattice_text, read_lattices, write_lattices

    root, tm, cuts, loglikes = noisy
    lats = _lattices(root, tm, loglikes)
    write_lattices(tmp_path / "lat.1.gz", lats)
    back = read_lattices(tmp_path / "lat.1.gz")
    assert sorted(back) == sorted(lats) and all(lattice_text(u, back[u]) == lattice_text(u, lats[u]) for u in lats)
    first = {u: best_path(back[u], LMWTS[0], 0.0)[0] for u in lats}
    differs = 0
    for lmwt in LMWTS:
        for wip in PENALTIES:
            ref = decode(root / "graph" / "HCLG.fst", tm, {u: ll / lmwt for u, ll in loglikes.items()}, beam=30.0,
                         word_penalty=wip)
            for u in lats:
                words, tids = best_path(back[u], lmwt, wip)
                assert words == ref[u]["words"] and tids == ref[u]["alignment"], (u, lmwt, wip)
                differs += words != first[u]
    assert differs > 0  # the weights matter on these likelihoods: the sweep is not vacuous


def test_oracle_is_never_worse_than_the_one_best(noisy):
    from kaldialign import edit_distance

    from asr_kd.decode.lattice import best_path, oracle_errors
    from asr_kd.lang.prepare_lang import Lang

    root, tm, cuts, loglikes = noisy
    lang = Lang(root / "lang")
    lats = _lattices(root, tm, loglikes)
    one_best = oracle = 0
    for cut in cuts:
        ref = [lang.word2id[w] for w in cut.supervisions[0].text.split()]
        hyp = best_path(lats[cut.id], 10.0)[0]
        e = edit_distance(ref, hyp)["total"]
        o = oracle_errors(lats[cut.id], ref)
        assert 0 <= o <= e, cut.id
        assert oracle_errors(lats[cut.id], hyp) == 0  # the 1-best is a lattice path
        one_best, oracle = one_best + e, oracle + o
    assert oracle <= one_best


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
    loglikes = {u: ((0.3 if i % 2 == 0 else 0.03) * m + rng.standard_normal(m.shape)).astype(np.float32)
                for i, (u, m) in enumerate(sorted(onehot.items()))}
    return root, tm, cuts, loglikes


def test_word_confidences_are_probabilities_and_higher_on_correct_words(mixed):
    from kaldialign import align

    from asr_kd.decode.lattice import arc_posteriors, best_path, decode_lattices, word_confidences
    from asr_kd.kaldi.fst import read_fst
    from asr_kd.lang.prepare_lang import Lang

    root, tm, cuts, loglikes = mixed
    lang = Lang(root / "lang")
    id2pdf = np.asarray(tm.id2pdf_id)
    lmwt = 2.0
    lats = decode_lattices(read_fst(root / "graph" / "HCLG.fst"), {u: ll[:, id2pdf[1:]] for u, ll in loglikes.items()},
                           acoustic_scale=1 / lmwt, beam=30.0, lattice_beam=20.0)
    right, wrong = [], []
    for cut in cuts:
        lat = lats[cut.id]
        conf = word_confidences(lat, lmwt)
        assert [w for w, _, _ in conf] == best_path(lat, lmwt)[0]
        assert all(0.0 <= c <= 1.0 for _, _, c in conf)
        arcs, post, frame = arc_posteriors(lat, lmwt)
        for t in (0, int(frame.max()) // 2):  # every complete path consumes frame t on exactly one arc
            mass = sum(p for (s, _, i, *_), p in zip(arcs, post) if i and frame[s] == t)
            assert mass == pytest.approx(1.0, abs=1e-3), (cut.id, t)
        pairs = align(cut.supervisions[0].text.split(), [lang.id2word[w] for w, _, _ in conf], "*")
        for ok, (_, _, c) in zip([r == h for r, h in pairs if h != "*"], conf):
            (right if ok else wrong).append(c)
    assert len(right) >= 10 and len(wrong) >= 2, (len(right), len(wrong))
    assert np.mean(right) > np.mean(wrong) + 0.2, (np.mean(right), np.mean(wrong))
    from asr_kd.decode.lattice import normalised_cross_entropy

    # NCE measures calibration as well as ranking: reported (decode rows), checked here on its own
    assert np.isfinite(normalised_cross_entropy(right + wrong, [True] * len(right) + [False] * len(wrong)))
    assert normalised_cross_entropy([0.99, 0.98, 0.02, 0.97], [True, True, False, True]) > 0.8
    assert abs(normalised_cross_entropy([0.75] * 4, [True, False, True, True])) < 1e-6  # the base rate: no information


def test_decode_stage_on_lattices_chooses_what_re_decoding_chooses(tiny_graph, tiny_features, tmp_path):
    """``decode_models(decoder="lattice")``: each split decoded once, the grid swept on the stored
    lattices; same chosen LM weight / penalty and WERs as re-decoding every grid point."""
    from asr_kd.decode.lattice import read_lattices
    from asr_kd.decode.pipeline import decode_models

    root, _ = tiny_graph
    rows = [("GMM", [str(root / "exp" / "final.mdl")])]
    common = dict(lmwts=(5, 10, 20), penalties=(0.0, 0.5, 1.0), beam=20.0)
    args = (rows, root / "exp", root / "lang", tiny_features / "fbank", "digits", root / "graph")
    old = decode_models(*args, tmp_path / "redecode", **common)[0]
    new = decode_models(*args, tmp_path / "lattice", decoder="lattice", **common)[0]
    assert (new["best_lmwt"], new["best_wip"]) == (old["best_lmwt"], old["best_wip"])
    assert new["dev_wer"] == pytest.approx(old["dev_wer"], abs=1e-3) and new["test_wer"] == pytest.approx(old["test_wer"], abs=1e-3)
    out = tmp_path / "lattice" / "GMM"
    assert len(read_lattices(out / "lat.test.gz")) > 0 and (out / "lattice_options.json").is_file()
    assert 0.0 <= new["test_oracle_wer"] <= new["test_wer"]
    conf = [line.split() for line in (out / "test.conf.txt").read_text().splitlines()]
    assert conf and all(0.0 <= float(c) <= 1.0 and ok in ("0", "1") for _, _, c, ok in conf)
