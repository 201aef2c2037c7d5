"""eSpeak NG through ctypes (libespeak-ng bundled by ``espeakng-loader``).

eSpeak NG is GPL-3.0 and only generates data: nothing else in asr_kd imports it.

Reproducibility: the library keeps state
between utterances (flutter phase, a time-seeded noise generator, rate and
pitch that outlive a voice change), and re-initialising can deadlock. So the
library is initialised once per process and every utterance is synthesised in
a forked child that seeds eSpeak's and libc's generators first; the parent's
state never changes, and the same request always gives the same samples.
"""

import ctypes
import os
import pickle
import struct
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

ESPEAK_SAMPLE_RATE = 22050

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: accent (eSpeak voice), variant and prosody."""

    accent: str  # e.g. "en-us", "en-gb-scotland"
    variant: str  # e.g. "m3", "f2", "klatt"
    rate: int  # words per minute
    pitch: int  # 0-100
    pitch_range: int  # 0-100

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}"


@dataclass
class Synthesis:
    samples: np.ndarray  # int16, ESPEAK_SAMPLE_RATE
    words: List[Tuple[str, float]]  # (word, start seconds)
    phones: List[Tuple[str, float]]  # (eSpeak phoneme name, start seconds)
    word_offsets: List[int] = field(default_factory=list)  # byte offset of each WORD event in the text


class ESpeak:
    """A process-wide eSpeak NG instance. Use :func:`get_espeak`."""

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError(
                "the corpus generator needs eSpeak NG: pip install 'asr_kd[synth]' (./setup.sh does)"
            ) from e
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path().encode()
        lib = self.lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        # options bit 0: PHONEME events (eSpeak's ASCII phoneme names)
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 1)
        if rate != ESPEAK_SAMPLE_RATE:
            raise RuntimeError(f"espeak_Initialize returned {rate}, expected {ESPEAK_SAMPLE_RATE} Hz")
        self._libc = ctypes.CDLL(None)

    # -- runs in the forked child only ------------------------------------------------------
    def _synth_here(self, text: str, voice: Voice, seed: int) -> Synthesis:
        lib = self.lib
        lib.espeak_ng_SetRandSeed(seed)
        self._libc.srand(seed & 0x7FFFFFFF)
        if lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise ValueError(f"eSpeak does not know voice {voice.name!r}")
        for key, value in (("rate", voice.rate), ("pitch", voice.pitch), ("range", voice.pitch_range)):
            lib.espeak_SetParameter(_PARAM[key], int(value), 0)
        chunks: List[np.ndarray] = []
        events: List[Tuple[int, int, int, int, bytes]] = []

        def callback(wav, numsamples, ev):
            if numsamples > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
            i = 0
            while ev[i].type != _EVENT_LIST_TERMINATED:
                e = ev[i]
                name = bytes(e.id.string).split(b"\0")[0] if e.type == _EVENT_PHONEME else b""
                events.append((e.type, e.audio_position, e.text_position, e.length, name))
                i += 1
            return 0

        cb = _CALLBACK(callback)
        lib.espeak_SetSynthCallback(cb)
        raw = text.encode("utf-8")
        err = lib.espeak_Synth(raw, len(raw) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with code {err} for {text!r}")
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        words, phones, offsets = [], [], []
        for etype, pos_ms, tpos, length, name in events:
            t = pos_ms / 1000.0
            if etype == _EVENT_WORD:
                words.append((raw[tpos - 1 : tpos - 1 + length].decode("utf-8"), t))
                offsets.append(tpos - 1)
            elif etype == _EVENT_PHONEME and name:
                phones.append((name.decode("utf-8", "replace"), t))
        return Synthesis(samples.astype(np.int16), words, phones, offsets)

    @staticmethod
    def _in_child(fn, what: str):
        """Run ``fn()`` in a forked child and return its (picklable) result: the library's state
        in this process never changes, so every call starts from the same state."""
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                os.close(rfd)
                try:
                    payload = pickle.dumps(("ok", fn()))
                except BaseException as e:  # report, do not raise in the child
                    payload = pickle.dumps(("error", f"{type(e).__name__}: {e}"))
                with os.fdopen(wfd, "wb") as f:
                    f.write(struct.pack("<Q", len(payload)))
                    f.write(payload)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(wfd)
        with os.fdopen(rfd, "rb") as f:
            head = f.read(8)
            body = f.read(struct.unpack("<Q", head)[0]) if len(head) == 8 else b""
        _, status = os.waitpid(pid, 0)
        if not body:
            raise RuntimeError(f"eSpeak child died (status {status}) {what}")
        kind, value = pickle.loads(body)
        if kind != "ok":
            raise RuntimeError(f"eSpeak failed {what}: {value}")
        return value

    def synthesize(self, text: str, voice: Voice, seed: int) -> Synthesis:
        """Synthesise ``text``; the output depends only on the arguments."""
        return self._in_child(lambda: self._synth_here(text, voice, seed), f"synthesising {text!r} with {voice.name}")

    def phonemes(self, word: str, voice: str = "en-us", keep_stress: bool = False) -> List[str]:
        """eSpeak's pronunciation of one word as phoneme names, stress marks removed (or kept as
        a leading ' for primary and , for secondary stress when ``keep_stress``)."""
        return self.phonemes_of([word], voice, keep_stress)[0]

    def phonemes_of(self, words: Sequence[str], voice: str = "en-us", keep_stress: bool = False) -> List[List[str]]:
        """``phonemes`` of many words, transcribed in one forked child (a fork per word costs ~40 ms;
        eSpeak's word-by-word translation keeps no state between calls)."""

        def here() -> List[str]:
            self.lib.espeak_SetVoiceByName(voice.encode())
            out = []
            for word in words:
                ptr = ctypes.c_char_p(word.encode("utf-8"))
                # phonememode: ASCII names, separator '_' in bits 8-23
                out.append(
                    (self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, ord("_") << 8) or b"").decode(
                        "utf-8", "replace"
                    )
                )
            return out

        result = []
        for text in self._in_child(here, f"transcribing {len(words)} word(s) ({words[0]!r}...) with {voice}"):
            phones = []
            for p in text.replace(" ", "_").split("_"):
                p = p.strip() if keep_stress else p.replace("'", "").replace(",", "").strip()
                if p:
                    phones.append(p)
            result.append(phones)
        return result


_INSTANCE: Optional[ESpeak] = None


def get_espeak() -> ESpeak:
    global _INSTANCE
    if _INSTANCE is None:
        _INSTANCE = ESpeak()
    return _INSTANCE
