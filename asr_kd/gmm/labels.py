"""Frame-level labels stored with lhotse: per cut, ``tid_ali`` (transition-ids), ``pdf_ali``
(HMM-state / pdf-ids, the DNN targets) and ``phone_ali`` (phone ids), as TemporalArrays in
HDF5 (lilcom is lossy: never for indices). Read them with ``cut.load_pdf_ali()`` etc.

Alongside: ``pdf_counts.txt`` (training-set pdf occupancy, for hybrid priors) and
``pdf_to_phone.txt`` (pdf-id -> phone symbol).
"""

import logging
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
from lhotse import CutSet, NumpyHdf5Writer

from asr_kd.utils.io import atomic_path, forget_open_arrays, write_text_atomic

log = logging.getLogger(__name__)

LABEL_NAMES = ("tid_ali", "pdf_ali", "phone_ali")


def label_maps(tm) -> Dict[str, np.ndarray]:
    """Arrays indexed by transition-id (index 0 is a dummy): pdf, phone, is-final, is-self-loop and
    transition-state."""
    n = tm.num_transition_ids + 1
    return {
        "pdf": np.asarray(tm.id2pdf_id, dtype=np.int32),
        "phone": np.array([0] + [tm.transition_id_to_phone(t) for t in range(1, n)], dtype=np.int32),
        "final": np.array([False] + [tm.is_final(t) for t in range(1, n)]),
        "self_loop": np.array([False] + [tm.is_self_loop(t) for t in range(1, n)]),
        "tstate": np.asarray(tm.id2state, dtype=np.int64)[:n],
    }


def store_alignments(
    cuts: CutSet, alignments: Dict[str, List[int]], tm, *, out_dir, name: str, frame_shift: float = 0.01
) -> CutSet:
    """Attach label arrays to every aligned cut and write ``<name>_cuts.jsonl.gz``; cuts without an
    alignment (failures) are left out and listed in ``<name>_failed.txt``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    maps = label_maps(tm)
    kept, failed = [], []
    h5 = out_dir / f"{name}_ali.h5"
    with atomic_path(h5) as tmp_h5:
        with NumpyHdf5Writer(tmp_h5) as writer:
            for cut in cuts:
                ali = alignments.get(cut.id)
                if ali is None:
                    failed.append(cut.id)
                    continue
                tids = np.asarray(ali, dtype=np.int32)
                if len(tids) != cut.num_frames:
                    raise ValueError(f"{cut.id}: alignment has {len(tids)} frames, features {cut.num_frames}")
                c = cut
                for key, arr in (("tid_ali", tids), ("pdf_ali", maps["pdf"][tids]), ("phone_ali", maps["phone"][tids])):
                    # start=cut.start: lhotse reads a cut's array from the cut's offset in its recording
                    # (a Kaldi segment starts inside it); at 0 a segment would read past the array's end
                    c = c.with_custom(
                        key,
                        writer.store_array(
                            cut.id + "/" + key, arr, frame_shift=frame_shift, temporal_dim=0, start=cut.start
                        ),
                    )
                kept.append(c)
    forget_open_arrays()
    # the arrays point at the temporary name until now: repoint them at the final file
    kept = [_repoint(c, h5) for c in kept]
    out = CutSet.from_cuts(kept)
    with atomic_path(out_dir / f"{name}_cuts.jsonl.gz") as tmp:
        out.to_file(tmp)
    write_text_atomic(out_dir / f"{name}_failed.txt", "".join(f + "\n" for f in failed))
    if failed:
        log.warning(
            "%s: %d cut(s) have no alignment and were left out (%s)", name, len(failed), out_dir / f"{name}_failed.txt"
        )
    return out


def _repoint(cut, h5: Path):
    for key in LABEL_NAMES:
        arr = cut.custom[key]
        arr.array.storage_path = str(h5)
    return cut


def write_pdf_stats(train_cuts: CutSet, tm, lang, *, out_dir) -> np.ndarray:
    """pdf_counts.txt (Kaldi's ali-to-pdf | analyze-counts: one line, counts by pdf-id) and pdf_to_phone.txt."""
    out_dir = Path(out_dir)
    counts = np.zeros(tm.num_pdfs, dtype=np.int64)
    for cut in train_cuts:
        counts += np.bincount(cut.load_pdf_ali(), minlength=tm.num_pdfs)
    write_text_atomic(out_dir / "pdf_counts.txt", "[ " + " ".join(map(str, counts)) + " ]\n")
    maps = label_maps(tm)
    pdf2phone = {}
    for tid in range(1, tm.num_transition_ids + 1):
        pdf2phone.setdefault(int(maps["pdf"][tid]), lang.id2phone[int(maps["phone"][tid])])
    write_text_atomic(out_dir / "pdf_to_phone.txt", "".join(f"{p} {pdf2phone[p]}\n" for p in sorted(pdf2phone)))
    return counts


def read_pdf_counts(path) -> np.ndarray:
    return np.array(
        [int(x) for x in Path(path).read_text().replace("[", " ").replace("]", " ").split()], dtype=np.int64
    )


def num_pdfs(ali_dir) -> int:
    """The number of pdfs (network outputs) of an alignment folder."""
    return len(read_pdf_counts(Path(ali_dir) / "pdf_counts.txt"))


def phone_segments(tids: Sequence[int], maps: Dict[str, np.ndarray]) -> List[tuple]:
    """(phone id, first frame, last frame + 1) per phone instance, as Kaldi's SplitToPhones does for
    reordered alignments: the training graphs are compiled with ``reorder`` (Kaldi's default), which
    puts each state's forward transition before its self-loops, so a phone's exit transition is
    followed by the self-loop frames of its last state. A phone ends after those, not at the exit
    transition (cutting there would move every boundary early by the last state's duration)."""
    segs, start, t, n = [], 0, 0, len(tids)
    while t < n:
        tid = tids[t]
        t += 1
        if maps["final"][tid]:
            while t < n and maps["self_loop"][tids[t]] and maps["tstate"][tids[t]] == maps["tstate"][tid]:
                t += 1
            segs.append((int(maps["phone"][tid]), start, t))
            start = t
    if start < n:  # should not happen for a complete alignment
        segs.append((int(maps["phone"][tids[-1]]), start, n))
    return segs
