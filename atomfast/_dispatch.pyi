"""Stubs of the compiled route-table executor (native/dispatch/_dispatch.pyx)."""
from typing import Any

from .kit.dispatch import Dispatch

class Router:
    """A ``Dispatch`` bound to one scheme's handlers (``Dispatch.bind`` returns its ``on_frame``)."""

    @property
    def scheme(self) -> Any: ...
    @property
    def dispatch(self) -> Dispatch: ...
    def __init__(self, dispatch: Dispatch, scheme: Any) -> None: ...
    def on_frame(self, conn: Any, data: bytes | memoryview, recv_ns: int) -> None: ...
    def handler(self, key: Any) -> Any:
        """The route of ``key``'s handler as it runs (a declared shape's executor, or the method; None: ignored)."""

class RefusingDecoder:
    """A msgspec decoder as a ``Dispatch``'s ``decoder``, a frame that is no JSON at all raised as
    ``refusal`` (a ``msgspec.ValidationError`` subclass) so that it reaches the venue's ``refused``
    with its connection."""

    @property
    def decoder(self) -> Any: ...
    @property
    def refusal(self) -> type: ...
    def __init__(self, decoder: Any, refusal: type) -> None: ...
    def decode(self, data: bytes | memoryview) -> Any: ...
