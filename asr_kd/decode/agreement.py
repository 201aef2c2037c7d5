"""Do the Kaldi decoder and k2 agree? Same graph, same scaled log-likelihoods, same settings:
the share of utterances with identical 1-best words, the share with identical best paths (words
and per-frame transition-ids), both WERs, and the largest score difference over identical paths
(Kaldi's best-path log-likelihood against k2's shortest-path total score; both are graph score plus
acoustic score)."""
import time
from typing import Dict, List

import numpy as np

from asr_kd.decode.decode import decode, wer_details
from asr_kd.decode.k2_decode import decode_k2, k2_version, load_k2_graph


def compare_decoders(graph_path, tm, loglikes: Dict[str, np.ndarray], refs: Dict[str, List[str]], id2word: Dict[int, str],
                     beam: float = 13.0, max_active: int = 7000, word_penalty: float = 0.0, device=None) -> Dict:
    frames = sum(m.shape[0] for m in loglikes.values())
    t0 = time.time()
    kaldi = decode(graph_path, tm, loglikes, beam=beam, max_active=max_active, word_penalty=word_penalty)
    t_kaldi = time.time() - t0
    graph = load_k2_graph(graph_path, word_penalty, device=device)
    t0 = time.time()
    k2res = decode_k2(graph, np.asarray(tm.id2pdf_id), loglikes, search_beam=beam, max_active=max_active, device=device)
    t_k2 = time.time() - t0
    same = [u for u in loglikes if kaldi[u]["words"] == k2res[u]["words"]]
    same_path = [u for u in same if list(kaldi[u]["alignment"]) == k2res[u]["alignment"]]
    diffs = [abs(kaldi[u]["log_like"] - k2res[u]["score"]) for u in same_path]
    rel = [d / max(abs(k2res[u]["score"]), 1.0) for d, u in zip(diffs, same_path)]  # Kaldi sums in float32
    hyp = {name: {u: [id2word[w] for w in r[u]["words"]] for u in loglikes} for name, r in (("kaldi", kaldi), ("k2", k2res))}
    wer = {name: wer_details(refs, h)["wer"] for name, h in hyp.items()}
    return {"utterances": len(loglikes), "same_words": len(same), "same_share": len(same) / max(len(loglikes), 1),
            "same_paths": len(same_path), "same_path_share": len(same_path) / max(len(loglikes), 1),
            "wer_kaldi": wer["kaldi"], "wer_k2": wer["k2"], "max_score_diff": max(diffs) if diffs else float("nan"),
            "mean_score_diff": float(np.mean(diffs)) if diffs else float("nan"),
            "max_rel_score_diff": max(rel) if rel else float("nan"),
            "rtf_kaldi": t_kaldi / (frames * 0.01), "rtf_k2": t_k2 / (frames * 0.01), "k2_version": k2_version(),
            "differing": sorted(set(loglikes) - set(same))}
