"""A lang directory in the spirit of Kaldi's ``utils/prepare_lang.sh``.

Files written (Kaldi formats)::

    phones.txt words.txt          symbol tables (<eps>=0; #0.. disambiguation symbols)
    topo                          HMM topology: 3-state left-to-right phones, 5-state silence
    L.fst L_disambig.fst          lexicon transducers (OpenFst binary), optional silence between words
    lexiconp.txt lexiconp_disambig.txt
    phones/{silence,nonsilence,optional_silence,disambig,context_indep}.{txt,int}
    oov.txt                       the word OOVs map to, if any (else empty: OOVs are errors)

Decisions: phones are word-position dependent only on request (``position_dependent_phones``:
Kaldi's _B begin, _I internal, _E end, _S singleton variants of the non-silence phones, listed in
``phones/word_boundary.txt``; the silence phones SIL and SPN keep one form, and only variants the
lexicon uses are created); the silence phone is ``SIL``, optional between words with probability
``sil_prob``.
"""

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from asr_kd.kaldi import kaldifst, khg
from asr_kd.lang.lexicon import Lexicon, add_disambig
from asr_kd.utils.io import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

SIL = "SIL"


@dataclass
class LangConfig:
    sil_prob: float = 0.5
    num_nonsil_states: int = 3
    num_sil_states: int = 5
    oov_word: Optional[str] = None  # e.g. "<UNK>" (pronounced SPN); None: OOVs are errors
    position_dependent_phones: bool = False  # Kaldi's _B _I _E _S word-position variants of non-silence phones


def topology_text(
    nonsil: Sequence[int], sil: Sequence[int], num_nonsil_states: int = 3, *, num_sil_states: int = 5
) -> str:
    """Kaldi text topology. Silence: first state enters the middle ones, which are fully
    connected among themselves and to the last, as in Kaldi's gen_topo.pl."""
    out = ["<Topology>", "<TopologyEntry>", "<ForPhones>", " ".join(map(str, nonsil)), "</ForPhones>"]
    for s in range(num_nonsil_states):
        out.append(f"<State> {s} <PdfClass> {s} <Transition> {s} 0.75 <Transition> {s + 1} 0.25 </State>")
    out += [f"<State> {num_nonsil_states} </State>", "</TopologyEntry>"]
    if sil:
        n = num_sil_states
        out += ["<TopologyEntry>", "<ForPhones>", " ".join(map(str, sil)), "</ForPhones>"]
        if n == 1:
            out.append("<State> 0 <PdfClass> 0 <Transition> 0 0.75 <Transition> 1 0.25 </State>")
        else:
            p = 1.0 / (n - 1)
            out.append(
                "<State> 0 <PdfClass> 0 " + " ".join(f"<Transition> {k} {p}" for k in range(n - 1)) + " </State>"
            )
            for s in range(1, n - 1):
                out.append(
                    f"<State> {s} <PdfClass> {s} "
                    + " ".join(f"<Transition> {k} {p}" for k in range(1, n))
                    + " </State>"
                )
            out.append(f"<State> {n - 1} <PdfClass> {n - 1} <Transition> {n - 1} 0.75 <Transition> {n} 0.25 </State>")
        out += [f"<State> {n} </State>", "</TopologyEntry>"]
    out.append("</Topology>")
    return "\n".join(out) + "\n"


def _symbol_table_text(symbols: Sequence[str]) -> str:
    return "".join(f"{s} {i}\n" for i, s in enumerate(symbols))


def make_lexicon_fst(
    entries,
    phone2id: Dict[str, int],
    word2id: Dict[str, int],
    *,
    sil_prob: float,
    sil_phone: str = SIL,
    disambig_loop: Optional[tuple] = None,
):
    """L (phones -> words) with optional silence, as Kaldi's make_lexicon_fst.py.

    ``entries``: (word, prob, phones) with phones possibly ending in disambiguation symbols.
    ``disambig_loop``: (phone #0 id, word #0 id) self-loop on the loop state, so that G's
    backoff #0 passes through L_disambig.
    """
    fst = kaldifst.StdVectorFst()
    start, loop, sil_state = fst.add_state(), fst.add_state(), fst.add_state()
    fst.start = start
    fst.set_final(state=loop, weight=0.0)
    sil_cost, no_sil_cost = -math.log(sil_prob), -math.log(1.0 - sil_prob)

    def arc(src, dst, labels, *, weight):  # labels: (input, output)
        fst.add_arc(state=src, arc=kaldifst.StdArc(ilabel=labels[0], olabel=labels[1], weight=weight, nextstate=dst))

    arc(start, loop, (0, 0), weight=no_sil_cost)
    arc(start, sil_state, (0, 0), weight=sil_cost)
    arc(sil_state, loop, (phone2id[sil_phone], 0), weight=0.0)
    for word, prob, phones in entries:
        cost = -math.log(prob)
        src = loop
        for i, p in enumerate(phones[:-1]):
            nxt = fst.add_state()
            arc(src, nxt, (phone2id[p], word2id[word] if i == 0 else 0), weight=cost if i == 0 else 0.0)
            src = nxt
        last = phones[-1]
        first = len(phones) == 1
        olabel, extra = (word2id[word], cost) if first else (0, 0.0)
        arc(src, loop, (phone2id[last], olabel), weight=no_sil_cost + extra)
        arc(src, sil_state, (phone2id[last], olabel), weight=sil_cost + extra)
    if disambig_loop is not None:
        arc(loop, loop, disambig_loop, weight=0.0)
    kaldifst.arcsort(fst, sort_type="olabel")
    return fst


def with_word_positions(lexicon: Lexicon, silence: Sequence[str]) -> Lexicon:
    """Each non-silence phone renamed by its place in the word: P_S alone, else P_B, P_I..., P_E."""
    out = Lexicon()
    for word, prob, phones in lexicon:
        if len(phones) == 1:
            marked = [phones[0] if phones[0] in silence else phones[0] + "_S"]
        else:
            marked = [
                p if p in silence else p + ("_B" if i == 0 else "_E" if i == len(phones) - 1 else "_I")
                for i, p in enumerate(phones)
            ]
        out.add(word, marked, prob)
    return out


def prepare_lang(lexicon: Lexicon, out_dir, cfg: LangConfig = LangConfig()) -> Path:
    """Write a lang directory for ``lexicon`` (which must not contain SIL as a word phone
    other than for silence words). Returns ``out_dir``."""
    out_dir = Path(out_dir)
    (out_dir / "phones").mkdir(parents=True, exist_ok=True)
    lex = Lexicon()
    for w, p, phones in lexicon.normalized():
        lex.add(w, phones, p)
    if cfg.oov_word and cfg.oov_word not in lex:
        lex.add(cfg.oov_word, ["SPN"])
    silence = [SIL] + (["SPN"] if any("SPN" in phones for _, _, phones in lex) else [])
    if cfg.position_dependent_phones:
        lex = with_word_positions(lex, silence)
    nonsilence = [p for p in lex.phones if p not in silence]
    disambig_entries, max_disambig = add_disambig(lex)
    disambig = [f"#{i}" for i in range(max_disambig + 2)]  # #0 for G's backoff, one spare as Kaldi
    phones = ["<eps>"] + silence + nonsilence + disambig
    words = ["<eps>"] + sorted(lex.words) + ["#0", "<s>", "</s>"]
    for w in lex.words:
        if w in ("<eps>", "#0", "<s>", "</s>"):
            raise ValueError(f"lexicon word {w!r} is a reserved symbol")
    phone2id = {p: i for i, p in enumerate(phones)}
    word2id = {w: i for i, w in enumerate(words)}

    write_text_atomic(out_dir / "phones.txt", _symbol_table_text(phones))
    write_text_atomic(out_dir / "words.txt", _symbol_table_text(words))
    sets = {
        "silence": silence,
        "nonsilence": nonsilence,
        "optional_silence": [SIL],
        "disambig": disambig,
        "context_indep": silence,
    }
    for name, syms in sets.items():
        write_text_atomic(out_dir / "phones" / f"{name}.txt", "".join(s + "\n" for s in syms))
        write_text_atomic(out_dir / "phones" / f"{name}.int", "".join(f"{phone2id[s]}\n" for s in syms))
    if cfg.position_dependent_phones:
        kinds = {"B": "begin", "I": "internal", "E": "end", "S": "singleton"}
        write_text_atomic(
            out_dir / "phones" / "word_boundary.txt",
            "".join(f"{p} {kinds[p[-1]] if p not in silence else 'nonword'}\n" for p in silence + nonsilence),
        )
    write_text_atomic(out_dir / "oov.txt", (cfg.oov_word + "\n") if cfg.oov_word else "")
    topo = topology_text(
        [phone2id[p] for p in nonsilence],
        [phone2id[p] for p in silence],
        cfg.num_nonsil_states,
        num_sil_states=cfg.num_sil_states,
    )
    write_text_atomic(out_dir / "topo", topo)
    lex.write(out_dir / "lexiconp.txt", with_probs=True)
    write_text_atomic(
        out_dir / "lexiconp_disambig.txt", "".join(f"{w} {p:.6g} {' '.join(ph)}\n" for w, p, ph in disambig_entries)
    )

    plain = [(w, p, ph) for w, p, ph in lex]
    for name, entries, loop in (
        ("L.fst", plain, None),
        ("L_disambig.fst", disambig_entries, (phone2id["#0"], word2id["#0"])),
    ):
        fst = make_lexicon_fst(entries, phone2id, word2id, sil_prob=cfg.sil_prob, disambig_loop=loop)
        with atomic_path(out_dir / name) as tmp:
            fst.write(str(tmp))
    log.info(
        "lang %s: %d words, %d phones (+%d disambiguation symbols)",
        out_dir,
        len(lex),
        len(silence) + len(nonsilence),
        len(disambig),
    )
    return out_dir


def read_symbol_table(path) -> Dict[str, int]:
    table = {}
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{path}:{n}: expected 'symbol id', got {line.strip()!r}")
        table[fields[0]] = int(fields[1])
    return table


class Lang:
    """A lang directory loaded for alignment and graph building."""

    def __init__(self, lang_dir):
        self.dir = Path(lang_dir)
        for f in ("phones.txt", "words.txt", "topo", "L.fst", "L_disambig.fst"):
            if not (self.dir / f).is_file():
                raise FileNotFoundError(f"{self.dir / f} is missing: run the lang stage (prepare-lang) first")
        self.phone2id = read_symbol_table(self.dir / "phones.txt")
        self.word2id = read_symbol_table(self.dir / "words.txt")
        self.id2phone = {i: p for p, i in self.phone2id.items()}
        self.id2word = {i: w for w, i in self.word2id.items()}
        self.silence_ids = self._ints("silence")
        self.nonsilence_ids = self._ints("nonsilence")
        self.disambig_ids = self._ints("disambig")
        oov = (self.dir / "oov.txt").read_text().strip() if (self.dir / "oov.txt").is_file() else ""
        self.oov_word = oov or None

    def first_pronunciations(self) -> Dict[str, List[str]]:
        """word -> its most likely pronunciation (from lexiconp.txt)."""
        best: Dict[str, tuple] = {}
        for line in open(self.dir / "lexiconp.txt", encoding="utf-8"):
            f = line.split()
            if f and (f[0] not in best or float(f[1]) > best[f[0]][0]):
                best[f[0]] = (float(f[1]), f[2:])
        return {w: p for w, (_, p) in best.items()}

    def _ints(self, name: str) -> List[int]:
        return [int(x) for x in (self.dir / "phones" / f"{name}.int").read_text().split()]

    def topology(self):
        topo = khg.HmmTopology()
        topo.read((self.dir / "topo").read_text())
        return topo

    def lexicon_fst(self, disambig: bool = True):
        return kaldifst.StdVectorFst.read(str(self.dir / ("L_disambig.fst" if disambig else "L.fst")))

    def word_ids(self, words: Sequence[str], utt_id: str = "") -> List[int]:
        """Word ids of a transcript; OOVs map to the OOV word, or raise naming the utterance."""
        ids, oov = [], []
        for w in words:
            if w in self.word2id and not w.startswith("#") and w not in ("<eps>", "<s>", "</s>"):
                ids.append(self.word2id[w])
            elif self.oov_word:
                ids.append(self.word2id[self.oov_word])
            else:
                oov.append(w)
        if oov:
            raise ValueError(
                f"utterance {utt_id}: word(s) {sorted(set(oov))} are not in the lexicon ({self.dir}/words.txt)"
            )
        return ids
