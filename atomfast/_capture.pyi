"""Stubs of the compiled capture line reader (native/capture/_capture.pyx)."""
from pathlib import Path
from typing import IO, Callable, Iterator

from .capture import Frame

FORMATS: dict[str, int]

def bind(module: object) -> None:
    """Take the Frame type, kinds and helpers from ``atomfast.capture`` (called by it once)."""

class FrameReader(Iterator[Frame]):
    """A capture file's ``Frame``s, parsed as ``fmt`` (``record``, ``cryptofeed``, ``hftbacktest``)."""

    @property
    def n(self) -> int:
        """The lines read whole so far."""
    def __init__(self, fh: IO[bytes], path: Path, fmt: str, conn: int, report: Callable[[str, str], None],
                 chunk: int, listing: bool = False) -> None: ...
    def __iter__(self) -> FrameReader: ...
    def __next__(self) -> Frame: ...

def last_header(data: bytes, start: int, end: int) -> int:
    """``data.rfind(b" header: ", start, end)`` (0 <= start): where a cryptofeed REST line's recorded headers begin, or -1."""

def rest_body(data: bytes | bytearray, start: int, end: int) -> bytes:
    """``bytes(data[start:end])``; a body of 64 KiB or more equal to one handed out before in this
    process: that very object (at most 32 MiB of them kept, the oldest forgotten first)."""

def bytes_literal(payload: bytes) -> bytes | None:
    """The value of ``payload``, a bytes literal as ``repr(bytes)`` writes it (printable ASCII, the
    quote and the common escapes escaped); None for any other text (the Python reader decides)."""
