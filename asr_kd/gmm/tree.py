"""Phonetic decision trees as Kaldi's event maps, read and written in Kaldi's formats.

A tree maps an *event* -- the phones in a context window and the HMM state's pdf-class -- to a
pdf-id. Keys as in Kaldi: ``0 .. N-1`` are the window's positions (for triphones 0 = left,
1 = centre, 2 = right; phone 0 is the utterance edge), ``-1`` (``PDF_CLASS``) is the pdf-class.
Node kinds, named as in Kaldi's ``event-map.h``:

    Leaf(pdf)                        "CE": a constant answer
    Table(key, children)             "TE": one child per value of ``key`` (None = "NULL")
    Split(key, yes_set, yes, no)     "SE": ``yes`` when the value of ``key`` is in ``yes_set``

``ContextTree`` is Kaldi's ContextDependency (context width N, central position P, the map).
``to_binary`` gives the bytes ``kaldi_hmm_gmm.ContextDependency`` loads (``to_kaldi``), ``to_text``
the ``copy-tree --binary=false`` text, ``info`` what ``tree-info`` prints.
"""

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from asr_kd.utils.io import atomic_path, write_text_atomic

PDF_CLASS = -1


@dataclass
class Leaf:
    pdf: int


@dataclass
class Table:
    key: int
    children: List[Optional["Node"]]


@dataclass
class Split:
    key: int
    yes_set: Tuple[int, ...]
    yes: "Node"
    no: "Node"

    def __post_init__(self):
        self.yes_set = tuple(sorted(set(int(v) for v in self.yes_set)))


Node = Union[Leaf, Table, Split]


def map_event(node: Optional[Node], event: Dict[int, int]) -> Optional[int]:
    """The pdf-id for ``event`` ({key: value}), or None where the map has no answer (Kaldi's Map)."""
    while node is not None:
        if isinstance(node, Leaf):
            return node.pdf
        value = event.get(node.key)
        if value is None:
            return None
        if isinstance(node, Table):
            node = node.children[value] if 0 <= value < len(node.children) else None
        else:
            node = node.yes if value in node.yes_set else node.no
    return None


def leaves(node: Optional[Node]) -> Iterator[Leaf]:
    if isinstance(node, Leaf):
        yield node
    elif isinstance(node, Table):
        for c in node.children:
            yield from leaves(c)
    elif isinstance(node, Split):
        yield from leaves(node.yes)
        yield from leaves(node.no)


# -- Kaldi's basic IO (base/io-funcs): a token and a space; typed integers ---------------------
class _Writer:
    def __init__(self, binary: bool):
        self.binary, self.parts = binary, []

    def token(self, tok: str) -> None:
        self.parts.append((tok + " ").encode())

    def int32(self, v: int, unsigned: bool = False) -> None:
        if self.binary:  # a size byte (negative for unsigned types), then little-endian
            self.parts.append(struct.pack("<b", -4 if unsigned else 4) + struct.pack("<I" if unsigned else "<i", v))
        else:
            self.parts.append(f"{v} ".encode())

    def int_vector(self, values: Sequence[int]) -> None:
        if self.binary:
            self.parts.append(
                struct.pack("<b", 4) + struct.pack("<i", len(values)) + struct.pack(f"<{len(values)}i", *values)
            )
        else:
            self.parts.append(("[ " + "".join(f"{v} " for v in values) + "]\n").encode())

    def newline(self) -> None:
        if not self.binary:
            self.parts.append(b"\n")

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def _write_node(w: _Writer, node: Optional[Node]) -> None:
    if node is None:
        w.token("NULL")
    elif isinstance(node, Leaf):
        w.token("CE")
        w.int32(node.pdf)
    elif isinstance(node, Table):
        w.token("TE")
        w.int32(node.key)
        w.int32(len(node.children), unsigned=True)
        w.token("(")
        for c in node.children:
            _write_node(w, c)
        w.token(")")
        w.newline()
    else:
        w.token("SE")
        w.int32(node.key)
        w.int_vector(node.yes_set)
        w.token("{")
        _write_node(w, node.yes)
        _write_node(w, node.no)
        w.token("}")
        w.newline()


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0
        head = len(b"ContextDependency ")
        self.binary = len(data) > head and data[head] in (4, 0xFC)  # a size byte, not a digit

    def token(self) -> str:
        while self.data[self.pos : self.pos + 1].isspace():
            self.pos += 1
        end = self.pos
        while end < len(self.data) and not self.data[end : end + 1].isspace():
            end += 1
        tok, self.pos = self.data[self.pos : end].decode(), end + 1
        return tok

    def int32(self) -> int:
        if self.binary:
            size = struct.unpack_from("<b", self.data, self.pos)[0]
            if abs(size) != 4:
                raise ValueError(f"tree: expected a 4-byte integer at byte {self.pos}, found size {size}")
            v = struct.unpack_from("<I" if size < 0 else "<i", self.data, self.pos + 1)[0]
            self.pos += 5
            return v
        return int(self.token())

    def int_vector(self) -> List[int]:
        if self.binary:
            n = struct.unpack_from("<i", self.data, self.pos + 1)[0]
            v = list(struct.unpack_from(f"<{n}i", self.data, self.pos + 5))
            self.pos += 5 + 4 * n
            return v
        if self.token() != "[":
            raise ValueError("tree: expected '[' of a yes-set")
        out = []
        while (t := self.token()) != "]":
            out.append(int(t))
        return out

    def expect(self, tok: str) -> None:
        got = self.token()
        if got != tok:
            raise ValueError(f"tree: expected {tok!r}, found {got!r} near byte {self.pos}")


def _read_node(r: _Reader) -> Optional[Node]:
    kind = r.token()
    if kind == "NULL":
        return None
    if kind == "CE":
        return Leaf(r.int32())
    if kind == "TE":
        key, n = r.int32(), r.int32()
        r.expect("(")
        children = [_read_node(r) for _ in range(n)]
        r.expect(")")
        return Table(key, children)
    if kind == "SE":
        key, yes_set = r.int32(), r.int_vector()
        r.expect("{")
        yes, no = _read_node(r), _read_node(r)
        r.expect("}")
        return Split(key, tuple(yes_set), yes, no)
    raise ValueError(f"tree: unknown event-map node {kind!r}")


@dataclass
class ContextTree:
    """Kaldi's ContextDependency: context width N, central position P and the event map."""

    context_width: int
    central_position: int
    root: Node
    num_pdfs: int = field(default=-1)

    def __post_init__(self):
        if self.num_pdfs < 0:
            self.num_pdfs = 1 + max((leaf.pdf for leaf in leaves(self.root)), default=-1)

    def pdf(self, phones: Sequence[int], pdf_class: int) -> Optional[int]:
        """The pdf-id of a phone window (length N) and pdf-class (Kaldi's Compute)."""
        event = {i: int(p) for i, p in enumerate(phones)}
        event[PDF_CLASS] = int(pdf_class)
        return map_event(self.root, event)

    # -- Kaldi formats -----------------------------------------------------------------------
    def _serialise(self, binary: bool) -> bytes:
        w = _Writer(binary)
        w.token("ContextDependency")
        w.int32(self.context_width)
        w.int32(self.central_position)
        w.token("ToPdf")
        _write_node(w, self.root)
        w.token("EndContextDependency")
        return w.bytes()

    def to_binary(self) -> bytes:
        """Kaldi's binary tree (``ContextDependency::Write(binary=true)``, without the file header)."""
        return self._serialise(True)

    def to_text(self) -> str:
        """Kaldi's text tree (``copy-tree --binary=false``)."""
        return self._serialise(False).decode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "ContextTree":
        """Reads either format (a binary file's ``\\0B`` header is skipped)."""
        if data.startswith(b"\0B"):
            data = data[2:]
        r = _Reader(data)
        r.expect("ContextDependency")
        n, p = r.int32(), r.int32()
        r.expect("ToPdf")
        root = _read_node(r)
        r.expect("EndContextDependency")
        return cls(n, p, root)

    def to_kaldi(self):
        """This tree as a ``kaldi_hmm_gmm.ContextDependency`` (for TransitionModel, graphs, HCLG)."""
        from asr_kd.kaldi import khg

        tree = khg.ContextDependency.__new__(khg.ContextDependency)
        tree.__setstate__((list(struct.unpack(f"{len(b := self.to_binary())}b", b)),))
        return tree

    @classmethod
    def from_kaldi(cls, tree) -> "ContextTree":
        state = tree.__getstate__()[0]
        return cls.from_bytes(struct.pack(f"{len(state)}b", *state))

    def write(self, path, binary: bool = True) -> None:
        """A Kaldi ``tree`` file: binary with Kaldi's ``\\0B`` header, or text."""
        if binary:
            with atomic_path(path) as tmp:
                Path(tmp).write_bytes(b"\0B" + self.to_binary())
        else:
            write_text_atomic(path, self.to_text())

    @classmethod
    def read(cls, path) -> "ContextTree":
        return cls.from_bytes(Path(path).read_bytes())

    def info(self) -> Dict[str, int]:
        """What Kaldi's ``tree-info`` prints."""
        return {
            "num-pdfs": self.num_pdfs,
            "context-width": self.context_width,
            "central-position": self.central_position,
        }

    def info_text(self) -> str:
        return "".join(f"{k} {v}\n" for k, v in self.info().items())
