"""``L2Book.apply_update``: an L2 update with its checksum in one call (levels applied as
``apply_sides``, the event time from the levels, the checksum compared, the spread written where
the top changed and the checksum matched), against the step-by-step calls it replaces, on the
real Kraken v1 capture (every update's recorded checksum) and on hand-made cases: a mismatch, a
malformed level, time or checksum (nothing applied, no row, ``rows_of`` not called)."""
from __future__ import annotations

import json
from decimal import Decimal

import msgspec
import pytest

from atomfast._book import (
    ASK,
    BID,
    CHECKSUM_BITFINEX,
    CHECKSUM_KRAKEN,
    CHECKSUM_KRAKEN_SCALED,
    CHECKSUM_NONE,
    CHECKSUM_OKX,
    SHAPES,
    TOP_CHANGED,
    UPDATE_MISMATCH,
    UPDATE_NOT_APPLIED,
    UPDATE_OK,
    AvroRows,
    L2Book,
)
from atomfast.events import Lob, Spread
from atomfast.exchanges.kraken import messages as m
from atomfast.testing import fixture_path

# a real update of KRAKEN.ws.50.0 (KSM/XBT, received after the pair's snapshot)
KSM_UPDATE = b'[3648,{"b":[["0.00755800","0.88690103","1618678134.502373"]],"c":"2466532719"},"book-1000","KSM/XBT"]'


class _Rows:
    """``rows_of``: the rows of each topic (lists), and the topics asked for, in order."""

    def __init__(self) -> None:
        self.topics: dict[str, list] = {}
        self.asked: list[str] = []

    def __call__(self, topic: str) -> list:
        self.asked.append(topic)
        return self.topics.setdefault(topic, [])


def _frames():
    """The received frames of KRAKEN.ws.50.0 (cryptofeed's ``<ts>: <payload>`` lines)."""
    with open(fixture_path("cryptofeed/KRAKEN.ws.50.0"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("wss://"):
                continue
            _ts, _, payload = line.partition(": ")
            if payload.startswith("["):
                yield payload.strip().encode()


def _snapshot(data: bytes) -> L2Book:
    """The book of a v1 snapshot (at the precision its strings carry)."""
    msg = json.loads(data)
    snap = msg[1]
    first = (snap.get("as") or snap["bs"])[0]
    book = L2Book(price_decimals=len(first[0].partition(".")[2]), size_decimals=8)
    book.apply_sides(ASK, [tuple(lv[:2]) for lv in snap.get("as", [])],
                     [tuple(lv[:2]) for lv in snap.get("bs", [])], [], Lob, "kraken", msg[-1], 0, 0)
    return book


def _step_by_step(book: L2Book, update: m.V1Update, symbol: str, atom_us: int, depth: int) -> tuple[int, list, list]:
    """What ``apply_update`` replaces: the handler's calls one by one (status, lob, spread)."""
    lob: list = []
    spread: list = []
    levels = update.a + update.b
    newest = max(lv.timestamp for lv in levels) if levels else ""
    event_ms = int(Decimal(newest) * 1000) if newest else atom_us // 1000
    flags = book.apply_sides(ASK, update.a, update.b, lob, Lob, "kraken", symbol, event_ms, atom_us, depth)
    if book.checksum_kraken() != int(update.c):
        return UPDATE_MISMATCH, lob, spread
    if flags & TOP_CHANGED:
        book.spread_into(spread, Spread, "kraken", symbol, event_ms, atom_us)
    return UPDATE_OK, lob, spread


def test_capture_every_update_as_the_step_by_step_calls():
    """Every update of the capture in one call: its recorded checksum matched (2437 of them),
    the same lob and spread rows as apply_sides + checksum_kraken + spread_into, the same book."""
    books: dict[bytes, tuple[L2Book, L2Book]] = {}
    ok = spreads = 0
    for i, data in enumerate(_frames()):
        cid = data[:data.index(b",")]
        if b'"as":' in data or b'"bs":' in data:
            books[cid] = (_snapshot(data), _snapshot(data))
            continue
        if cid not in books:
            continue  # (no such frame in this capture)
        msg = m.v1_update_decoder.decode(data)
        book, twin = books[cid]
        atom_us = 1618678134000000 + i
        rows = _Rows()
        status = book.apply_update(ASK, msg.update.a, msg.update.b, rows, Lob, Spread, "kraken", msg.pair, atom_us * 1000 + 999,
                                   1000, CHECKSUM_KRAKEN, msg.update.c)
        want, lob, spread = _step_by_step(twin, msg.update, msg.pair, atom_us, 1000)
        assert status == want == UPDATE_OK, (i, data)
        assert rows.topics.get("lob") == lob
        assert rows.topics.get("spread", []) == spread
        assert rows.asked == ["lob"] + ["spread"] * len(spread)
        assert book.levels(ASK, 12) == twin.levels(ASK, 12) and book.levels(BID, 12) == twin.levels(BID, 12)
        ok += 1
        spreads += len(spread)
    assert ok == 2437
    assert 0 < spreads < ok


def _ksm_book() -> tuple[L2Book, m.V1UpdateFrame]:
    """KSM/XBT's book as the capture has it just before KSM_UPDATE (its snapshot, then its
    updates, step by step), and KSM_UPDATE."""
    book = None
    for data in _frames():
        if not data.startswith(b"[3648,"):
            continue
        if data == KSM_UPDATE:
            return book, m.v1_update_decoder.decode(data)
        if b'"as":' in data:
            book = _snapshot(data)
        else:
            assert _step_by_step(book, m.v1_update_decoder.decode(data).update, "KSM-BTC", 0, 1000)[0] == UPDATE_OK
    raise AssertionError("KSM_UPDATE not in the capture")


def test_real_update_exact_rows():
    book, msg = _ksm_book()
    assert book.get(BID, "0.00755800") == "1.97569103"
    assert book.checksum_kraken() == 2624369021
    rows = _Rows()
    status = book.apply_update(ASK, msg.update.a, msg.update.b, rows, Lob, Spread, "kraken", "KSM-BTC",
                               1618678134510000_123, 1000, CHECKSUM_KRAKEN, msg.update.c)
    assert status == UPDATE_OK
    assert book.checksum_kraken() == 2466532719  # the update's "c"
    assert book.get(BID, "0.00755800") == "0.88690103"
    assert rows.topics == {"lob": [Lob("kraken", "KSM-BTC", 0.007558, 0.88690103, "buy", 1618678134502,
                                       1618678134510000)]}
    assert rows.asked == ["lob"]  # the second bid: the top did not change, no spread
    assert book.best() == (0.007559, 0.21, 0.007569, 2.38919581)


def test_mismatch_applies_writes_lob_but_no_spread():
    book, msg = _ksm_book()
    rows = _Rows()
    status = book.apply_update(ASK, msg.update.a, msg.update.b, rows, Lob, Spread, "kraken", "KSM-BTC", 7_000_000, 1000,
                               CHECKSUM_KRAKEN, "2466532718")
    assert status == UPDATE_MISMATCH
    assert book.checksum_kraken() == 2466532719  # applied: the book's own checksum
    assert rows.topics == {"lob": [Lob("kraken", "KSM-BTC", 0.007558, 0.88690103, "buy", 1618678134502, 7_000)]}
    assert rows.asked == ["lob"]
    # an int expected value is compared as well
    book, msg = _ksm_book()
    assert book.apply_update(ASK, msg.update.a, msg.update.b, _Rows(), Lob, Spread, "kraken", "KSM-BTC", 7_000_000, 1000,
                             CHECKSUM_KRAKEN, 2466532719) == UPDATE_OK


@pytest.mark.parametrize("level, checksum", [
    (["0.00755800", "0.88690103", "1618678134.502373"], "abc"),             # not digits
    (["0.00755800", "0.88690103", "1618678134.502373"], ""),
    (["0.00755800", "0.88690103", "1618678134.502373"], "4294967296"),      # 2**32
    (["0.00755800", "0.88690103", "1618678134.502373"], "12345678901"),     # 11 digits
    (["0.00755800", "0.88690103", "1618678134.502373"], -1),
    (["0.00755800", "0.88690103", "1618678134.502373"], None),
    (["0.00755800", "-0.88690103", "1618678134.502373"], "2466532719"),     # signed size
    (["0.00755800", "0.8869010300001", "1618678134.502373"], "2466532719"),  # beyond the scale
    (["0.0075580x", "0.88690103", "1618678134.502373"], "2466532719"),      # not a number
    (["0.00000000", "0.88690103", "1618678134.502373"], "2466532719"),      # zero price
    (["0.00755800", "0.88690103", "1618678134.50237x"], "2466532719"),      # bad time
    (["0.00755800", "0.88690103", "16186781340000.5"], "2466532719"),       # 14 integer digits
])
def test_malformed_nothing_applied(level, checksum):
    book, _ = _ksm_book()
    before = (book.levels(ASK), book.levels(BID), book.checksum_kraken())
    update = msgspec.json.decode(json.dumps({"b": [level], "c": "0"}), type=m.V1Update)
    rows = _Rows()
    status = book.apply_update(ASK, update.a, update.b, rows, Lob, Spread, "kraken", "KSM-BTC", 7_000_000, 1000,
                               CHECKSUM_KRAKEN, checksum)
    assert status == UPDATE_NOT_APPLIED
    assert rows.asked == [] and rows.topics == {}
    assert (book.levels(ASK), book.levels(BID), book.checksum_kraken()) == before


def test_second_level_malformed_nothing_applied():
    book, _ = _ksm_book()
    before = (book.levels(ASK), book.levels(BID))
    asks = [("0.00760000", "1.0", "1618678134.5")]
    bids = [("0.00755800", "1.0", "1618678134.5"), ("0.00755700", "x", "1618678134.5")]
    rows = _Rows()
    assert book.apply_update(ASK, asks, bids, rows, Lob, Spread, "kraken", "KSM-BTC", 7_000_000, 1000) == UPDATE_NOT_APPLIED
    assert rows.asked == [] and (book.levels(ASK), book.levels(BID)) == before


def test_event_time_newest_level_given_or_atom():
    book = L2Book(2, 2)
    rows = _Rows()
    # the newest of all levels by its text (as max() of the strings), whatever its side
    asks = [("10.00", "1.00", "1618678134.500000"), ("11.00", "1.00", "1618678134.900001")]
    bids = [("9.00", "1.00", "1618678134.700000")]
    assert book.apply_update(ASK, asks, bids, rows, Lob, Spread, "x", "X", 5_000_999_500) == UPDATE_OK
    assert {r.event_timestamp for r in rows.topics["lob"]} == {1618678134900}
    assert rows.topics["spread"] == [Spread("x", "X", 9.0, 1.0, 10.0, 1.0, 1618678134900, 5_000_999)]
    # given
    rows = _Rows()
    assert book.apply_update(BID, [("9.00", "2.00")], None, rows, Lob, Spread, "x", "X", 5_000_999_500,
                             event_ms=42) == UPDATE_OK
    assert rows.topics["lob"] == [Lob("x", "X", 9.0, 2.0, "buy", 42, 5_000_999)]
    # no level, or an empty time: the receive time's ms (floored)
    rows = _Rows()
    assert book.apply_update(ASK, [], [], rows, Lob, Spread, "x", "X", 5_000_999_500) == UPDATE_OK
    assert rows.topics == {"lob": []}
    assert book.apply_update(ASK, [("10.00", "3.00", "")], [], rows, Lob, Spread, "x", "X", 5_000_999_500) == UPDATE_OK
    assert rows.topics["lob"] == [Lob("x", "X", 10.0, 3.0, "sell", 5_000, 5_000_999)]
    rows = _Rows()  # (floored, as //)
    assert book.apply_update(ASK, [("10.00", "3.50", "")], [], rows, Lob, Spread, "x", "X", -1) == UPDATE_OK
    assert rows.topics["lob"] == [Lob("x", "X", 10.0, 3.5, "sell", -1, -1)]
    # a level without a time cannot give one: not applied
    assert book.apply_update(ASK, [("10.00", "4.00")], [], _Rows(), Lob, Spread, "x", "X", 1) == UPDATE_NOT_APPLIED
    assert book.get(ASK, "10.00") == "3.50"


def test_truncation_rows_and_avro_rows():
    """The cut to ``depth`` as apply_sides makes it; into AvroRows as into lists."""
    def run(rows_of):
        book = L2Book(2, 2)
        book.apply_sides(ASK, [("10.00", "1.00"), ("11.00", "1.00")], [("9.00", "1.00")], [], Lob, "x", "X", 0, 0)
        return book.apply_update(ASK, [("9.50", "2.00", "1.5")], [], rows_of, Lob, Spread, "x", "X", 3_000_000, 2)
    lists = _Rows()
    assert run(lists) == UPDATE_OK
    assert lists.topics["lob"] == [Lob("x", "X", 9.5, 2.0, "sell", 1500, 3_000), Lob("x", "X", 11.0, 0.0, "sell", 1500, 3_000)]
    assert lists.topics["spread"] == [Spread("x", "X", 9.0, 1.0, 9.5, 2.0, 1500, 3_000)]
    avro = {"lob": AvroRows(b"", SHAPES["lob"]), "spread": AvroRows(b"", SHAPES["spread"])}
    assert run(avro.__getitem__) == UPDATE_OK
    for topic, rows in lists.topics.items():
        expected = AvroRows(b"", SHAPES[topic])
        for row in rows:
            expected.append(row)
        assert avro[topic].take() == expected.take()


@pytest.mark.parametrize("kind, method", [
    (CHECKSUM_KRAKEN, lambda b: b.checksum_kraken()),
    (CHECKSUM_KRAKEN_SCALED, lambda b: b.checksum_kraken(True)),
    (CHECKSUM_OKX, lambda b: b.checksum_okx()),
    (CHECKSUM_BITFINEX, lambda b: b.checksum_bitfinex()),
])
def test_checksum_kinds(kind, method):
    def book():
        b = L2Book(3, 3)
        b.apply_sides(ASK, [("10.5", "1.25"), ("11", "2")], [("9.75", "0.5"), ("9", "7.125")], [], Lob, "x", "X", 0, 0)
        return b
    twin = book()
    twin.apply(BID, "9.9", "1")
    want = method(twin)
    update = [("9.9", "1", "1.0")]
    assert book().apply_update(ASK, None, update, _Rows(), Lob, Spread, "x", "X", 0, 0, kind, want) == UPDATE_OK
    assert book().apply_update(ASK, None, update, _Rows(), Lob, Spread, "x", "X", 0, 0, kind, str(want)) == UPDATE_OK
    assert book().apply_update(ASK, None, update, _Rows(), Lob, Spread, "x", "X", 0, 0, kind, want ^ 1) == UPDATE_MISMATCH
    # CHECKSUM_NONE: nothing compared
    assert book().apply_update(ASK, None, update, _Rows(), Lob, Spread, "x", "X", 0, 0, CHECKSUM_NONE, "junk") == UPDATE_OK
    with pytest.raises(ValueError):
        book().apply_update(ASK, None, update, _Rows(), Lob, Spread, "x", "X", 0, 0, 99, want)


def test_signed_checksum_text():
    b = L2Book(1, 1)
    b.apply(BID, "1", "1")
    want = b.checksum_okx()
    assert want < 0  # (this book's OKX checksum is negative: its text has a '-')
    b2 = L2Book(1, 1)
    rows = _Rows()
    assert b2.apply_update(BID, [("1", "1", "0")], None, rows, Lob, Spread, "x", "X", 0, 0, CHECKSUM_OKX, str(want)) == UPDATE_OK
    # the unsigned kinds take no sign
    assert L2Book(1, 1).apply_update(BID, [("1", "1", "0")], None, rows, Lob, Spread, "x", "X", 0, 0, CHECKSUM_KRAKEN,
                                     "-1") == UPDATE_NOT_APPLIED


class _Level(msgspec.Struct, array_like=True):
    price: str
    size: str
    timestamp: str


def test_struct_levels_read_as_getattr_does():
    """Levels' fields read from a Struct's slots; a subclass whose ``price`` is a property, and a
    type changed after its fields were read, are read as getattr() reads them."""
    book = L2Book(2, 2)
    assert book.apply_update(BID, [_Level("1.00", "2.00", "3.5")], None, _Rows(), Lob, Spread, "x", "X", 0) == UPDATE_OK
    assert book.get(BID, "1.00") == "2.00"

    class Shifted(_Level):
        @property
        def price(self):  # type: ignore[override]
            return "5.00"

    rows = _Rows()
    assert book.apply_update(BID, [Shifted("1.00", "4.00", "3.5")], None, rows, Lob, Spread, "x", "X", 0) == UPDATE_OK
    assert book.get(BID, "5.00") == "4.00" and book.get(BID, "1.00") == "2.00"

    class Plain(msgspec.Struct):
        price: str
        size: str
        timestamp: str

    book.apply_sides(BID, [Plain("2.00", "1.00", "9.0")], None, [], Lob, "x", "X", 0, 0)
    Plain.timestamp = property(lambda self: "8.0")  # the type changed: its slot no longer read
    rows = _Rows()
    assert book.apply_update(BID, [Plain("2.00", "3.00", "9.0")], None, rows, Lob, Spread, "x", "X", 0) == UPDATE_OK
    assert rows.topics["lob"][0].event_timestamp == 8000


def test_checksum_kept_while_its_levels_are_untouched():
    """The last checksum is given again until a change reaches the levels it covered (random
    changes on a book deeper than every checksum's depth, each kind in turn): always equal to
    the checksum of a book built afresh from the levels."""
    import random

    rnd = random.Random(15)
    kinds = [lambda b: b.checksum_kraken(), lambda b: b.checksum_kraken(True), lambda b: b.checksum_okx(),
             lambda b: b.checksum_bitfinex()]
    book = L2Book(2, 3)
    for i in range(60):
        book.apply(ASK, f"{100 + i}.{rnd.randrange(100):02d}", f"{rnd.randrange(1, 50)}.5")
        book.apply(BID, f"{99 - i}.{rnd.randrange(100):02d}", f"{rnd.randrange(1, 50)}.25")
    for step in range(3000):
        side = rnd.choice((ASK, BID))
        rank = min(int(rnd.expovariate(1 / 12)), book.count(side) - 1)
        price = book.levels(side, 1, rank)[0][0] if rnd.random() < 0.7 else (
            f"{rnd.uniform(100, 160):.2f}" if side == ASK else f"{rnd.uniform(40, 99.99):.2f}")
        size = "0" if rnd.random() < 0.3 else rnd.choice(("1.5", "1.50", "2.125", "7"))
        book.apply(side, price, size)
        if step % 97 == 0:
            book.truncate(rnd.choice((8, 30, 1000)))
        if book.count(ASK) < 40 or book.count(BID) < 40:
            for i in range(20):
                book.apply(ASK, f"{130 + rnd.uniform(0, 30):.2f}", "3")
                book.apply(BID, f"{40 + rnd.uniform(0, 30):.2f}", "3")
        kind = kinds[rnd.randrange(4)] if step % 5 == 0 else kinds[0]
        fresh = L2Book(2, 3)
        for s in (ASK, BID):
            for p, v in book.levels(s):
                fresh.apply(s, p, v)
        assert kind(book) == kind(fresh), step


def test_newest_time_as_max_of_the_texts():
    from atomfast.book import newest_time

    a = [_Level("1", "1", "1618678134.500000"), _Level("2", "1", "1618678134.900001")]
    b = [("1", "1", "1618678134.700000"), ["1", "1", "1618678134.900001"]]
    assert newest_time(a, b) is a[1].timestamp  # the first of equal ones, as max()
    assert newest_time(None, b) == "1618678134.900001"
    assert newest_time([], None) == "" and newest_time(None) == ""
    assert newest_time([("1", "1", "")]) == ""
    assert newest_time([("1", "1", "9"), ("1", "1", "10")]) == "9"  # text order, as max() of strings
    with pytest.raises(TypeError):
        newest_time([("1", "1")])


def test_avro_rows_heads_per_exchange_and_symbol():
    """The head of a row (its key, exchange and symbol) by exchange and symbol, also where two
    exchanges share a symbol and frames alternate between symbols."""
    rows = AvroRows(b"", SHAPES["lob"])
    want = AvroRows(b"", SHAPES["lob"])
    book = L2Book(2, 2)
    order = [("kraken", "BTC-USD"), ("kraken", "ETH-USD"), ("okx", "BTC-USD"), ("kraken", "BTC-USD"),
             ("okx", "BTC-USD"), (str("okx".upper().lower()), "ETH-USD")]
    for i, (exchange, symbol) in enumerate(order):
        book.apply_sides(BID, [("1.00", f"{i + 1}.00")], None, rows, Lob, exchange, symbol, 5, 6)
        want.append(Lob(exchange, symbol, 1.0, float(i + 1), "buy", 5, 6))
    keys, values = rows.take()
    assert keys == [f"{e}:{s}".encode() for e, s in order]
    for (exchange, symbol), value in zip(order, values):  # Avro strings: zigzag length, then the bytes
        head = bytes([2 * len(exchange)]) + exchange.encode() + bytes([2 * len(symbol)]) + symbol.encode()
        assert value.startswith(head)
    assert (keys, values) == want.take()


def test_apply_sides_after_check_sides_of_the_same_lists():
    """A snapshot's levels checked, then applied: the parse is reused for the same lists (and
    level objects), never for others (a list changed, other calls in between, another order)."""
    def fresh():
        return L2Book(2, 2)

    asks = [("10.00", "1.00"), ("11.00", "2.00")]
    bids = [("9.00", "3.00")]
    book = fresh()
    book.check_sides(asks, bids)
    rows: list = []
    book.apply_sides(ASK, asks, bids, rows, Lob, "x", "X", 1, 2)
    assert book.levels(ASK) == [("10.00", "1.00"), ("11.00", "2.00")] and book.levels(BID) == [("9.00", "3.00")]
    assert [r.price for r in rows] == [10.0, 11.0, 9.0]
    # a level replaced after the check: parsed again
    book = fresh()
    book.check_sides(asks, bids)
    asks2 = list(asks)
    book.apply_sides(ASK, asks2, bids, [], Lob, "x", "X", 1, 2)  # another list
    asks[1] = ("12.00", "5.00")
    book = fresh()
    book.check_sides(asks2, bids)
    asks2[0] = ("10.50", "7.00")
    book.apply_sides(ASK, asks2, bids, [], Lob, "x", "X", 1, 2)
    assert book.levels(ASK) == [("10.50", "7.00"), ("11.00", "2.00")]
    # other parses in between
    book = fresh()
    book.check_sides(asks, bids)
    assert book.apply_update(BID, [("8.00", "1.00", "1.0")], None, _Rows(), Lob, Spread, "x", "X", 0) == UPDATE_OK
    book.apply_sides(ASK, asks, bids, [], Lob, "x", "X", 1, 2)
    assert book.levels(ASK) == [("10.00", "1.00"), ("12.00", "5.00")]
    assert book.levels(BID) == [("9.00", "3.00"), ("8.00", "1.00")]
    # the sides the other way round, a failed check
    book = fresh()
    book.check_sides(asks, bids)
    book.apply_sides(BID, bids, asks, [], Lob, "x", "X", 1, 2)
    assert book.levels(BID) == [("9.00", "3.00")] and book.levels(ASK) == [("10.00", "1.00"), ("12.00", "5.00")]
    book = fresh()
    with pytest.raises(ValueError):
        book.check_sides([("1.00", "x")], bids)
    book.apply_sides(ASK, [("1.00", "2.00")], bids, [], Lob, "x", "X", 1, 2)
    assert book.levels(ASK) == [("1.00", "2.00")]


@pytest.mark.parametrize("n_asks, n_bids", [(8, 0), (0, 9), (15, 16), (31, 7), (2000, 1999), (7, 8), (1, 100)])
def test_snapshot_sides_loaded_whole_as_level_by_level(n_asks, n_bids):
    """A side loaded into an empty side (a snapshot's, best first: the tree built whole) is the
    book, the rows and the flags that the levels one by one give; then it takes changes as ever."""
    import random

    rnd = random.Random(n_asks * 7919 + n_bids)
    asks = [(f"{100 + i}.{rnd.randrange(100):02d}", f"{rnd.randrange(1, 99)}.5") for i in range(n_asks)]
    bids = [(f"{(9999 - 5 * i - rnd.randrange(5)) / 100:.2f}", f"{rnd.randrange(1, 99)}.25") for i in range(n_bids)]
    whole, single = L2Book(2, 2), L2Book(2, 2)
    rows_w: list = []
    flags_w = whole.apply_sides(ASK, asks, bids, rows_w, Lob, "x", "X", 1, 2)
    rows_s: list = []
    flags_s = 0
    for side, levels in ((ASK, asks), (BID, bids)):
        for lv in levels:
            flags_s |= single.apply_sides(side, [lv], None, rows_s, Lob, "x", "X", 1, 2)
    whole._validate()
    assert flags_w == flags_s and rows_w == rows_s
    assert whole.levels(ASK) == single.levels(ASK) and whole.levels(BID) == single.levels(BID)
    assert whole.best() == single.best() and len(whole) == len(single)
    assert whole.checksum_kraken() == single.checksum_kraken()
    for step in range(300):  # the tree takes inserts, updates and removals as ever
        side = rnd.choice((ASK, BID))
        price = f"{rnd.uniform(1, 150):.2f}" if rnd.random() < 0.5 or not len(whole) else rnd.choice(
            [p for p, _ in whole.levels(ASK) + whole.levels(BID)])
        size = "0" if rnd.random() < 0.4 else "3.75"
        assert whole.apply(side, price, size) == single.apply(side, price, size)
        if step % 50 == 0:
            whole._validate()
    whole._validate()
    assert whole.levels(ASK) == single.levels(ASK) and whole.levels(BID) == single.levels(BID)
    assert whole.checksum_kraken() == single.checksum_kraken()


def test_crossed_and_not_loadable_sides():
    """A side loaded whole against a crossing other side flags CROSSED as level by level does;
    sides not best first, or with a size 0, take the level-by-level way (same result)."""
    asks = [(f"{10 + i}.00", "1.00") for i in range(10)]
    bids = [(f"{12 - i}.00", "1.00") for i in range(10)]  # crosses the asks
    for first_levels, second_levels in ((asks, bids), (asks[::-1], bids), (asks, bids[:5] + [("1.00", "0")] + bids[5:])):
        whole, single = L2Book(2, 2), L2Book(2, 2)
        rw: list = []
        fw = whole.apply_sides(ASK, first_levels, second_levels, rw, Lob, "x", "X", 1, 2)
        rs: list = []
        fs = 0
        for side, levels in ((ASK, first_levels), (BID, second_levels)):
            for lv in levels:
                fs |= single.apply_sides(side, [lv], None, rs, Lob, "x", "X", 1, 2)
        whole._validate()
        assert (fw, rw, whole.levels(ASK), whole.levels(BID)) == (fs, rs, single.levels(ASK), single.levels(BID))
