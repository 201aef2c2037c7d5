"""LM rescoring on the lattices: the first pass searches the small graph (a pruned LM's HCLG),
a larger LM (unpruned, or of higher order) then picks among the lattice's word sequences, as
Kaldi's ``lmrescore.sh`` / ``lmrescore_const_arpa.sh`` do.

Here the lattice's ``n`` best distinct word sequences at the dev-tuned LM weight and penalty
(``LatticeSet.nbest``) are rescored (Kaldi's n-best rescoring): each keeps its cost
(graph + acoustic / LM weight + penalty x words), minus the old LM's cost of its words, plus the
new LM's. Both LM costs are -ln P of the whole sentence with ``<s>`` and ``</s>``, from the ARPA
files through kenlm; the old one is the ARPA the graph was built from, so what is subtracted is
the graph's LM part (up to G's choice between an n-gram and its backoff path, which kenlm makes
the ARPA way).
"""

import math
import time
from typing import Dict, List, Sequence, Tuple

from asr_kd.decode.lattice import LatticeSet

LN10 = math.log(10.0)


class ArpaCost:
    """-ln P(sentence) under an ARPA LM (kenlm), sentence start and end included."""

    def __init__(self, arpa):
        import kenlm

        self.model = kenlm.Model(str(arpa))
        self.path = str(arpa)

    def __call__(self, words: Sequence[str]) -> float:
        return -self.model.score(" ".join(words), bos=True, eos=True) * LN10


def rescore(
    lats: LatticeSet, lmwt: float, wip: float, *, id2word: Dict[int, str], old: ArpaCost, new: ArpaCost, n: int = 100
) -> Tuple[Dict[str, List[int]], Dict]:
    """({utt: rescored best word ids}, stats): the best of each utterance's ``n``-best list after
    replacing ``old``'s LM cost by ``new``'s."""
    t0 = time.time()
    out, changed, listed = {}, 0, 0
    for utt in lats.utts:
        nb = lats.nbest(utt, n, lmwt, penalty=wip)
        if not nb:
            out[utt] = []
            continue
        listed += len(nb)
        costs = []
        for words, cost in nb:
            text = [id2word[w] for w in words]
            costs.append(cost - old(text) + new(text))
        best = min(range(len(nb)), key=lambda k: (costs[k], k))
        out[utt] = nb[best][0]
        changed += best != 0
    return out, {
        "utterances": len(lats.utts),
        "changed": changed,
        "mean_list": round(listed / max(1, len(lats.utts)), 1),
        "n": n,
        "seconds": round(time.time() - t0, 2),
        "old_lm": old.path,
        "new_lm": new.path,
    }
