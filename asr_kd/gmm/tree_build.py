"""Building a phonetic decision tree from alignments: Kaldi's acc-tree-stats, cluster-phones /
compile-questions and build-tree, written with numpy.

1. ``accumulate_tree_stats``: per event (left, centre, right phone, pdf-class) the count, sum and
   sum of squares of the GMM features of the frames aligned to it (``TreeStats``; shards from
   parallel processes are summed with ``TreeStats.merge``).
2. ``cluster_phones``: phone sets for questions, by top-down binary (2-means) clustering of
   per-phone Gaussians; every node of the binary tree is a question. ``pdf_class_questions``
   adds the HMM-state questions; recipes may add their own sets.
3. ``build_tree``: one root per phone (all its pdf-classes together, Kaldi's "shared split"
   roots; silence phones are roots of their own like every phone), then greedy splitting by the
   Gaussian log-likelihood gain (each side at least ``min_count`` frames) until ``num_leaves``,
   then bottom-up merging of leaves under the same root while the loss is below
   ``cluster_thresh`` (-1: the gain of the last split, as Kaldi's build-tree). Deterministic: ties
   break on key, question and leaf order.

Objective of a set of frames, as Kaldi's GaussClusterable (diagonal ML Gaussian, variance floor):

    objf = -0.5 * count * (D * (1 + log 2 pi) + sum_d log var_d)
"""

import heapq
import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from asr_kd.gmm.tree import PDF_CLASS, ContextTree, Leaf, Split, Table

log = logging.getLogger(__name__)

KEYS = (PDF_CLASS, 0, 2)  # what a triphone root may ask: the HMM state's pdf-class, left, right phone
EVENT_COLUMN = {0: 0, 2: 2, PDF_CLASS: 3}  # a key's column in TreeStats.events (left, centre, right, pdf-class)
VAR_FLOOR = 0.01


def gauss_objf(count, sums, sumsq, *, var_floor: float = VAR_FLOOR):
    """Kaldi's GaussClusterable::Objf, vectorised over leading axes (0 where count <= 0)."""
    count = np.asarray(count, np.float64)
    safe = np.maximum(count, 1e-10)[..., None]
    mean = sums / safe
    var = np.maximum(sumsq / safe - mean**2, var_floor)
    dim = sums.shape[-1]
    objf = -0.5 * count * (dim * (1 + np.log(2 * np.pi)) + np.log(var).sum(-1))
    return np.where(count > 0, objf, 0.0)


@dataclass
class TreeStats:
    """Sufficient statistics per event: ``events`` (E, 4) int = (left, centre, right, pdf-class)."""

    events: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    sumsq: np.ndarray

    @classmethod
    def empty(cls, dim: int) -> "TreeStats":
        return cls(np.zeros((0, 4), np.int64), np.zeros(0), np.zeros((0, dim)), np.zeros((0, dim)))

    @classmethod
    def merge(cls, parts: Sequence["TreeStats"]) -> "TreeStats":
        """The sum of shards (same events add up), sorted by event."""
        ev = np.concatenate([p.events for p in parts])
        uniq, inv = np.unique(ev, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        dim = parts[0].sums.shape[1]
        counts = np.bincount(inv, weights=np.concatenate([p.counts for p in parts]), minlength=len(uniq))
        sums, sumsq = np.zeros((len(uniq), dim)), np.zeros((len(uniq), dim))
        np.add.at(sums, inv, np.concatenate([p.sums for p in parts]))
        np.add.at(sumsq, inv, np.concatenate([p.sumsq for p in parts]))
        return cls(uniq, counts, sums, sumsq)

    @property
    def dim(self) -> int:
        return self.sums.shape[1]

    def save(self, path) -> None:
        np.savez(path, events=self.events, counts=self.counts, sums=self.sums, sumsq=self.sumsq)

    @classmethod
    def load(cls, path) -> "TreeStats":
        z = np.load(path)
        return cls(z["events"], z["counts"], z["sums"], z["sumsq"])


def frame_events(phone_segments: Sequence[Tuple[int, int, int]], pdf_classes: np.ndarray) -> np.ndarray:
    """(T, 4) events of one utterance from its phone segments ((phone, start, end), in order) and
    each frame's pdf-class; utterance edges are phone 0 (Kaldi's convention)."""
    ev = np.zeros((len(pdf_classes), 4), np.int64)
    phones = [p for p, _, _ in phone_segments]
    for i, (p, s, e) in enumerate(phone_segments):
        ev[s:e, 0] = phones[i - 1] if i > 0 else 0
        ev[s:e, 1] = p
        ev[s:e, 2] = phones[i + 1] if i + 1 < len(phones) else 0
    ev[:, 3] = pdf_classes
    return ev


def accumulate_tree_stats(items) -> TreeStats:
    """Statistics from (features (T, D), events (T, 4)) pairs."""
    items = list(items)
    if not items:
        raise ValueError("tree statistics: no aligned utterances")
    ev = np.concatenate([e for _, e in items])
    x = np.concatenate([f for f, _ in items]).astype(np.float64)
    uniq, inv = np.unique(ev, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    sums, sumsq = np.zeros((len(uniq), x.shape[1])), np.zeros((len(uniq), x.shape[1]))
    np.add.at(sums, inv, x)
    np.add.at(sumsq, inv, x * x)
    return TreeStats(uniq, np.bincount(inv, minlength=len(uniq)).astype(np.float64), sums, sumsq)


# -- questions ----------------------------------------------------------------------------------
def _merge_loss(a, b) -> float:
    """Objective lost by pooling two (count, sums, sumsq) clusters."""
    pooled = [x + y for x, y in zip(a, b)]
    return float(gauss_objf(a[0], a[1], a[2]) + gauss_objf(b[0], b[1], b[2]) - gauss_objf(*pooled))


def _two_means(phones: List[int], stats: Dict[int, tuple], max_iter: int = 10) -> Tuple[List[int], List[int]]:
    """Split ``phones`` into two groups of Gaussians (k-means with the merge loss as distance);
    seeds: the most frequent phone, and the phone that loses most when pooled with it."""
    first = max(phones, key=lambda p: (stats[p][0], -p))
    second = max((p for p in phones if p != first), key=lambda p: (_merge_loss(stats[p], stats[first]), -p))
    centres = [stats[first], stats[second]]
    assign: Dict[int, int] = {}
    for _ in range(max_iter):
        new = {p: int(_merge_loss(stats[p], centres[1]) < _merge_loss(stats[p], centres[0])) for p in phones}
        new[first], new[second] = 0, 1
        if new == assign:
            break
        assign = new
        centres = [tuple(sum(stats[p][j] for p in phones if assign[p] == k) for j in range(3)) for k in (0, 1)]
    return sorted(p for p in phones if assign[p] == 0), sorted(p for p in phones if assign[p] == 1)


def cluster_phones(
    stats: TreeStats, phones: Sequence[int], pdf_classes: Optional[Sequence[int]] = None
) -> List[Tuple[int, ...]]:
    """Kaldi's cluster-phones: per-phone Gaussians (frames of the given pdf-classes, default all)
    clustered top-down into a binary tree; returns the sets of all its nodes (the root, every
    split, every single phone) in a deterministic order. Phones without statistics form one set."""
    keep = np.ones(len(stats.events), bool) if pdf_classes is None else np.isin(stats.events[:, 3], list(pdf_classes))
    per_phone = {}
    for p in phones:
        m = keep & (stats.events[:, 1] == p)
        if stats.counts[m].sum() > 0:
            per_phone[p] = (stats.counts[m].sum(), stats.sums[m].sum(0), stats.sumsq[m].sum(0))
    seen = sorted(per_phone)
    out: List[Tuple[int, ...]] = []
    todo = [seen] if seen else []
    while todo:
        group = todo.pop(0)
        out.append(tuple(group))
        if len(group) > 1:
            a, b = _two_means(group, per_phone)
            todo += [a, b]
    unseen = tuple(sorted(set(phones) - set(seen)))
    if unseen:
        out.append(unseen)
    return out


def pdf_class_questions(num_pdf_classes: int) -> List[Tuple[int, ...]]:
    """Every contiguous run of pdf-classes (left-to-right HMMs split by position)."""
    return [
        tuple(range(a, b))
        for a in range(num_pdf_classes)
        for b in range(a + 1, num_pdf_classes + 1)
        if b - a < num_pdf_classes
    ]


# -- building -----------------------------------------------------------------------------------
@dataclass
class TreeConfig:
    num_leaves: int = 500
    min_count: float = 100.0  # frames on each side of a split
    cluster_thresh: float = (
        -1.0
    )  # merge leaves under a root while the loss is below; -1: last split's gain; 0: no merging


@dataclass
class _Leaf:
    root: int  # the centre phone
    rows: np.ndarray  # indices into the statistics
    stats: tuple  # (count, sums, sumsq)
    node: Optional[Split] = None  # set when split
    best: Optional[tuple] = None  # (gain, key, question index)


def _stats_of(s: TreeStats, rows: np.ndarray) -> tuple:
    return s.counts[rows].sum(), s.sums[rows].sum(0), s.sumsq[rows].sum(0)


def _best_split(s: TreeStats, leaf: _Leaf, questions: Dict[int, List[Tuple[int, ...]]], *, min_count: float):
    """(gain, key, question index) of the best split of a leaf, or None; vectorised over questions."""
    parent = float(gauss_objf(*leaf.stats))
    best = None
    for key in KEYS:
        qs = questions.get(key, [])
        if not qs:
            continue
        values = s.events[leaf.rows, EVENT_COLUMN[key]]
        uniq, inv = np.unique(values, return_inverse=True)
        if len(uniq) < 2:
            continue
        inv = inv.reshape(-1)
        vc = np.bincount(inv, weights=s.counts[leaf.rows], minlength=len(uniq))
        vs = np.zeros((len(uniq), s.dim))
        vq = np.zeros((len(uniq), s.dim))
        np.add.at(vs, inv, s.sums[leaf.rows])
        np.add.at(vq, inv, s.sumsq[leaf.rows])
        member = np.array([np.isin(uniq, q) for q in qs], np.float64)  # (Q, values)
        yc, ys, yq = member @ vc, member @ vs, member @ vq
        nc, ns, nq = leaf.stats[0] - yc, leaf.stats[1] - ys, leaf.stats[2] - yq
        gain = gauss_objf(yc, ys, yq) + gauss_objf(nc, ns, nq) - parent
        gain[(yc < min_count) | (nc < min_count)] = -np.inf
        i = int(np.argmax(gain))  # first maximum: deterministic
        if np.isfinite(gain[i]) and (best is None or gain[i] > best[0]):
            best = (float(gain[i]), key, i)
    return best


def build_tree(
    stats: TreeStats,
    phones: Sequence[int],
    questions: Dict[int, List[Tuple[int, ...]]],
    *,
    cfg: TreeConfig = TreeConfig(),
) -> Tuple[ContextTree, Dict]:
    """A triphone tree (context width 3, central position 1) over ``phones``; returns (tree, info)
    with the leaves before merging, the pdfs after, and the objective gains."""
    roots: Dict[int, _Leaf] = {}
    for p in sorted(phones):
        rows = np.flatnonzero(stats.events[:, 1] == p)
        roots[p] = _Leaf(p, rows, _stats_of(stats, rows))
    all_leaves: List[_Leaf] = list(roots.values())
    heap = []
    for i, leaf in enumerate(all_leaves):
        leaf.best = _best_split(stats, leaf, questions, min_count=cfg.min_count)
        if leaf.best:
            heapq.heappush(heap, (-leaf.best[0], i))
    num_leaves, last_gain, total_gain = len(all_leaves), 0.0, 0.0
    while heap and num_leaves < cfg.num_leaves:
        _, i = heapq.heappop(heap)
        leaf = all_leaves[i]
        gain, key, q = leaf.best
        question = questions[key][q]
        yes_mask = np.isin(stats.events[leaf.rows, EVENT_COLUMN[key]], question)
        children = []
        for rows in (leaf.rows[yes_mask], leaf.rows[~yes_mask]):
            child = _Leaf(leaf.root, rows, _stats_of(stats, rows))
            child.best = _best_split(stats, child, questions, min_count=cfg.min_count)
            all_leaves.append(child)
            children.append(len(all_leaves) - 1)
            if child.best:
                heapq.heappush(heap, (-child.best[0], len(all_leaves) - 1))
        leaf.node = Split(key, question, children[0], children[1])  # child indices for now
        num_leaves += 1
        last_gain, total_gain = gain, total_gain + gain
    final = [i for i, leaf in enumerate(all_leaves) if leaf.node is None]
    thresh = last_gain if cfg.cluster_thresh < 0 else cfg.cluster_thresh
    cluster_of = _merge_leaves(all_leaves, final, thresh)
    # pdf-ids in tree order (phones ascending, yes before no); merged leaves share the first one's
    pdf_of_cluster: Dict[int, int] = {}

    def node(i: int):
        leaf = all_leaves[i]
        if leaf.node is None:
            c = cluster_of[i]
            if c not in pdf_of_cluster:
                pdf_of_cluster[c] = len(pdf_of_cluster)
            return Leaf(pdf_of_cluster[c])
        return Split(leaf.node.key, leaf.node.yes_set, node(leaf.node.yes), node(leaf.node.no))

    index = {id(leaf): i for i, leaf in enumerate(all_leaves)}
    children: List[Optional[object]] = [None] * (max(phones) + 1)
    for p in sorted(phones):
        children[p] = node(index[id(roots[p])])
    tree = ContextTree(3, 1, Table(1, children))
    info = {
        "leaves_split": len(final),
        "num_pdfs": tree.num_pdfs,
        "merge_thresh": thresh,
        "split_gain": total_gain,
        "last_split_gain": last_gain,
        "objf_per_frame": float(sum(gauss_objf(*all_leaves[i].stats) for i in final) / max(stats.counts.sum(), 1)),
    }
    log.info(
        "tree: %d leaves from splitting, %d pdfs after merging (threshold %.1f); gain %.1f over %d frames",
        info["leaves_split"],
        info["num_pdfs"],
        thresh,
        total_gain,
        int(stats.counts.sum()),
    )
    return tree, info


def _merge_leaves(all_leaves: List[_Leaf], final: List[int], thresh: float) -> Dict[int, int]:
    """Greedy bottom-up merging of leaves with the same root while the cheapest merge loses less
    than ``thresh``; returns leaf index -> cluster id (the smallest leaf index in it)."""
    cluster_of = {i: i for i in final}
    if thresh <= 0:
        return cluster_of
    by_root: Dict[int, List[int]] = {}
    for i in final:
        by_root.setdefault(all_leaves[i].root, []).append(i)
    for members in by_root.values():
        clusters = {i: all_leaves[i].stats for i in members}
        while len(clusters) > 1:
            ids = sorted(clusters)
            loss, a, b = min(
                (_merge_loss(clusters[a], clusters[b]), a, b) for x, a in enumerate(ids) for b in ids[x + 1 :]
            )
            if loss >= thresh:
                break
            clusters[a] = tuple(x + y for x, y in zip(clusters[a], clusters.pop(b)))
            for i, c in cluster_of.items():
                if c == b:
                    cluster_of[i] = a
    return cluster_of


def leaf_gaussians(tree: ContextTree, stats: TreeStats, var_floor: float = VAR_FLOOR):
    """(counts, means, variances) per pdf of ``tree`` from the statistics (Kaldi's gmm-init-model):
    pdfs without frames get the global mean and variance."""
    pdfs = np.array([tree.pdf(e[:3], e[3]) for e in stats.events])
    n = tree.num_pdfs
    counts = np.bincount(pdfs, weights=stats.counts, minlength=n)
    sums, sumsq = np.zeros((n, stats.dim)), np.zeros((n, stats.dim))
    np.add.at(sums, pdfs, stats.sums)
    np.add.at(sumsq, pdfs, stats.sumsq)
    total = stats.counts.sum()
    gmean = stats.sums.sum(0) / total
    gvar = np.maximum(stats.sumsq.sum(0) / total - gmean**2, var_floor)
    safe = np.maximum(counts, 1e-10)[:, None]
    means = np.where(counts[:, None] > 0, sums / safe, gmean)
    var = np.where(counts[:, None] > 0, np.maximum(sumsq / safe - means**2, var_floor), gvar)
    return counts, means, var
