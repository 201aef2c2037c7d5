"""Training frames streamed from disk: the labelled cut manifest (and its soft targets) is read
lazily, a block of utterances at a time, so memory does not grow with the corpus.

Per epoch, in each DataLoader worker process of each rank:

1. the cut manifest is read lazily, its lines shuffled in a buffer of ``cut_buffer`` lines (seeded by
   (seed, epoch)), then sharded: line i goes to stream ``i % (ranks x workers)``, which alone parses it;
2. utterances are loaded (features normalised, pdf labels, soft targets) until a block holds
   ``block_frames`` frames; the block's frames are permuted and cut into batches of context
   windows that never cross an utterance edge (edge frames repeated, as ``FrameData.windows``);
3. the shard is read again from its start when it runs out: an epoch is a fixed number of steps,
   ``frames // batch_size`` (every rank takes the same number, so DDP never waits on a rank with
   a shorter shard), and each rank's batch is ``batch_size // ranks`` frames;
4. batches leave a worker stacked in groups of 16 (top-k targets still sparse) and are split and
   densified in the training process (``unstack``).

Soft targets: dense rows, or top-k (indices + log-probabilities) kept sparse in the block and
densified per batch. The in-memory path (``asr_kd.nnet.data.FrameData``) stays for small
corpora; ``train_model`` takes either. Decision: the streamed path trains on every cut (no
``fraction`` subset) and keeps the dev split in memory (scored after every epoch, batch by batch).
"""

import json
import random
import zlib
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple

import numpy as np
import torch
from lhotse import CutSet
from lhotse.serialization import deserialize_item, open_best

from asr_kd.data.features import FeatureNormalizer
from asr_kd.nnet.data import FrameData
from asr_kd.nnet.targets import TopKTargets
from asr_kd.utils.io import forget_open_arrays
from asr_kd.utils.memory import map_large_blocks, release_freed_memory
from asr_kd.utils.validity import file_digest, fingerprint


class StreamedFrames(torch.utils.data.IterableDataset):
    """An endless stream of batches for one rank, in stacked groups of ``group`` (``unstack`` /
    ``batches()`` give (windows, labels, soft targets or None) per batch)."""

    streamed = True  # asr_kd.nnet.data.FrameSource
    teacher_model = None  # streamed training takes stored soft targets only

    def __init__(
        self,
        cuts_path,
        normalizer: FeatureNormalizer,
        context: int,
        *,
        batch_size: int,
        num_classes: int,
        seed: int = 0,
        soft: bool = False,
        block_frames: int = 100_000,
        cut_buffer: int = 10_000,
        rank: int = 0,
        world: int = 1,
        group: int = 16,
        whole_batches: bool = False,
    ):
        self.cuts_path, self.normalizer, self.context = str(cuts_path), normalizer, context
        self.batch_size, self.num_classes, self.seed, self.soft = batch_size, num_classes, seed, soft
        self.block_frames, self.cut_buffer, self.rank, self.world = block_frames, cut_buffer, rank, world
        self.group = group  # batches per message from a loader worker
        self.whole_batches = whole_batches  # train.ddp average: each rank takes whole batches, 1/world of the steps
        self.epoch = 1
        self.num_frames, self.num_cuts, self.feat_dim = _count(self.cuts_path)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.num_frames // (self.batch_size * (self.world if self.whole_batches else 1)))

    @property
    def local_batch(self) -> int:
        """This rank's frames per step: the whole batch, or its share of the global batch."""
        return self.batch_size if self.whole_batches else max(1, self.batch_size // self.world)

    def fingerprint_inputs(self) -> str:
        """What the stream trains on, for checkpoint validity: the manifest and the statistics."""
        return fingerprint(
            [file_digest(self.cuts_path), self.normalizer.fingerprint(), self.soft, self.block_frames, self.cut_buffer]
        )

    def _cuts(self, stream: int, streams: int, epoch: int) -> Iterator:
        """This stream's cuts of the manifest, in a buffered shuffle seeded by (seed, epoch). The
        buffer holds compressed manifest lines (about 0.9 KB each against 2.8 KB as text, and
        several times that as cut objects), and only this stream's lines are parsed."""
        rng = random.Random(hash((self.seed, epoch)) & 0xFFFFFFFF)
        with open_best(self.cuts_path) as f:
            lines = (zlib.compress(line.encode(), 1) for line in f if line.strip())
            for i, line in enumerate(buffered_shuffle(lines, rng, self.cut_buffer)):
                if i % streams == stream:
                    yield deserialize_item(json.loads(zlib.decompress(line)))

    def _block(self, cuts: List) -> FrameData:
        forget_open_arrays()  # an open HDF5 file's metadata cache grows with the arrays read from it
        release_freed_memory()  # the last block's arrays are gone: give their heap back
        feats, labels, soft, starts, ends, n = [], [], [], [], [], 0
        for cut in cuts:
            x = self.normalizer.normalize_cut(cut)
            y = cut.load_pdf_ali().astype(np.int64)
            if len(y) != len(x):
                raise ValueError(f"{cut.id}: {len(y)} labels for {len(x)} frames")
            feats.append(x)
            labels.append(y)
            if self.soft:  # dense rows, or top-k (indices, log-probs) kept sparse until a batch is drawn
                soft.append(
                    torch.from_numpy(cut.load_soft_probs())
                    if cut.has_custom("soft_probs")
                    else (torch.from_numpy(cut.load_soft_idx()), torch.from_numpy(cut.load_soft_logp()))
                )
            starts.append(np.full(len(x), n))
            ends.append(np.full(len(x), n + len(x)))
            n += len(x)
        data = FrameData(
            torch.from_numpy(np.concatenate(feats)),
            torch.from_numpy(np.concatenate(labels)),
            torch.from_numpy(np.concatenate(starts)),
            torch.from_numpy(np.concatenate(ends)),
            [c.id for c in cuts],
            np.array([0]),
        )
        if self.soft and isinstance(soft[0], tuple):
            data.soft = TopKTargets(
                torch.cat([i for i, _ in soft]), torch.cat([lp for _, lp in soft]), self.num_classes
            )
        elif self.soft:
            data.soft = torch.cat(soft)
        return data

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]]:
        info = torch.utils.data.get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info else (0, 1)
        if (
            info
        ):  # a loader worker: its blocks' arrays must not fragment its heap (not the trainer's: see map_large_blocks)
            map_large_blocks()
        stream, streams = self.rank * nworkers + wid, self.world * nworkers
        local_batch = self.local_batch
        gen = torch.Generator().manual_seed(hash((self.seed, self.epoch, stream)) & 0x7FFFFFFF)
        epoch = self.epoch
        while True:  # endless: the training loop takes steps_per_epoch batches
            pending, frames, any_cut = [], 0, False
            for cut in self._cuts(stream, streams, epoch):
                any_cut = True
                pending.append(cut)
                frames += cut.num_frames
                if frames >= self.block_frames:
                    yield from self._batches(self._block(pending), local_batch, gen)
                    pending, frames = [], 0
            if pending:
                yield from self._batches(self._block(pending), local_batch, gen)
            if not any_cut:
                raise ValueError(
                    f"{self.cuts_path}: stream {stream} of {streams} got no cuts (fewer cuts than ranks x workers)"
                )
            epoch += 1000  # another shuffle when the shard is read again within the epoch

    def _batches(self, block: FrameData, size: int, gen: torch.Generator):
        """Groups of up to ``group`` batches, stacked (one message from a loader worker instead of
        ``group``: the per-message cost of the worker queue, ~3 ms, is paid once per group)."""
        perm = torch.randperm(len(block), generator=gen)
        full = len(perm) // size * size  # full batches only: every step has the same size
        for s in range(0, full, size * self.group):
            idx = perm[s : min(s + size * self.group, full)]
            g = len(idx) // size
            soft = None
            if isinstance(block.soft, TopKTargets):  # sparse over the queue, densified per batch by ``batches``
                soft = (block.soft.idx[idx].view(g, size, -1), block.soft.logp[idx].view(g, size, -1))
            elif block.soft is not None:
                soft = block.soft[idx].view(g, size, -1)
            yield (
                block.windows(idx, self.context).view(g, size, 2 * self.context + 1, -1),
                block.labels[idx].view(g, size),
                soft,
            )

    def batches(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]]:
        """The stream's batches read in this process: (windows, labels, dense soft targets or None)."""
        return unstack(iter(self), self.num_classes)


def unstack(groups, num_classes: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]]:
    """Batches (windows, labels, dense soft targets or None) out of the stream's stacked groups."""
    for x, y, soft in groups:
        for j in range(len(x)):
            if isinstance(soft, (tuple, list)):  # (indices, log-probabilities); the loader may hand a list
                yield x[j], y[j], TopKTargets(soft[0][j], soft[1][j], num_classes)[:]
            else:
                yield x[j], y[j], None if soft is None else soft[j]


def buffered_shuffle(items: Iterable, rng: random.Random, size: int) -> Iterator:
    """``items`` in a random order that only ever holds ``size`` of them (fill, then emit a random
    one for each newcomer, then the rest shuffled)."""
    buf = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        j = rng.randrange(size)
        yield buf[j]
        buf[j] = item
    rng.shuffle(buf)
    yield from buf


def _count(cuts_path) -> Tuple[int, int, int]:
    """(frames, cuts, feature dimension) of a cut manifest, read lazily."""
    frames = cuts = dim = 0
    for cut in CutSet.from_file(cuts_path):
        frames += cut.num_frames
        cuts += 1
        dim = cut.num_features
    if cuts == 0:
        raise ValueError(f"{cuts_path}: no cuts")
    return frames, cuts, dim


def stream_loader(dataset: StreamedFrames, num_workers: int = 1, prefetch_frames: int = 16_384):
    """A DataLoader over the stream (``num_workers`` processes read and batch; 0: in this process).
    Each worker keeps up to ``prefetch_frames`` frames of batches ready (at least 2 groups): enough
    to cover the second or so it spends loading its next block, so training does not stall at block
    edges (a constant few tens of MB of shared memory, whatever the corpus size)."""
    local_batch = dataset.local_batch
    prefetch = max(2, -(-prefetch_frames // (local_batch * dataset.group)))  # in groups of batches
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=False,
        prefetch_factor=prefetch if num_workers else None,
    )


class EpochLoaders:
    """Each epoch's batches from its own loader, the next epoch's loader started halfway through
    this one: its workers have read their first block by the time the epoch begins, instead of the
    trainer waiting a second or two at every epoch start. Each epoch's stream still depends only on
    (seed, epoch), so results and resumed runs are unchanged."""

    def __init__(self, dataset: StreamedFrames, workers: int, last_epoch: int):
        self.dataset, self.workers, self.last_epoch = dataset, workers, last_epoch
        self._started = {}

    def _start(self, epoch: int):
        self.dataset.set_epoch(epoch)  # the workers take the dataset as it is when the iterator starts
        return unstack(iter(stream_loader(self.dataset, self.workers)), self.dataset.num_classes)

    def batches(self, epoch: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]]:
        """``steps_per_epoch`` batches of epoch ``epoch``."""
        steps = self.dataset.steps_per_epoch
        it = self._started.pop(epoch, None) or self._start(epoch)
        try:
            for b in range(steps):
                if b == steps // 2 and self.workers and epoch < self.last_epoch:
                    self._started[epoch + 1] = self._start(epoch + 1)
                yield next(it)
        finally:
            it.close()  # stops this epoch's workers

    def close(self) -> None:
        for it in self._started.values():
            it.close()
        self._started.clear()


def labelled_cuts_path(ali_dir, corpus: str, split: str, *, soft_dir=None) -> Path:
    """The manifest to stream: the soft targets' (their arrays attached to the labelled cuts) or the
    alignment's."""
    path = Path(soft_dir) / "cuts.jsonl.gz" if soft_dir else Path(ali_dir) / f"{corpus}_{split}_cuts.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the {'soft-targets' if soft_dir else 'alignment'} stage first")
    return path
