"""Decision trees: Kaldi's formats (byte for byte against kaldi-hmm-gmm), the split objective against
the closed-form Gaussian likelihood, and tree building / phone clustering on synthetic contexts
with a known answer."""

import itertools
import struct

import numpy as np
import pytest

from asr_kd.gmm.tree import PDF_CLASS, ContextTree, Leaf, Split, Table
from asr_kd.gmm.tree_build import (
    TreeConfig,
    TreeStats,
    accumulate_tree_stats,
    build_tree,
    cluster_phones,
    frame_events,
    gauss_objf,
    leaf_gaussians,
    pdf_class_questions,
)
from asr_kd.kaldi import khg
from asr_kd.lang.prepare_lang import topology_text


def _topo(num_phones=4):
    """Phone 1 silence (5 states), 2..num_phones 3-state phones."""
    topo = khg.HmmTopology()
    topo.read(topology_text(list(range(2, num_phones + 1)), [1]))
    return topo


def test_monophone_tree_bytes_and_text_match_kaldi(tmp_path):
    topo = _topo(6)
    mono = khg.monophone_context_dependency(
        phones=topo.phones, phone2num_pdf_classes=topo.get_phone_to_num_pdf_classes()
    )
    ours = ContextTree.from_kaldi(mono)
    state = mono.__getstate__()[0]
    assert ours.to_binary() == struct.pack(f"{len(state)}b", *state)
    mono.write(False, str(tmp_path / "tree.txt"))
    assert ours.to_text() == (tmp_path / "tree.txt").read_text()
    mono.write(True, str(tmp_path / "tree.bin"))
    assert ContextTree.read(tmp_path / "tree.bin") == ours  # Kaldi's binary file, header included
    ours.write(tmp_path / "ours.bin")
    assert (tmp_path / "ours.bin").read_bytes() == (tmp_path / "tree.bin").read_bytes()
    assert ContextTree.from_bytes(ours.to_text().encode()) == ours
    assert ours.info() == {"num-pdfs": mono.num_pdfs, "context-width": 1, "central-position": 0}


def _hand_tree():
    """Phones 1 (silence, 5 classes) and 2-4 (3 classes). Phone 2's first state depends on the left
    phone ({3, 4} vs the rest); phone 3's last state on whether the right is silence or the edge."""
    sil = Table(PDF_CLASS, [Leaf(0), Leaf(1), Leaf(1), Leaf(1), Leaf(2)])  # tied middle states
    p2 = Split(PDF_CLASS, (0,), Split(0, (3, 4), Leaf(3), Leaf(4)), Table(PDF_CLASS, [None, Leaf(5), Leaf(6)]))
    p3 = Split(PDF_CLASS, (2,), Split(2, (0, 1), Leaf(9), Leaf(10)), Split(PDF_CLASS, (0,), Leaf(7), Leaf(8)))
    p4 = Table(PDF_CLASS, [Leaf(11), Leaf(12), Leaf(13)])
    return ContextTree(3, 1, Table(1, [None, sil, p2, p3, p4]))


def test_hand_built_triphone_tree_maps_contexts_in_kaldi(tmp_path):
    ours = _hand_tree()
    kaldi_tree = ours.to_kaldi()
    assert (kaldi_tree.context_width, kaldi_tree.central_position, kaldi_tree.num_pdfs) == (3, 1, 14)
    expected = {
        ((3, 2, 1), 0): 3,
        ((0, 2, 1), 0): 4,
        ((4, 2, 0), 2): 6,
        ((2, 3, 0), 2): 9,
        ((2, 3, 4), 2): 10,
        ((1, 3, 2), 0): 7,
        ((1, 1, 4), 2): 1,
        ((0, 1, 0), 4): 2,
    }
    for (window, pdf_class), pdf in expected.items():
        assert ours.pdf(window, pdf_class) == pdf
        assert kaldi_tree.compute(list(window), pdf_class) == (True, pdf)
    classes = {1: 5, 2: 3, 3: 3, 4: 3}
    for centre, n in classes.items():
        for left, right in itertools.product(range(5), repeat=2):
            for c in range(n):
                assert kaldi_tree.compute([left, centre, right], c) == (True, ours.pdf((left, centre, right), c))
    # Kaldi writes the same text; our reader reads Kaldi's output back to the same tree
    kaldi_tree.write(False, str(tmp_path / "tree.txt"))
    assert (tmp_path / "tree.txt").read_text() == ours.to_text()
    assert ContextTree.read(tmp_path / "tree.txt") == ours
    tm = khg.TransitionModel(ctx_dep=kaldi_tree, hmm_topo=_topo(4))
    assert tm.num_pdfs == 14


def test_split_gain_is_the_gaussian_likelihood_difference():
    rng = np.random.default_rng(0)
    a = rng.normal([0.0, 1.0, -2.0], [1.0, 0.5, 2.0], size=(400, 3))
    b = rng.normal([2.0, 1.0, 1.0], [0.7, 0.5, 1.0], size=(300, 3))

    def ml_loglik(x):  # the data's log-likelihood under its own ML diagonal Gaussian
        mu, var = x.mean(0), x.var(0)
        return float((-0.5 * (np.log(2 * np.pi * var) + (x - mu) ** 2 / var)).sum())

    def objf(x):
        return float(gauss_objf(len(x), x.sum(0), (x * x).sum(0)))

    both = np.concatenate([a, b])
    assert objf(a) == pytest.approx(ml_loglik(a), rel=1e-9)
    assert objf(a) + objf(b) - objf(both) == pytest.approx(ml_loglik(a) + ml_loglik(b) - ml_loglik(both), rel=1e-9)
    g = khg.GaussClusterable(3, 0.01)  # and Kaldi's own objective
    for row in a:
        g.add_stats(row, 1.0)
    assert g.objf() == pytest.approx(objf(a), rel=1e-4)


def _synthetic_stats(seed=0, frames=60):
    """Phones 1-6 (1 = silence) with 3 pdf-classes (silence 5); phones {2,3} and {4,5,6} have distinct
    means; phone 2's class 0 depends on the left phone being in {4, 5}; each class its own offset."""
    rng = np.random.default_rng(seed)
    items = []
    for left, centre, right in itertools.product(range(0, 7), range(1, 7), range(0, 7)):
        n_classes = 5 if centre == 1 else 3
        for c in range(n_classes):
            mean = np.zeros(4)
            mean[0] = {1: -6.0, 2: 3.0, 3: 3.5, 4: -2.0, 5: -2.5, 6: -2.2}[centre]
            mean[1] = 2.0 * c
            if centre == 2 and c == 0 and left in (4, 5):
                mean[2] = 4.0
            x = rng.normal(mean, 0.5, size=(frames, 4))
            items.append((x, np.tile([left, centre, right, c], (frames, 1))))
    return accumulate_tree_stats(items)


def test_tree_building_recovers_a_known_partition():
    stats = _synthetic_stats()
    questions = {0: [(4, 5), (2, 3), (0, 1), (6,)], 2: [(4, 5), (2, 3)], PDF_CLASS: pdf_class_questions(5)}
    # 6 phones: 5 x 3 classes + 5 silence classes = 20, plus phone 2's left-context split = 21
    tree, info = build_tree(
        stats, range(1, 7), questions, cfg=TreeConfig(num_leaves=21, min_count=10, cluster_thresh=0)
    )
    assert tree.num_pdfs == 21 and info["leaves_split"] == 21
    for left, right in itertools.product(range(7), repeat=2):
        for centre in range(1, 7):
            for c in range(5 if centre == 1 else 3):
                same = tree.pdf((0, centre, 0), c) == tree.pdf((left, centre, right), c)
                assert same == (not (centre == 2 and c == 0 and (left in (4, 5)) != (0 in (4, 5))))
    # pdf-classes of a phone never share a pdf, phones never share
    pdfs = {(p, c): tree.pdf((0, p, 0), c) for p in range(1, 7) for c in range(5 if p == 1 else 3)}
    assert len(set(pdfs.values())) == len(pdfs)
    # asked for more leaves than the data supports, then merged back by the last split's gain
    tree2, info2 = build_tree(
        stats, range(1, 7), questions, cfg=TreeConfig(num_leaves=60, min_count=10, cluster_thresh=-1)
    )
    assert info2["leaves_split"] > info2["num_pdfs"]
    counts, means, var = leaf_gaussians(tree2, stats)
    assert (counts > 0).all() and means.shape == (tree2.num_pdfs, 4)
    # deterministic
    assert build_tree(stats, range(1, 7), questions, cfg=TreeConfig(num_leaves=60, min_count=10))[0] == tree2


def test_cluster_phones_finds_the_groups_and_stats_shards_add_up():
    stats = _synthetic_stats()
    sets = cluster_phones(stats, range(2, 7))
    assert sets[0] == (2, 3, 4, 5, 6)
    assert set(sets[1:3]) == {(2, 3), (4, 5, 6)}
    assert all((p,) in sets for p in range(2, 7))
    half = len(stats.events) // 2
    parts = [
        TreeStats(stats.events[s], stats.counts[s], stats.sums[s], stats.sumsq[s])
        for s in (slice(0, half), slice(half, None))
    ]
    merged = TreeStats.merge(parts + [parts[0]])
    m0 = (merged.events == stats.events[0]).all(1)
    assert merged.counts[m0][0] == 2 * stats.counts[0]


def test_frame_events_use_phone_zero_at_the_edges():
    ev = frame_events([(1, 0, 2), (5, 2, 5), (1, 5, 6)], np.array([0, 4, 0, 1, 2, 0]))
    assert ev.tolist() == [[0, 1, 5, 0], [0, 1, 5, 4], [1, 5, 1, 0], [1, 5, 1, 1], [1, 5, 1, 2], [5, 1, 0, 0]]
