"""Stubs of the compiled module (src/lib.rs)."""
from collections.abc import Sequence

__version__: str

class Encoder:
    """Avro binary encoder for a fixed list of schemas.

    ``schemas`` are schema JSON texts, parsed once. ``prefixes[i]`` is prepended to every
    value ``encode``/``encode_many`` produce for schema ``i`` (the framing).

    Records are tuples (NamedTuples are tuples) in schema field order; nested records are
    tuples too. Value mapping: str -> string and enum (a symbol); bytes/bytearray -> bytes
    and fixed (exact size); float or int -> double/float; int -> int/long (range-checked);
    bool -> boolean (nothing else); None -> null; list/tuple -> array; dict with str keys ->
    map. A union takes the first branch that accepts the value's Python type (an int prefers
    int/long, the first it fits, over double/float; a float prefers double over float; a str
    takes the first of string/enum with that symbol; a tuple the first record that encodes
    it). Field defaults are not applied: the tuple must be complete. Logical types are
    encoded as their underlying type.

    Errors (wrong arity, wrong type, out-of-range number, unknown enum symbol) raise
    TypeError or ValueError naming the schema, the record index and the field; a failed
    call produces no output.
    """

    def __init__(self, schemas: Sequence[str], prefixes: Sequence[bytes] | None = None) -> None: ...
    def encode(self, schema: int, record: object) -> bytes:
        """prefix + Avro body of one record."""
    def encode_many(self, schema: int, records: Sequence[object]) -> list[bytes]:
        """prefix + body for each record of a batch, in one call."""
    def encode_keyed(self, schema: int, records: Sequence[object]) -> tuple[list[bytes], list[bytes]]:
        """(keys, values): ``encode_many``'s values, and for each record the bytes
        ``f"{record[0]}:{record[1]}"`` (the Kafka key ``exchange:symbol``)."""
    def encode_block(self, schema: int, records: Sequence[object]) -> bytes:
        """The bodies of a batch concatenated, without prefix (an object container file block)."""
    def set_prefix(self, schema: int, prefix: bytes) -> None: ...
    def prefix(self, schema: int) -> bytes: ...
    @property
    def names(self) -> list[str]:
        """Full names of the schemas' top-level types, in order."""
    def __len__(self) -> int: ...
