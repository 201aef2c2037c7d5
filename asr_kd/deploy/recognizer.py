"""Speech in, words out, chunk by chunk: fbank (kaldi-native-fbank) -> global CMVN -> the
network(s) on context windows -> hybrid log-likelihoods -> Kaldi's FasterDecoder over HCLG.

Every step is exact under chunking, so the final result of a stream equals the offline result of
the same audio (``transcribe`` is a stream fed in one piece):

- the feature extractor is Kaldi's online one;
- a frame's window is scored once its right context has arrived (at the end of the audio the last
  frame is repeated, at the start the first, as training's splicing did);
- ``FasterDecoder.AdvanceDecoding`` does the same work per frame whatever the chunking.

The decoder is kaldi-decoder's FasterDecoder (1-best, no lattice), not the LatticeFasterDecoder of
the decode stage: it is the one with an online interface in the Python bindings. Both search the
same graph with the same likelihoods; the deployment table reports the WER of this path.
"""
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from asr_kd.deploy.audio import StreamingFbank
from asr_kd.deploy.model_dir import ModelDir, ModelDirError
from asr_kd.deploy.networks import runtime
from asr_kd.gmm.labels import phone_segments
from asr_kd.kaldi import kaldi_decoder, kaldifst
from asr_kd.kaldi.fst import read_fst, with_word_penalty


class Scorer:
    """Hybrid log-likelihoods, acoustic scale included: (mean member posterior / prior) / LM weight."""

    def __init__(self, model: ModelDir, fmt: str = "pt", threads: int = 1, lmwt: Optional[float] = None):
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


class Recognizer:
    """One loaded model directory; ``stream()`` starts an utterance, ``transcribe(samples)`` does
    a whole one."""

    def __init__(self, model: ModelDir, fmt: str = "pt", threads: int = 1, beam: Optional[float] = None,
                 max_active: Optional[int] = None, lmwt: Optional[float] = None, wip: Optional[float] = None):
        self.model = model
        dec = model.card["decode"]
        self.scorer = Scorer(model, fmt, threads, lmwt)
        graph = read_fst(model.path / "HCLG.fst")
        if graph is None:
            raise ModelDirError(f"{model.path / 'HCLG.fst'}: the decoding graph cannot be read (truncated or not an FST)")
        extra = 0.0 if wip is None else wip - dec.get("wip_in_graph", 0.0)  # the export put the tuned penalty in the graph
        self.graph = with_word_penalty(graph, extra) if extra else graph
        self.options = kaldi_decoder.FasterDecoderOptions(beam=beam or dec["beam"], max_active=max_active or dec["max_active"])
        self.id2pdf = model.maps["pdf"][1:].astype(np.int64)  # column of transition-id t is pdf id2pdf[t - 1]

    def stream(self, endpointing: Optional["Endpointing"] = None) -> "Stream":
        """A stream for partial results (``Endpointing()`` by default: linear time on long audio)."""
        return Stream(self, endpointing if endpointing is not None else Endpointing())

    def transcribe(self, samples) -> Result:
        """One utterance decoded whole (no endpointing, no partial tracebacks): ``samples`` is an
        array or an iterable of blocks (``audio_blocks``: memory stays flat on long files)."""
        s = Stream(self, None)
        for block in [samples] if isinstance(samples, np.ndarray) else samples:
            s.accept(block, partial=False)
        return s.finish()


@dataclass(frozen=True)
class Endpointing:
    """When a stream closes a segment and starts decoding afresh (Kaldi's online endpoint rules 1,
    3 and 5, in seconds): trailing silence with nothing decoded, trailing silence after words, and
    any segment this long. A closed segment's words are final; the next partial traces back only
    over the open segment, so each chunk costs the same however long the stream runs."""
    silence_without_words: float = 5.0
    silence_after_words: float = 2.0
    max_segment: float = 20.0


class Stream:
    def __init__(self, rec: Recognizer, endpointing: Optional[Endpointing] = None):
        self.rec = rec
        self.fbank = StreamingFbank(rec.model.settings)
        self.windows = FrameWindows(rec.scorer.context)
        self.decoder = kaldi_decoder.FasterDecoder(rec.graph, rec.options)
        self.decoder.init_decoding()
        self.endpointing = endpointing
        self.frames = 0
        self.segment_start = 0  # first frame of the open segment
        self.closed_words: List[str] = []
        self.closed_tids: List[int] = []
        self.chunk_seconds: List[float] = []

    def _advance(self, feats: np.ndarray, last: bool) -> None:
        norm = self.rec.model.normalizer(feats) if len(feats) else feats
        w = self.windows.push(norm, last)
        if len(w):
            ll = self.rec.scorer(w)[:, self.rec.id2pdf]
            offset = self.frames - self.segment_start
            self.decoder.advance_decoding(kaldi_decoder.DecodableCtc(np.ascontiguousarray(ll), offset=offset))
            self.frames += len(ll)

    def accept(self, samples: np.ndarray, partial: bool = True) -> List[str]:
        """Feed samples; returns the current partial result (words of the best path so far), or
        [] with ``partial=False`` (no traceback: the offline path)."""
        t0 = time.perf_counter()
        self._advance(self.fbank.accept(samples), last=False)
        words = self.partial() if partial else []
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

    def _endpoint(self, words: List[str], tids: List[int]) -> bool:
        rule, shift = self.endpointing, self.rec.model.settings.frame_shift
        if (self.frames - self.segment_start) * shift >= rule.max_segment:
            return True
        phones = self.rec.model.maps["phone"]
        trailing = 0
        for t in reversed(tids):
            if int(phones[t]) not in self.rec.model.silence_phones:
                break
            trailing += 1
        limit = rule.silence_after_words if words else rule.silence_without_words
        return trailing * shift >= limit

    def _close_segment(self, words: List[str], tids: List[int]) -> None:
        self.closed_words += words
        self.closed_tids += tids + [tids[-1] if tids else 0] * (self.frames - self.segment_start - len(tids))
        self.segment_start = self.frames
        self.decoder.init_decoding()

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
        words, tids = self.closed_words + words, self.closed_tids + tids
        self.chunk_seconds.append(time.perf_counter() - t0)
        return Result(words, tids, word_times(words, tids, self.rec.model), self.frames)


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
    """Kaldi CTM: ``utt 1 start duration word`` per word."""
    return [f"{utt} 1 {s:.2f} {d:.2f} {w}" for w, s, d in result.word_times or []]
