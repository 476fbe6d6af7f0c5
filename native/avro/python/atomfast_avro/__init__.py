"""atomfast_avro: Avro binary encoding of Python tuples, implemented in Rust.

``Encoder(schemas, prefixes)`` parses each schema JSON once; ``encode_many`` / ``encode_block``
encode a whole batch (one frame's events of one topic) in a single call. See ``_native.pyi``
for the value mapping. The typed application-facing wrapper is ``atomfast.avro``.
"""
from ._native import Encoder, __version__

__all__ = ["Encoder", "__version__"]
