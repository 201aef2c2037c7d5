"""LibriSpeech and mini LibriSpeech through lhotse, with the augmentations of Kaldi/icefall recipes.

Splits (decisions):
- full: train = ``train_parts`` (default train-clean-100), dev = dev-clean, test = test-clean.
- mini: train = train-clean-5; mini LibriSpeech has only dev-clean-2 besides, so its speakers are
  split in two (sorted, alternating): one half is dev (tuning), the other test (never tuned on).
Augmentation of the training split only, each as extra copies of the training cuts:
- speed perturbation (``speed_factors``, e.g. 0.9 1.1): ids get lhotse's ``_sp<factor>`` suffix;
  their frame labels are recomputed by the alignment stage, which aligns every training cut.
- MUSAN noise (``musan_dir``): each cut mixed with a random MUSAN noise recording at 10-20 dB SNR
  (seeded); ids get ``_musan``.
The official lexicon and LMs (OpenSLR 11) are fetched by ``download_lm_resources``.
"""

import logging
import random
from pathlib import Path
from typing import Dict, Optional, Sequence

from lhotse import CutSet

from asr_kd.data.manifests import CorpusError, SkipReport, manifest_paths, write_manifests
from asr_kd.utils.io import atomic_path

log = logging.getLogger(__name__)

MINI_PARTS = ("train-clean-5", "dev-clean-2")
LM_URL = "https://www.openslr.org/resources/11"
LM_FILES = ("librispeech-lexicon.txt", "3-gram.pruned.1e-7.arpa.gz", "3-gram.arpa.gz", "4-gram.arpa.gz")


def download_librispeech(target_dir, mini: bool, train_parts: Sequence[str] = ("train-clean-100",)) -> Path:
    """lhotse's download (needs the internet); returns the folder that holds LibriSpeech/."""
    from lhotse.recipes import download_librispeech as _download

    parts = "mini_librispeech" if mini else list(train_parts) + ["dev-clean", "test-clean"]
    _download(target_dir, dataset_parts=parts)
    return Path(target_dir) / "LibriSpeech"


def download_lm_resources(target_dir, files: Sequence[str] = LM_FILES) -> Dict[str, Path]:
    """The official lexicon and ARPA LMs from OpenSLR 11 (.gz files are kept compressed and also
    unpacked, as kaldilm reads plain ARPA)."""
    import gzip
    import shutil

    from lhotse.utils import resumable_download

    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in files:
        resumable_download(f"{LM_URL}/{name}", filename=target / name)
        if name.endswith(".gz"):
            plain = target / name[:-3]
            if not plain.exists():
                with gzip.open(target / name, "rb") as src, atomic_path(plain) as tmp, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            out[name[:-3]] = plain
        else:
            out[name] = target / name
    return out


def _lhotse_parts(corpus_dir: Path, parts: Sequence[str], num_jobs: int):
    from lhotse.recipes import prepare_librispeech as _prepare

    missing = [p for p in parts if not (corpus_dir / p).is_dir()]
    if missing:
        raise CorpusError(
            f"{corpus_dir}: missing LibriSpeech part(s) {', '.join(missing)} (expected {corpus_dir}/<part>/<spk>/<chapter>/)"
        )
    return _prepare(corpus_dir, dataset_parts=list(parts), num_jobs=num_jobs)


def prepare_librispeech(
    corpus_dir,
    out_dir,
    mini: bool = True,
    *,
    train_parts: Sequence[str] = ("train-clean-100",),
    speed_factors: Sequence[float] = (),
    musan_dir: Optional[str] = None,
    seed: int = 0,
    num_jobs: int = 1,
) -> Dict[str, int]:
    """Manifests librispeech_{recordings,supervisions,cuts}_{train,dev,test}; returns cuts per split."""
    corpus_dir = Path(corpus_dir)
    if (corpus_dir / "LibriSpeech").is_dir():
        corpus_dir = corpus_dir / "LibriSpeech"
    if mini:
        m = _lhotse_parts(corpus_dir, MINI_PARTS, num_jobs)
        train = [m["train-clean-5"]]
        recs, sups = m["dev-clean-2"]["recordings"], m["dev-clean-2"]["supervisions"]
        speakers = sorted({s.speaker for s in sups})
        dev_spk = set(speakers[::2])
        splits = {
            "dev": (recs, sups.filter(lambda s: s.speaker in dev_spk)),
            "test": (recs, sups.filter(lambda s: s.speaker not in dev_spk)),
        }
    else:
        m = _lhotse_parts(corpus_dir, list(train_parts) + ["dev-clean", "test-clean"], num_jobs)
        train = [m[p] for p in train_parts]
        splits = {
            "dev": (m["dev-clean"]["recordings"], m["dev-clean"]["supervisions"]),
            "test": (m["test-clean"]["recordings"], m["test-clean"]["supervisions"]),
        }
    from lhotse import RecordingSet, SupervisionSet

    splits["train"] = (
        RecordingSet.from_recordings(r for t in train for r in t["recordings"]),
        SupervisionSet.from_segments(s for t in train for s in t["supervisions"]),
    )
    counts = {}
    for split in ("train", "dev", "test"):
        recs, sups = splits[split]
        sup_ids = {s.recording_id for s in sups}
        recs = recs.filter(lambda r: r.id in sup_ids)
        cuts = write_manifests(out_dir, "librispeech", split, recordings=recs, supervisions=sups, report=SkipReport())
        counts[split] = len(cuts)
    if speed_factors or musan_dir:
        counts["train"] = augment_train(out_dir, "librispeech", speed_factors, musan_dir=musan_dir, seed=seed)
    log.info("librispeech manifests in %s: %s", out_dir, counts)
    return counts


def augment_train(
    out_dir, corpus: str, speed_factors: Sequence[float] = (), *, musan_dir: Optional[str] = None, seed: int = 0
) -> int:
    """Append speed-perturbed and/or MUSAN-mixed copies to the training cuts manifest."""
    path = manifest_paths(out_dir, corpus, "train")["cuts"]
    base = CutSet.from_file(path).to_eager()
    base = base.filter(lambda c: "_sp" not in c.id and not c.id.endswith("_musan")).to_eager()  # idempotent reruns
    parts = [base]
    for f in speed_factors:
        if float(f) != 1.0:
            parts.append(base.perturb_speed(float(f), affix_id=True))
    if musan_dir:
        from lhotse.recipes import prepare_musan

        noise = prepare_musan(musan_dir, parts=("noise",))["noise"]["recordings"]
        if len(noise) == 0:
            raise CorpusError(f"{musan_dir}: no MUSAN noise recordings under noise/")
        noise_cuts = CutSet.from_manifests(recordings=noise).to_eager()
        rng = random.Random(seed)
        mixed = []
        for c in base:
            n = noise_cuts[rng.randrange(len(noise_cuts))]
            mixed.append(
                c.mix(n, snr=rng.uniform(10.0, 20.0), allow_padding=True, preserve_id="left")
                .truncate(duration=c.duration)
                .with_id(f"{c.id}_musan")
            )
        parts.append(CutSet.from_cuts(mixed))
    cuts = CutSet.from_cuts(c for p in parts for c in p).to_eager()
    with atomic_path(path) as tmp:
        cuts.to_file(tmp)
    log.info(
        "%s/train: %d cuts after augmentation (speed %s, musan %s)",
        corpus,
        len(cuts),
        list(speed_factors),
        bool(musan_dir),
    )
    return len(cuts)


def prepare_from_options(
    out_dir,
    corpus_dir=None,
    download_dir=None,
    *,
    lm_dir=None,
    mini: bool = True,
    train_parts: Sequence[str] = ("train-clean-100",),
    speed_factors: Sequence[float] = (),
    musan_dir=None,
    seed: int = 0,
    num_jobs: int = 1,
) -> None:
    """The corpus stages of the LibriSpeech recipe: the official lexicon and LMs into ``lm_dir``
    (when given), the corpus downloaded into ``download_dir`` (when given, else ``corpus_dir`` is
    used), and its manifests."""
    if lm_dir:
        download_lm_resources(lm_dir)
    if download_dir:
        corpus_dir = download_librispeech(download_dir, mini, train_parts)
    if corpus_dir:
        prepare_librispeech(
            corpus_dir,
            out_dir,
            mini=mini,
            train_parts=train_parts,
            speed_factors=speed_factors,
            musan_dir=musan_dir,
            seed=seed,
            num_jobs=num_jobs,
        )
