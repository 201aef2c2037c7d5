"""Log-mel filterbank features, computed once with lhotse, and mean/variance normalisation.

Every later stage (GMM alignment, DNN training, decoding) reads the same stored features
and normalises them through :class:`FeatureNormalizer`, so frame counts and statistics
always agree between stages. lhotse's Fbank uses ``snip_edges=False``: a cut of duration
d has ``lhotse.utils.compute_num_frames(d, 0.01, sr)`` frames.
"""

import logging
import functools
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from lhotse import CutSet, Fbank, FbankConfig, LilcomChunkyWriter

from asr_kd.data.manifests import manifest_paths
from asr_kd.utils.io import atomic_path
from asr_kd.utils.validity import fingerprint, is_done, mark_done

log = logging.getLogger(__name__)


@dataclass
class FeatureConfig:
    num_mel_bins: int = 40
    frame_shift: float = 0.01
    frame_length: float = 0.025
    cmvn: str = "global"  # "global" (train statistics) or "speaker" (per-speaker statistics)

    def validate(self) -> None:
        if self.cmvn not in ("global", "speaker"):
            raise ValueError(f"cmvn must be global or speaker, not {self.cmvn!r}")
        if self.frame_length < self.frame_shift:
            raise ValueError(f"frame_length ({self.frame_length}) is shorter than frame_shift ({self.frame_shift})")


def feature_cuts_path(out_dir, corpus: str, split: str) -> Path:
    return Path(out_dir) / f"{corpus}_cuts_{split}.jsonl.gz"


def _audio_stamp(cut) -> list:
    """(source, size, mtime) of each audio file the cut reads, every track of a mixed cut (MUSAN)
    included; other sources (URLs, commands) by name."""
    out = []
    for track in [t.cut for t in cut.tracks] if hasattr(cut, "tracks") else [cut]:
        recording = getattr(track, "recording", None)  # none for padding
        for src in recording.sources if recording is not None else []:
            path = Path(src.source) if src.type == "file" else None
            st = path.stat() if path is not None and path.is_file() else None
            out.append([str(src.source), st.st_size if st else None, st.st_mtime_ns if st else None])
    return out


def check_no_commands(cuts, where, allow_pipes: bool) -> None:
    """Audio read by running a command (a Kaldi ``wav.scp`` pipe) runs through the shell: only
    with ``allow_pipes``; otherwise a ValueError naming the manifest and the recording."""
    if allow_pipes:
        return
    for cut in cuts:
        for track in [t.cut for t in cut.tracks] if hasattr(cut, "tracks") else [cut]:
            recording = getattr(track, "recording", None)
            for src in recording.sources if recording is not None else []:
                if src.type == "command":
                    raise ValueError(
                        f"{where}: recording {recording.id} reads its audio by running a command "
                        f"({str(src.source)[:60]}); pass --allow-pipes if you trust these manifests"
                    )


def compute_fbank(
    manifest_dir,
    out_dir,
    corpus: str,
    *,
    splits: Sequence[str],
    cfg: FeatureConfig,
    sample_rate: int = 16000,
    num_jobs: int = 1,
    allow_pipes: bool = False,
) -> Dict[str, CutSet]:
    """Compute and store fbank for each split (skipping splits already done), then CMVN stats."""
    out_dir = Path(out_dir)
    extractor = Fbank(
        FbankConfig(
            sampling_rate=sample_rate,
            num_mel_bins=cfg.num_mel_bins,
            frame_shift=cfg.frame_shift,
            frame_length=cfg.frame_length,
            dither=0.0,
        )
    )
    result = {}
    for split in splits:
        split_dir = out_dir / f"{corpus}_{split}"
        cuts_path = manifest_paths(manifest_dir, corpus, split)["cuts"]
        if not cuts_path.is_file():
            raise FileNotFoundError(
                f"{cuts_path} is missing: import or prepare the {corpus} corpus's {split} split first "
                "(or pass the --corpus it was imported as)"
            )
        cuts_in = CutSet.from_file(cuts_path)
        check_no_commands(cuts_in, cuts_path, allow_pipes)
        # the features depend on the audio only (supervisions, texts and oracle times, are re-attached):
        # its files' sizes and modification times stand for their contents, as in make
        key = fingerprint(
            {
                "cfg": asdict(cfg),
                "cuts": sorted((c.id, c.num_samples, _audio_stamp(c)) for c in cuts_in),
                "sr": sample_rate,
            }
        )
        if is_done(split_dir, key) and feature_cuts_path(out_dir, corpus, split).is_file():
            log.info("fbank %s/%s is complete; skipping", corpus, split)
            result[split] = _with_current_supervisions(feature_cuts_path(out_dir, corpus, split), cuts_in)
            continue
        tmp_dir = out_dir / f".{corpus}_{split}.tmp"
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir(parents=True)
        log.info("computing fbank for %s/%s (%d cuts, %d jobs)", corpus, split, len(cuts_in), num_jobs)
        if num_jobs > 1:  # intra-op threads in every worker oversubscribe the cores (lhotse warns of hangs)
            torch.set_num_threads(1)
        cuts = cuts_in.compute_and_store_features(
            extractor=extractor,
            storage_path=tmp_dir / "feats",
            num_jobs=num_jobs,
            storage_type=LilcomChunkyWriter,
            progress_bar=True,
        )
        # point the manifests at the final folder, then move the folder into place
        shutil.rmtree(split_dir, ignore_errors=True)
        tmp_dir.rename(split_dir)
        cuts = cuts.map(functools.partial(_relocate, old=str(tmp_dir), new=str(split_dir))).to_eager()
        cuts = cuts.sort_by_recording_id()
        with atomic_path(feature_cuts_path(out_dir, corpus, split)) as tmp:
            cuts.to_file(tmp)
        mark_done(split_dir, key)
        result[split] = cuts
    return result


def _with_current_supervisions(path: Path, cuts_in: CutSet) -> CutSet:
    """Stored feature cuts with the supervisions of the current manifests: a rerun after the
    manifests changed (a corrected transcript or oracle alignment) must not keep stale ones."""
    from lhotse.utils import fastcopy

    current = {c.id: c.supervisions for c in cuts_in}
    stored = CutSet.from_file(path).to_eager()
    if all(c.supervisions == current[c.id] for c in stored):
        return stored
    cuts = CutSet.from_cuts(fastcopy(c, supervisions=current[c.id]) for c in stored)
    with atomic_path(path) as tmp:
        cuts.to_file(tmp)
    log.info("%s: supervisions refreshed from the manifests", path)
    return cuts


def _relocate(cut, old: str, new: str):
    cut.features.storage_path = cut.features.storage_path.replace(old, new, 1)
    return cut


# ---------------------------------------------------------------------------------------------
class FeatureNormalizer:
    """Mean/variance normalisation with global or per-speaker statistics.

    ``cmvn.npz`` holds ``global_mean``, ``global_std`` (from the training split), and per
    speaker ``speakers``, ``speaker_mean``, ``speaker_std`` (from each speaker's own cuts,
    any split: no labels are involved, as in Kaldi's per-speaker CMVN).
    """

    def __init__(self, mode: str, global_mean, global_std, *, speaker_stats: Optional[Dict[str, tuple]] = None):
        if mode not in ("global", "speaker"):
            raise ValueError(f"cmvn mode must be 'global' or 'speaker', not {mode!r}")
        self.mode = mode
        self.global_mean = np.asarray(global_mean, np.float32)
        self.global_std = np.asarray(global_std, np.float32)
        self.speaker_stats = speaker_stats or {}

    def __call__(self, feats: np.ndarray, speaker: Optional[str] = None) -> np.ndarray:
        mean, std = self.global_mean, self.global_std
        if self.mode == "speaker":
            if speaker not in self.speaker_stats:
                raise KeyError(f"no CMVN statistics for speaker {speaker!r}; recompute features (stage 2)")
            mean, std = self.speaker_stats[speaker]
        return ((feats - mean) / std).astype(np.float32)

    def normalize_cut(self, cut) -> np.ndarray:
        return self(cut.load_features(), cut.supervisions[0].speaker if cut.supervisions else None)

    @property
    def dim(self) -> int:
        return int(self.global_mean.shape[0])

    def fingerprint(self) -> str:
        """A short hash of the statistics: an input of what is computed from normalised features."""
        spk = sorted(self.speaker_stats)
        arrays = [self.global_mean, self.global_std] + [
            np.asarray(x, np.float32) for s in spk for x in self.speaker_stats[s]
        ]
        return fingerprint([self.mode, spk, [a.tobytes().hex() for a in arrays]])

    def save(self, path) -> None:
        spk = sorted(self.speaker_stats)
        dim = self.global_mean.shape[0]
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f,
                    mode=np.array(self.mode),
                    global_mean=self.global_mean,
                    global_std=self.global_std,
                    speakers=np.array(spk, dtype=str),
                    speaker_mean=np.array([self.speaker_stats[s][0] for s in spk], np.float32).reshape(len(spk), dim),
                    speaker_std=np.array([self.speaker_stats[s][1] for s in spk], np.float32).reshape(len(spk), dim),
                )

    @classmethod
    def load(cls, path, mode: Optional[str] = None) -> "FeatureNormalizer":
        z = np.load(path)
        stats = {str(s): (m, d) for s, m, d in zip(z["speakers"], z["speaker_mean"], z["speaker_std"])}
        return cls(mode or str(z["mode"]), z["global_mean"], z["global_std"], speaker_stats=stats)

    @classmethod
    def of_features(cls, fbank_dir, mode: Optional[str] = None) -> "FeatureNormalizer":
        """The statistics the feature stage wrote for ``fbank_dir`` (its ``cmvn.npz``)."""
        path = Path(fbank_dir) / "cmvn.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run the feature stage first")
        return cls.load(path, mode)


class _Accumulator:
    def __init__(self):
        self.n, self.s, self.ss = 0, 0.0, 0.0

    def add(self, x: np.ndarray) -> None:
        x = x.astype(np.float64)
        self.n += x.shape[0]
        self.s = self.s + x.sum(0)
        self.ss = self.ss + (x**2).sum(0)

    def stats(self, floor: float = 1e-3):
        mean = self.s / self.n
        var = np.maximum(self.ss / self.n - mean**2, floor)
        return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def compute_cmvn(cuts_by_split: Dict[str, CutSet], mode: str, train_split: str = "train") -> FeatureNormalizer:
    glob = _Accumulator()
    per_spk: Dict[str, _Accumulator] = {}
    for split, cuts in cuts_by_split.items():
        for cut in cuts:
            feats = cut.load_features()
            if split == train_split:
                glob.add(feats)
            spk = cut.supervisions[0].speaker if cut.supervisions else None
            if spk is not None:
                per_spk.setdefault(spk, _Accumulator()).add(feats)
    if glob.n == 0:
        raise ValueError(f"no frames in split {train_split!r}: cannot compute normalisation statistics")
    mean, std = glob.stats()
    return FeatureNormalizer(mode, mean, std, speaker_stats={s: a.stats() for s, a in per_spk.items()})


def compute_features(
    manifest_dir,
    out_dir,
    corpus: str,
    *,
    splits: Sequence[str],
    cfg: "FeatureConfig",
    sample_rate: int,
    num_jobs: int = 1,
    allow_pipes: bool = False,
) -> FeatureNormalizer:
    """The feature stage: fbank of every split (``compute_fbank``) and CMVN statistics, the global
    ones from ``splits[0]``, saved as ``out_dir/cmvn.npz``."""
    cuts = compute_fbank(
        manifest_dir,
        out_dir,
        corpus,
        splits=splits,
        cfg=cfg,
        sample_rate=sample_rate,
        num_jobs=num_jobs,
        allow_pipes=allow_pipes,
    )
    normalizer = compute_cmvn(cuts, cfg.cmvn, train_split=splits[0])
    normalizer.save(Path(out_dir) / "cmvn.npz")
    log.info("fbank (%d bins) and %s CMVN statistics in %s", cfg.num_mel_bins, cfg.cmvn, out_dir)
    return normalizer
