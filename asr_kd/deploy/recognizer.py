"""Speech in, words out, chunk by chunk: fbank (kaldi-native-fbank) -> global CMVN -> the
network(s) on context windows -> hybrid log-likelihoods -> Kaldi's FasterDecoder over HCLG.

Every step is exact under chunking, so the final result of a stream equals the offline result of
the same audio (``transcribe`` is a stream fed in one piece):

- the feature extractor is Kaldi's online one;
- a frame's window is scored once its right context has arrived (at the end of the audio the last
  frame is repeated, at the start the first, as training's splicing did);
- ``FasterDecoder.AdvanceDecoding`` does the same work per frame whatever the chunking.

The decoder is kaldi-decoder's FasterDecoder (1-best, no lattice), not the lattice decoder of
the decode stage: it is the one with an online interface in the Python bindings. Both search the
same graph with the same likelihoods; the deployment table reports the WER of this path.

Word confidences (``Recognizer(confidences=True)``, the sixth CTM column of ``transcribe --ctm``):
each closed segment's log-likelihoods are decoded once more into a lattice (the decode stage's
LatticeSimpleDecoder, lattice beam 6) and every 1-best word gets the posterior mass of lattice
arcs emitting it near its start (``LatticeSet.word_confidences``), uncalibrated.
"""

import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from asr_kd.deploy.audio import StreamingFbank
from asr_kd.deploy.model_dir import ModelDir, ModelDirError
from asr_kd.deploy.networks import runtime
from asr_kd.decode.lattice import LATTICE_BEAM, LatticeSet, decode_lattices
from asr_kd.gmm.labels import phone_segments
from asr_kd.kaldi import kaldi_decoder, kaldifst
from asr_kd.kaldi.fst import read_fst, with_word_penalty


class Scorer:
    """Hybrid log-likelihoods, acoustic scale included: (mean member posterior / prior) / LM weight."""

    def __init__(self, model: ModelDir, fmt: str = "pt", threads: int = 1, *, lmwt: Optional[float] = None):
        self.nets = []
        for p in model.network_files(fmt):
            try:
                self.nets.append(runtime(p, threads))
            except ValueError:
                raise
            except Exception as e:  # onnxruntime / TorchScript raise their own types for a damaged file
                raise ModelDirError(f"{p}: the network cannot be loaded ({type(e).__name__}: {str(e)[:160]})") from None
        self.contexts = [m["context"] for m in model.card["members"]]
        self.context = max(self.contexts)
        self.priors = model.priors
        self.scale = 1.0 / (lmwt or model.card["decode"]["lmwt"])

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """``windows``: (n, 2 * context + 1, dim) -> (n, pdfs) scaled log-likelihoods."""
        post = 0.0
        for net, c in zip(self.nets, self.contexts):
            logits = net(windows[:, self.context - c : self.context + c + 1])
            logits = logits - logits.max(1, keepdims=True)
            p = np.exp(logits)
            post = post + p / p.sum(1, keepdims=True)
        logpost = np.log(np.maximum(post / len(self.nets), 1e-30))
        return ((logpost - self.priors) * self.scale).astype(np.float32)


class FrameWindows:
    """Normalised frames in, (n, 2C+1, dim) windows out for the frames whose right context is in."""

    def __init__(self, context: int):
        self.c = context
        self.buf: Optional[np.ndarray] = None  # frames from index self.base on
        self.base = 0
        self.emitted = 0  # frames whose windows were returned
        self.received = 0

    def _windows(self, upto: int) -> np.ndarray:
        idx = np.arange(self.emitted, upto)[:, None] + np.arange(-self.c, self.c + 1)[None, :]
        idx = np.clip(idx, 0, self.received - 1) - self.base
        return self.buf[idx]

    def push(self, frames: np.ndarray, last: bool = False) -> np.ndarray:
        if len(frames):
            self.buf = frames if self.buf is None else np.concatenate([self.buf, frames])
            self.received += len(frames)
        upto = self.received if last else max(self.emitted, self.received - self.c)
        if self.buf is None or upto <= self.emitted:
            return np.zeros((0, 2 * self.c + 1, 0 if self.buf is None else self.buf.shape[1]), np.float32)
        out = self._windows(upto)
        self.emitted = upto
        keep_from = max(self.base, self.emitted - self.c)  # earlier frames are no one's context any more
        self.buf, self.base = self.buf[keep_from - self.base :], keep_from
        return out


@dataclass
class Result:
    words: List[str]
    transition_ids: List[int] = field(default_factory=list)
    word_times: Optional[List[Tuple[str, float, float]]] = None  # (word, start s, duration s)
    frames: int = 0
    confidences: Optional[List[Optional[float]]] = None  # one per word (Recognizer(confidences=True))


class Recognizer:
    """One loaded model directory; ``stream()`` starts an utterance, ``transcribe(samples)`` does
    a whole one."""

    def __init__(
        self,
        model: ModelDir,
        fmt: str = "pt",
        threads: int = 1,
        *,
        beam: Optional[float] = None,
        max_active: Optional[int] = None,
        lmwt: Optional[float] = None,
        wip: Optional[float] = None,
        confidences: bool = False,
        lattice_beam: float = LATTICE_BEAM,
    ):
        self.model = model
        self.confidences, self.lattice_beam = confidences, lattice_beam
        dec = model.card["decode"]
        self.scorer = Scorer(model, fmt, threads, lmwt=lmwt)
        graph = read_fst(model.path / "HCLG.fst")
        if graph is None:
            raise ModelDirError(
                f"{model.path / 'HCLG.fst'}: the decoding graph cannot be read (truncated or not an FST)"
            )
        extra = (
            0.0 if wip is None else wip - dec.get("wip_in_graph", 0.0)
        )  # the export put the tuned penalty in the graph
        self.graph = with_word_penalty(graph, extra) if extra else graph
        self.beam = beam or dec["beam"]
        self.options = kaldi_decoder.FasterDecoderOptions(beam=self.beam, max_active=max_active or dec["max_active"])
        self.word_ids = {w: i for i, w in model.words.items()}
        self.id2pdf = model.maps["pdf"][1:].astype(np.int64)  # column of transition-id t is pdf id2pdf[t - 1]

    def stream(self, endpointing: Optional["Endpointing"] = None) -> "Stream":
        """A stream for partial results (``Endpointing()`` by default: linear time on long audio)."""
        return Stream(self, endpointing if endpointing is not None else Endpointing())

    def transcribe(self, samples, endpointing: Optional["Endpointing"] = None) -> Result:
        """One recording, offline (no partial results): ``samples`` is an array or an iterable of
        blocks (``audio_blocks``). With ``endpointing`` (what ``transcribe`` uses for files) a
        segment is closed only once it is longer than ``max_segment``, at its last silence: memory
        stays flat on hour-long files; without it the whole recording is one search."""
        s = Stream(self, endpointing)
        for block in [samples] if isinstance(samples, np.ndarray) else samples:
            s.accept(block, partial=False)
        return s.finish()


@dataclass(frozen=True)
class Endpointing:
    """When a stream closes a segment (Kaldi's online endpoint rules 1, 3 and 5, in seconds):
    trailing silence with nothing decoded, trailing silence after words, and any segment this
    long. The segment is cut in the middle of its last silence of at least ``min_cut_silence``
    (at the current frame when it has none): the words before the cut are final, and a fresh
    decoder takes the frames after it again (their log-likelihoods are kept). A partial result
    then traces back over the open segment only, so each chunk costs the same and memory stays
    flat however long the audio runs."""

    silence_without_words: float = 5.0
    silence_after_words: float = 2.0
    max_segment: float = 20.0
    min_cut_silence: float = 0.1


class Stream:
    """One utterance, fed chunk by chunk. ``endpointing`` None: one segment (exactly the
    offline search, memory growing with the audio)."""

    def __init__(self, rec: Recognizer, endpointing: Optional[Endpointing] = None):
        self.rec = rec
        self.fbank = StreamingFbank(rec.model.settings)
        self.windows = FrameWindows(rec.scorer.context)
        self.decoder = kaldi_decoder.FasterDecoder(rec.graph, rec.options)
        self.decoder.init_decoding()
        self.endpointing = endpointing
        self.frames = 0
        self.segment_start = 0  # first frame of the open segment
        self.segment_loglikes: List[np.ndarray] = []  # the open segment's scaled log-likelihoods (endpointing only)
        self.closed_words: List[str] = []
        self.closed_tids: List[int] = []
        self.closed_conf: List[Optional[float]] = []
        self.keep_loglikes = endpointing is not None or rec.confidences
        self.chunk_seconds: List[float] = []

    def _decode(self, ll: np.ndarray) -> None:
        offset = self.frames - self.segment_start
        self.decoder.advance_decoding(kaldi_decoder.DecodableCtc(np.ascontiguousarray(ll), offset=offset))
        self.frames += len(ll)

    def _advance(self, feats: np.ndarray, last: bool) -> None:
        norm = self.rec.model.normalizer(feats) if len(feats) else feats
        w = self.windows.push(norm, last)
        if len(w):
            ll = self.rec.scorer(w)[:, self.rec.id2pdf]
            if self.keep_loglikes:
                self.segment_loglikes.append(ll)
            self._decode(ll)

    def accept(self, samples: np.ndarray, partial: bool = True) -> List[str]:
        """Feed samples; returns the current partial result (words of the best path so far), or
        [] with ``partial=False`` (then endpoints are checked only once the open segment is
        longer than the longest allowed)."""
        t0 = time.perf_counter()
        self._advance(self.fbank.accept(samples), last=False)
        if partial:
            words = self.partial()
        else:
            words = []
            shift = self.rec.model.settings.frame_shift
            if (
                self.endpointing is not None
                and (self.frames - self.segment_start) * shift >= self.endpointing.max_segment
            ):
                self.partial()
        self.chunk_seconds.append(time.perf_counter() - t0)
        return words

    def partial(self) -> List[str]:
        if self.frames == self.segment_start:
            return list(self.closed_words)
        words, tids = self._best(final=False)
        if self.endpointing is not None and self._endpoint(words, tids):
            self._close_segment(words, tids)
            return list(self.closed_words)
        return self.closed_words + words

    def _silent(self, tids: Sequence[int]) -> np.ndarray:
        return np.isin(self.rec.model.maps["phone"][np.asarray(tids, np.int64)], list(self.rec.model.silence_phones))

    def _endpoint(self, words: List[str], tids: List[int]) -> bool:
        rule, shift = self.endpointing, self.rec.model.settings.frame_shift
        if (self.frames - self.segment_start) * shift >= rule.max_segment:
            return True
        silent = self._silent(tids)
        trailing = len(silent) - (int(np.flatnonzero(~silent)[-1]) + 1 if (~silent).any() else 0)
        limit = rule.silence_after_words if words else rule.silence_without_words
        return trailing * shift >= limit

    def _cut_frame(self, words: List[str], tids: List[int]) -> Tuple[int, int]:
        """(cut frame in the segment, words before it): the middle of the last silence run of at
        least ``min_cut_silence``, or the segment's end when there is none (or the words' frames
        cannot be placed)."""
        n, shift = len(tids), self.rec.model.settings.frame_shift
        times = word_times(words, tids, self.rec.model)
        if n < self.frames - self.segment_start or times is None:
            return self.frames - self.segment_start, len(words)
        silent = self._silent(tids)
        min_run = max(1, int(round(self.endpointing.min_cut_silence / shift)))
        t = n
        while t > 0:
            if not silent[t - 1]:
                t -= 1
                continue
            end = t
            while t > 0 and silent[t - 1]:
                t -= 1
            if end - t >= min_run and t > 0:
                cut = (t + end) // 2
                before = sum(1 for _, start, dur in times if (start + dur) / shift <= cut + 0.5)
                if all(start / shift >= cut - 0.5 for _, start, _ in times[before:]):
                    return cut, before
        return n, len(words)

    def _close_segment(self, words: List[str], tids: List[int]) -> None:
        cut, before = self._cut_frame(words, tids)
        seg = np.concatenate(self.segment_loglikes) if self.segment_loglikes else np.zeros((0, 0), np.float32)
        if self.rec.confidences:
            self.closed_conf += self._confidences(seg[:cut], words[:before], tids[:cut])
        self.closed_words += words[:before]
        self.closed_tids += tids[:cut]
        rest = seg[cut:]
        self.frames = self.segment_start = self.segment_start + cut
        self.decoder.init_decoding()
        self.segment_loglikes = [rest] if len(rest) else []
        if len(rest):
            self._decode(rest)

    def _best(self, final: bool) -> Tuple[List[str], List[int]]:
        ok, lat = self.decoder.get_best_path(use_final_probs=final)
        if not ok:
            return [], []
        ok, tids, word_ids, _ = kaldifst.get_linear_symbol_sequence(lat)
        return [self.rec.model.words[w] for w in word_ids], list(tids)

    def finish(self) -> Result:
        t0 = time.perf_counter()
        self._advance(self.fbank.finish(), last=True)
        words, tids = self._best(final=self.decoder.reached_final()) if self.frames > self.segment_start else ([], [])
        conf = None
        if self.rec.confidences:
            seg = np.concatenate(self.segment_loglikes) if self.segment_loglikes else np.zeros((0, 0), np.float32)
            conf = self.closed_conf + self._confidences(seg, words, tids)
        words, tids = self.closed_words + words, self.closed_tids + tids
        self.chunk_seconds.append(time.perf_counter() - t0)
        return Result(words, tids, word_times(words, tids, self.rec.model), self.frames, conf)

    def _confidences(self, ll: np.ndarray, words: List[str], tids: List[int]) -> List[Optional[float]]:
        """Lattice posteriors of a segment's 1-best words (None where the words' times cannot be placed)."""
        if not words:
            return []
        times = word_times(words, tids, self.rec.model)
        if times is None or not len(ll):
            return [None] * len(words)
        shift = self.rec.model.settings.frame_shift
        texts = decode_lattices(
            self.rec.graph, {"segment": ll}, 1.0, beam=self.rec.beam, lattice_beam=self.rec.lattice_beam
        )  # ll: scaled already
        lats = LatticeSet.from_texts(texts.items())
        path = ([self.rec.word_ids[w] for w in words], [], [int(round(start / shift)) for _, start, _ in times])
        return [c for _, _, c in lats.word_confidences(1.0, 0.0, paths={"segment": path})["segment"]]


def word_times(words: Sequence[str], tids: Sequence[int], model: ModelDir) -> Optional[List[Tuple[str, float, float]]]:
    """(word, start, duration) from the 1-best alignment: phone segments (as Kaldi's SplitToPhones),
    silence dropped, matched in order against each word's pronunciations (as lattice-align-words-lexicon
    does). None when the phones do not spell the words (not expected from an HCLG path)."""
    shift = model.settings.frame_shift
    segs = [s for s in phone_segments(list(tids), model.maps) if s[0] not in model.silence_phones]
    out, i = [], 0
    for w in words:
        for pron in sorted(model.pronunciations.get(w, []), key=len, reverse=True):
            if [s[0] for s in segs[i : i + len(pron)]] == pron:
                start, end = segs[i][1], segs[i + len(pron) - 1][2]
                out.append((w, round(start * shift, 3), round((end - start) * shift, 3)))
                i += len(pron)
                break
        else:
            return None
    return out


def ctm_lines(utt: str, result: Result) -> List[str]:
    """Kaldi CTM: ``utt 1 start duration word`` per word, and its confidence as a sixth column
    when the result has them (lattice-to-ctm-conf)."""
    times = result.word_times or []
    if result.confidences is None or len(result.confidences) != len(times):
        return [f"{utt} 1 {s:.2f} {d:.2f} {w}" for w, s, d in times]
    return [
        f"{utt} 1 {s:.2f} {d:.2f} {w} {'-' if c is None else f'{c:.2f}'}"
        for (w, s, d), c in zip(times, result.confidences)
    ]
