"""HCLG as Kaldi's mkgraph.sh builds it, with kaldifst and kaldi-hmm-gmm:

    LG = determinize_star(L_disambig o G); minimize_encoded(LG)
    CLG = compose_context(LG)
    HCLGa = determinize_star(H o CLG); disambiguation transition-ids -> epsilon; rmepsilon; minimize_encoded
    HCLG = add_self_loops(HCLGa)

The graph keeps transition-ids as input labels (so decoding returns alignments); its output
labels are word ids of ``words.txt``. Saved as OpenFst binary with size and build time logged.
"""

import logging
import resource
import time
from pathlib import Path

from asr_kd.kaldi import kaldifst, khg
from asr_kd.kaldi.fst import map_arcs
from asr_kd.utils.io import atomic_path, write_json_atomic

log = logging.getLogger(__name__)


def make_hclg(lang, tm, tree, *, G_path, out_dir, self_loop_scale: float = 0.1, transition_scale: float = 1.0):
    """Build and write ``out_dir/HCLG.fst``; returns (HCLG, info)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    L = lang.lexicon_fst(disambig=True)
    G = kaldifst.StdVectorFst.read(str(G_path))
    kaldifst.arcsort(L, sort_type="olabel")
    LG = kaldifst.compose(L, G)
    if kaldifst.determinize_star(LG, use_log=True):
        raise RuntimeError("determinize_star(L o G) did not finish (is L_disambig missing disambiguation symbols?)")
    kaldifst.minimize_encoded(LG)
    CLG, ilabels = kaldifst.compose_context(
        disambig_syms=lang.disambig_ids,
        context_width=tree.context_width,
        central_position=tree.central_position,
        ifst=LG,
    )
    kaldifst.arcsort(CLG, sort_type="ilabel")
    H, disambig_tids = khg.get_h_transducer(
        ilabel_info=ilabels,
        ctx_dep=tree,
        trans_model=tm,
        config=khg.HTransducerConfig(transition_scale=transition_scale),
    )
    HCLGa = kaldifst.compose(H, CLG)
    if kaldifst.determinize_star(HCLGa, use_log=True):
        raise RuntimeError("determinize_star(H o CLG) did not finish")
    drop = set(disambig_tids)  # fstrmsymbols: disambiguation transition-ids become epsilon
    HCLGa = map_arcs(HCLGa, lambda a: (0 if a.ilabel in drop else a.ilabel, a.olabel, a.weight))
    kaldifst.rmepsilon(HCLGa)
    kaldifst.minimize_encoded(HCLGa)
    HCLG = khg.add_self_loops(
        self_loop_scale=self_loop_scale, disambig_syms=[], reorder=True, trans_model=tm, ifst=HCLGa
    )
    kaldifst.arcsort(HCLG, sort_type="ilabel")
    with atomic_path(out_dir / "HCLG.fst") as tmp:
        HCLG.write(str(tmp))
    info = {
        "states": HCLG.num_states,
        "arcs": sum(HCLG.num_arcs(s) for s in range(HCLG.num_states)),
        "seconds": round(time.time() - t0, 3),
        "self_loop_scale": self_loop_scale,
        "file_mb": round((out_dir / "HCLG.fst").stat().st_size / 2**20, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }  # of the whole process
    write_json_atomic(out_dir / "graph_info.json", info)
    log.info(
        "HCLG: %d states, %d arcs, %.1f MB, built in %.2f s (process peak RSS %.0f MB)",
        info["states"],
        info["arcs"],
        info["file_mb"],
        info["seconds"],
        info["peak_rss_mb"],
    )
    return HCLG, info
