"""The compiled order books (atomfast._book): parsing, flags, and model-based state machines.

The state machines drive L2Book and L3Book with random operations next to a plain-dict model
and compare everything observable after every step (levels, strings as sent, best, counts,
flags, the exchange checksums against Python reference implementations), plus the C tree's
own red-black invariants (``_validate``).
"""
from __future__ import annotations

import zlib
from decimal import Decimal

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from atomfast import book as bk
from atomfast._book import (
    ASK,
    BID,
    CROSSED,
    TOP_CHANGED,
    UNKNOWN,
    L2Book,
    L3Book,
    format_js,
    format_ticks,
    parse_decimal,
    parse_ticks,
)
from atomfast._book import LEVEL_BYTES, L3_LEVEL_BYTES, ORDER_BYTES, _crc32, _CRC_CLMUL


# ---------------------------------------------------------------------------------------------
# Reference implementations (pure Python, independent of the C code)


def fixed(ticks: int, scale: int, dec: int) -> str:
    """ticks * 10**-scale written with `dec` decimals (exact)."""
    sign = "-" if ticks < 0 else ""
    ip, fp = divmod(abs(ticks), 10**scale)
    digits = f"{fp:0{scale}d}" if scale else ""
    if dec <= scale:
        assert set(digits[dec:]) <= {"0"}, "would drop digits"
        frac = digits[:dec]
    else:
        frac = digits + "0" * (dec - scale)
    return f"{sign}{ip}" + (f".{frac}" if dec else "")


def needed_decimals(ticks: int, scale: int) -> int:
    if ticks == 0:
        return 0
    n = scale
    while n > 0 and ticks % 10 == 0:
        ticks //= 10
        n -= 1
    return n


def js_number(text: str, negate: bool = False) -> str:
    """ECMAScript Number::toString of a decimal (assumed shortest round-trip digits)."""
    d = Decimal(text)
    if negate:
        d = -d
    if d == 0:
        return "0"
    sign, digits, exponent = d.normalize().as_tuple()
    s = "".join(map(str, digits))
    k = len(s)
    n = exponent + k
    out = "-" if sign else ""
    if k <= n <= 21:
        out += s + "0" * (n - k)
    elif 0 < n <= 21:
        out += s[:n] + "." + s[n:]
    elif -6 < n <= 0:
        out += "0." + "0" * (-n) + s
    else:
        e = n - 1
        out += s[0] + ("." + s[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return out


def signed32(crc: int) -> int:
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def kraken_ref(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    def piece(v: str) -> str:
        return v.replace(".", "").lstrip("0")

    text = "".join(piece(p) + piece(s) for p, s in asks[:10] + bids[:10])
    return zlib.crc32(text.encode())


def interleave(bids: list[str], asks: list[str]) -> list[str]:
    out = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            out.append(bids[i])
        if i < len(asks):
            out.append(asks[i])
    return out


def okx_ref(bids, asks) -> int:
    parts = interleave([f"{p}:{s}" for p, s in bids[:25]], [f"{p}:{s}" for p, s in asks[:25]])
    return signed32(zlib.crc32(":".join(parts).encode()))


def bitfinex_ref(bids, asks) -> int:
    parts = interleave(
        [f"{js_number(p)}:{js_number(s)}" for p, s in bids[:25]],
        [f"{js_number(p)}:{js_number(s, negate=True)}" for p, s in asks[:25]],
    )
    return signed32(zlib.crc32(":".join(parts).encode()))


# ---------------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    "text, decimals, ticks, sent",
    [
        ("56789.10", 2, 5678910, 2),
        ("56789.10", 8, 5678910000000, 2),
        ("0.000022900", 9, 22900, 9),
        ("0.000022900", 8, 2290, 9),  # more decimals than the scale, the extra ones are zeros
        ("0.1000", 8, 10000000, 4),
        ("1", 0, 1, 0),
        ("0", 8, 0, 0),
        ("0.00000000", 8, 0, 8),
        ("1.5e-7", 8, 15, 8),
        ("1E3", 2, 100000, 0),
        ("1.50e2", 2, 15000, 0),
        ("2.5e+1", 1, 250, 0),
        ("12e-2", 2, 12, 2),
        ("+3.25", 2, 325, 2),
        ("007.5", 1, 75, 1),
        ("92233720368.54775807", 8, 2**63 - 1, 8),
        ("1.000000000000000000000000000000", 8, 100000000, 30),
        ("0e5", 8, 0, 0),
    ],
)
def test_parse_exact(text, decimals, ticks, sent):
    assert parse_decimal(text, decimals) == (ticks, sent)
    assert parse_decimal(text.encode(), decimals) == (ticks, sent)
    assert parse_ticks(text, decimals) == ticks


def test_parse_negative_allowed_by_helper_but_not_by_books():
    assert parse_decimal("-0.5", 2) == (-50, 1)
    b = L2Book(2, 2)
    with pytest.raises(ValueError, match="negative"):
        b.apply(BID, "-0.5", "1")
    with pytest.raises(ValueError, match="negative"):
        b.apply(BID, "0.5", "-1")
    assert len(b) == 0


@pytest.mark.parametrize(
    "text",
    ["", "abc", "1.", ".5", "1e", "1e-", "1.2.3", " 1", "1 ", "0x10", "nan", "inf", "--1", "1,5",
     "+", "-", "e5", "1_000", "\uff11", "1.5f", b"\xff", "١"],
)
def test_parse_garbage_raises_and_leaves_book_unchanged(text):
    b = L2Book(4, 4)
    b.apply(BID, "1.5", "2")
    with pytest.raises(ValueError):
        b.apply(BID, text, "1")
    with pytest.raises(ValueError):
        b.apply(ASK, "2", text)
    assert b.levels(BID) == [("1.5", "2")] and b.count(ASK) == 0


@pytest.mark.parametrize(
    "text, decimals, message",
    [
        ("0.123456789", 8, "non-zero digits beyond"),
        ("1.05", 1, "non-zero digits beyond"),
        ("1.5e-9", 8, "non-zero digits beyond"),
        ("92233720368.54775808", 8, "out of range"),
        ("99999999999999999999", 0, "out of range"),
        ("1" + "0" * 19, 0, "out of range"),
        ("1e19", 0, "out of range"),
        ("0." + "0" * 256, 8, "more than 255 decimals"),
        ("", 8, "empty"),
    ],
)
def test_parse_rejections(text, decimals, message):
    b = L2Book(decimals, decimals)
    b.apply(ASK, "1", "1")
    before = b.levels(ASK)
    with pytest.raises(ValueError, match=message):
        b.apply(ASK, text, "1")
    with pytest.raises(ValueError, match=message):
        b.apply(ASK, "1", text)
    assert b.levels(ASK) == before and len(b) == 1


def test_parse_type_errors():
    b = L2Book()
    for bad in (1.5, 2, None, bytearray(b"1")):
        with pytest.raises(TypeError):
            b.apply(BID, bad, "1")
    with pytest.raises(ValueError, match="side"):
        b.apply(2, "1", "1")
    with pytest.raises(ValueError, match="side"):
        b.levels(-1)
    with pytest.raises(ValueError):
        L2Book(19, 8)
    with pytest.raises(ValueError):
        L3Book(8, -1)


def test_strings_come_back_as_sent():
    b = L2Book(8, 8)
    b.apply(BID, "0.1000", "1.50000000")
    b.apply(BID, "0.000022900", "13355.87450757")  # 9 decimals sent on an 8-decimal book
    b.apply(BID, b"56789.1", b"0.0")  # bytes; zero size on an absent level: nothing added
    b.apply(ASK, "1.5e-7", "2e1")  # exponent notation: rebuilt in plain notation
    b.apply(ASK, "3", "1")
    assert b.levels(BID) == [("0.1000", "1.50000000"), ("0.000022900", "13355.87450757")]
    assert b.levels(ASK) == [("0.00000015", "20"), ("3", "1")]
    assert b.levels(ASK, 1) == [("0.00000015", "20")]
    assert b.levels(BID, 0) == []
    assert b.get(BID, "0.1") == "1.50000000" and b.get(BID, "0.2") is None
    # the latest representation wins
    b.apply(BID, "0.10", "1.5")
    assert b.levels(BID)[0] == ("0.10", "1.5")


def test_format_helpers():
    assert format_ticks(2290, 8, 9) == "0.000022900"
    assert format_ticks(150, 2) == "1.50"
    assert format_ticks(150, 2, 1) == "1.5"
    assert format_ticks(-100, 2, 0) == "-1"
    assert format_ticks(-5, 2) == "-0.05"
    with pytest.raises(ValueError):
        format_ticks(151, 2, 1)
    cases = {
        (15, 8): "1.5e-7", (10, 8): "1e-7", (100, 8): "0.000001", (123, 10): "1.23e-8",
        (1, 0): "1", (5000, 2): "50", (12345, 2): "123.45", (0, 8): "0", (-5, 8): "-5e-8",
        (10**18, 0): "1000000000000000000", (56, 8): "5.6e-7", (60712_4250231, 7): "60712.4250231",
    }
    for (ticks, scale), text in cases.items():
        assert format_js(ticks, scale) == text
        assert js_number(fixed(ticks, scale, scale)) == text


def test_parse_fast_path_agrees_with_the_general_parser():
    # Plain "[+-]digits[.digits]" strings of up to 19 digits take a fast path; the same text
    # with an exponent of 0 takes the general one: values, decimals and errors must agree.
    import random

    rng = random.Random(5)
    texts = ["0", "-0", "+0", "00", "0.0", "1", "-1", "+1.5", "0.00002290", "22900.72005",
             "9223372036854775807", "9223372036854775808", "-9223372036854775808",
             "922337203685477580.7", "92233720368547758.08", "9999999999999999999",
             "1234567890.123456789", "12345678901.23456789", "0.0000000000000000001",
             "0.00000000000000000010", "1.00000000", "12345678.12345678", "0.12345678"]
    for _ in range(3000):
        ip = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 12)))
        fp = "".join(rng.choice("00123456789") for _ in range(rng.randrange(0, 12)))
        texts.append(rng.choice(["", "", "-", "+"]) + ip + ("." + fp if fp else ""))

    def outcome(text, decimals):
        try:
            return parse_decimal(text, decimals)
        except ValueError as exc:
            return str(exc).replace("e0'", "'")

    for text in texts:
        for decimals in (0, 2, 5, 8, 10, 18):
            assert outcome(text, decimals) == outcome(text + "e0", decimals), (text, decimals)


def test_formatting_matches_the_reference():
    import random

    rng = random.Random(3)
    values = [0, 1, 9, 10, 99, 100, 2**63 - 1, -(2**63), -1, -10]
    values += [10**k + d for k in range(19) for d in (-1, 0, 1)]
    values += [rng.randrange(-(2**63), 2**63) for _ in range(300)]
    values += [rng.randrange(1, 10**rng.randrange(1, 12)) * 10**rng.randrange(0, 8) for _ in range(300)]
    for ticks in values:
        if not -(2**63) <= ticks < 2**63:
            continue
        for scale in range(19):
            dec = needed_decimals(ticks, scale)
            for sent in {dec, scale, scale + 3, dec + 1}:
                assert format_ticks(ticks, scale, sent) == fixed(ticks, scale, sent)
            if abs(ticks) < 10**15:  # js_number assumes the shortest round-trip digits
                assert format_js(ticks, scale) == js_number(fixed(ticks, scale, scale))


def test_crc_matches_zlib_on_every_path():
    import random

    rng = random.Random(9)
    for n in list(range(300)) + [511, 512, 513, 1000, 4096, 10000]:
        data = rng.randbytes(n)
        value = rng.getrandbits(32) if n % 2 else 0
        want = zlib.crc32(data, value)
        assert _crc32(data, value) == want  # carry-less multiply from 64 bytes, where the CPU has it
        assert _crc32(data, value, clmul=False) == want  # slicing-by-8 tables
    assert isinstance(_CRC_CLMUL, bool)


def test_checksum_text_cache_follows_every_change():
    # A book keeps the texts of the levels its last checksum wrote and reuses those whose
    # price/size/decimals are unchanged. Drive one book per checksum (so that the cache is
    # warm) through insertions above the top (shifts), removals, size and decimals changes,
    # truncation and clear, against the reference after every step.
    import random

    rng = random.Random(21)
    kinds = {
        "kraken": (lambda b: b.checksum_kraken(), kraken_ref),
        "okx": (lambda b: b.checksum_okx(), okx_ref),
        "bitfinex": (lambda b: b.checksum_bitfinex(), bitfinex_ref),
    }
    for name, (checksum, ref) in kinds.items():
        for trial in range(12):
            book = L2Book(P_SCALE, S_SCALE)
            model = {BID: {}, ASK: {}}
            width = (12, 40, 200)[trial % 3]
            for _ in range(250):
                side = rng.choice((BID, ASK))
                pt = (5000 - rng.randrange(width)) if side == BID else (5001 + rng.randrange(width))
                pt *= 10
                if rng.random() < 0.3:
                    book.apply(side, fixed(pt, P_SCALE, P_SCALE), "0")
                    model[side].pop(pt, None)
                else:
                    st_ = rng.choice((0, 5, 10**6, 123456, rng.randrange(1, 10**8)))
                    if st_ == 0:
                        st_ = 1
                    pdec = rng.choice((needed_decimals(pt, P_SCALE), P_SCALE, P_SCALE + 30))
                    sdec = rng.choice((needed_decimals(st_, S_SCALE), S_SCALE, S_SCALE + 1))
                    ptext, stext = fixed(pt, P_SCALE, pdec), fixed(st_, S_SCALE, sdec)
                    book.apply(side, ptext, stext)
                    model[side][pt] = (ptext, stext)
                if rng.random() < 0.02:
                    depth = rng.randrange(0, 30)
                    book.truncate(depth)
                    for s in (BID, ASK):
                        keep = sorted(model[s], reverse=(s == BID))[:depth]
                        model[s] = {p: model[s][p] for p in keep}
                if rng.random() < 0.01:
                    book.clear()
                    model = {BID: {}, ASK: {}}
                bids = [model[BID][p] for p in sorted(model[BID], reverse=True)]
                asks = [model[ASK][p] for p in sorted(model[ASK])]
                assert checksum(book) == ref(bids, asks), (name, trial)


def test_struct_sizes_meet_the_memory_target():
    # target: under 100 bytes per level for a 1000-level book
    assert LEVEL_BYTES == 32
    assert L3_LEVEL_BYTES == 44 and ORDER_BYTES == 24
    for capacity in (1024, 1):  # the default, and grown by doubling from a single node
        b = L2Book(capacity=capacity)
        for i in range(500):
            b.apply_ticks(BID, 1000 + i, 1)
            b.apply_ticks(ASK, 5000 + i, 1)
        assert len(b) == 1000
        assert b.nbytes / len(b) < 100
    assert L2Book(capacity=1024).nbytes == 1025 * 32  # + the sentinel node


# ---------------------------------------------------------------------------------------------
# Flags


def test_top_changed_is_exact():
    b = L2Book(2, 2)
    assert b.apply(BID, "100", "1") == TOP_CHANGED  # first bid
    assert b.apply(BID, "99", "5") == 0  # worse level
    assert b.apply(BID, "99", "6") == 0  # size change below the top
    assert b.apply(BID, "100", "1.00") == 0  # same value re-sent: nothing changed
    assert b.apply(BID, "100", "2") == TOP_CHANGED  # size at the top
    assert b.apply(BID, "101", "1") == TOP_CHANGED  # better price
    assert b.apply(BID, "99", "0") == 0  # delete below the top
    assert b.apply(BID, "101", "0") == TOP_CHANGED  # delete the top
    assert b.best_bid() == (100.0, 2.0)
    assert b.apply(ASK, "105", "1") == TOP_CHANGED
    assert b.apply(ASK, "106", "1") == 0
    assert b.apply_ticks(ASK, 10500, 300) == TOP_CHANGED
    assert b.apply_ticks(ASK, 10500, 300) == 0
    assert b.truncate(1) == 1  # bids: only 100 is left; asks: 106 goes
    assert b.levels(ASK) == [("105.00", "3.00")]


def test_unknown_and_crossed():
    b = L2Book(2, 2)
    assert b.apply(BID, "100", "0") == UNKNOWN
    assert len(b) == 0
    assert b.apply(BID, "100", "1") == TOP_CHANGED
    assert b.apply(ASK, "101", "1") == TOP_CHANGED
    assert b.apply(ASK, "100", "1") == TOP_CHANGED | CROSSED  # equal prices cross
    assert b.apply(ASK, "99", "0") == UNKNOWN | CROSSED  # still crossed, book unchanged
    assert b.apply(BID, "50", "1") == CROSSED
    assert b.apply(ASK, "100", "0") == TOP_CHANGED  # uncrossed
    assert b.apply(BID, "102", "1") == TOP_CHANGED | CROSSED
    assert b.best() == (102.0, 1.0, 101.0, 1.0)
    b.clear()
    assert b.best() == (0.0, 0.0, 0.0, 0.0) and b.best_bid() is None and b.best_ask() is None
    assert b.apply(ASK, "1", "1") == TOP_CHANGED  # one side only never crosses


def test_l3_flags():
    b = L3Book(2, 2)
    assert b.remove("x") == UNKNOWN
    assert b.update("x", "1") == UNKNOWN
    assert b.change("x", "1", "1") == UNKNOWN
    assert b.add("a", BID, "100", "1") == TOP_CHANGED
    assert b.add("b", BID, "100", "2") == TOP_CHANGED  # the level total changed
    assert b.add("c", BID, "99", "2") == 0
    assert b.update("c", "3") == 0
    assert b.update("a", "1") == 0
    assert b.update("a", "0.5") == TOP_CHANGED
    assert b.add("d", ASK, "100", "1") == TOP_CHANGED | CROSSED
    assert b.remove("d") == TOP_CHANGED
    assert b.change("c", "101", "3") == TOP_CHANGED
    assert b.best_bid() == (101.0, 3.0)
    assert b.remove("zz") == UNKNOWN
    assert len(b) == 3 and b.count(BID) == 3 and b.count(ASK) == 0 and b.level_count(BID) == 2


def test_l3_semantics():
    b = L3Book(8, 8)
    b.add("a", BID, "10.0", "1")
    b.add("b", BID, "10.00", "2.50")
    b.add(7, BID, "10", "0.25")
    assert b.orders_at(BID, "10") == [("a", "1"), ("b", "2.50"), (7, "0.25")]
    assert b.levels(BID) == [("10.0", "3.75", 3)]
    b.update("a", "0.5")  # keeps its place
    assert [i for i, _ in b.orders_at(BID, "10")] == ["a", "b", 7]
    b.change("a", "10", "0.4")  # same price: keeps its place
    assert [i for i, _ in b.orders_at(BID, "10")] == ["a", "b", 7]
    b.change("a", "11", "0.4")  # new price: back of the new level
    b.change("a", "10", "0.4")  # and back again: back of the queue
    assert [i for i, _ in b.orders_at(BID, "10")] == ["b", 7, "a"]
    b.add("b", ASK, "12", "1")  # an id already present is replaced (here: moves side)
    assert b.order("b") == (ASK, "12", "1")
    assert [i for i, _ in b.orders_at(BID, "10")] == [7, "a"]
    assert b.add("c", BID, "9", "0") == UNKNOWN  # size 0 on add: remove semantics
    assert "c" not in b and "a" in b
    assert b.order("zz") is None
    assert b.orders_at(ASK, "99") == []
    with pytest.raises(ValueError):
        b.add("e", BID, "1.000000001", "1")
    assert "e" not in b
    with pytest.raises(TypeError):
        b.add(["unhashable"], BID, "1", "1")
    b._validate()
    b.clear()
    assert len(b) == 0 and b.levels(BID) == [] and b.order(7) is None
    b.add(7, BID, "1", "1")
    assert b.order(7) == (BID, "1", "1")
    b._validate()


def test_growth_far_beyond_capacity_and_truncate():
    b = L2Book(2, 2, capacity=1)
    for i in range(1, 5001):
        b.apply_ticks(BID, i, i)
        b.apply_ticks(ASK, 10000 + i, i)
    b._validate()
    assert len(b) == 10000 and b.best() == (50.0, 50.0, 100.01, 0.01)
    assert b.truncate(1000) == 8000
    b._validate()
    assert b.count(BID) == 1000 and b.levels(BID)[-1] == ("40.01", "40.01")
    assert b.levels(ASK)[-1] == ("110.00", "10.00")
    assert b.truncate(0) == 2000 and len(b) == 0
    b._validate()
    with pytest.raises(ValueError):
        b.truncate(-1)
    l3 = L3Book(2, 2, capacity=1)
    for i in range(3000):
        l3.add(i, i % 2, str(1000 + (i % 50) if i % 2 else 900 - (i % 50)), "1")
    l3._validate()
    assert len(l3) == 3000 and l3.level_count(BID) == 25


def test_facade_exports():
    for name in ("L2Book", "L3Book", "BID", "ASK", "TOP_CHANGED", "CROSSED", "UNKNOWN",
                 "parse_ticks", "parse_decimal", "format_ticks", "format_js"):
        assert getattr(bk, name) is not None and name in bk.__all__
    assert bk.L2Book is L2Book


# ---------------------------------------------------------------------------------------------
# Model-based state machines

P_SCALE = 4
S_SCALE = 6


@st.composite
def decimal_text(draw, scale: int, allow_zero: bool):
    base = draw(st.integers(0 if allow_zero else 1, 30))
    ticks = base * draw(st.sampled_from([1, 10, 100, 1000, 10000]))
    dec = draw(st.integers(needed_decimals(ticks, scale), scale + 2))
    text = fixed(ticks, scale, dec)
    return ticks, text


prices = decimal_text(P_SCALE, allow_zero=False)
sizes = decimal_text(S_SCALE, allow_zero=True)
nonzero_sizes = decimal_text(S_SCALE, allow_zero=False)
sides = st.sampled_from([BID, ASK])
garbage = st.sampled_from(["", "x", "1.", "1e", "-1", "0.0000001", "1.0000001", "1" * 30])


def _top(levels: dict, side: int):
    if not levels:
        return None
    p = max(levels) if side == BID else min(levels)
    return p, levels[p][2]


class L2Machine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.book = L2Book(P_SCALE, S_SCALE, capacity=2)
        self.model = {BID: {}, ASK: {}}  # price ticks -> (price text, size text, size ticks)

    def _flags(self, before):
        flags = 0
        for s in (BID, ASK):
            if _top(self.model[s], s) != before[s]:
                flags |= TOP_CHANGED
        b, a = _top(self.model[BID], BID), _top(self.model[ASK], ASK)
        if b and a and b[0] >= a[0]:
            flags |= CROSSED
        return flags

    @rule(side=sides, price=prices, size=sizes, as_bytes=st.booleans())
    def apply(self, side, price, size, as_bytes):
        before = {s: _top(self.model[s], s) for s in (BID, ASK)}
        (pt, ptext), (st_, stext) = price, size
        args = (ptext.encode(), stext.encode()) if as_bytes else (ptext, stext)
        got = self.book.apply(side, *args)
        unknown = 0
        if st_ == 0:
            if pt in self.model[side]:
                del self.model[side][pt]
            else:
                unknown = UNKNOWN
        else:
            self.model[side][pt] = (ptext, stext, st_)
        assert got == self._flags(before) | unknown

    @rule(side=sides, price=st.integers(1, 300000), size=st.integers(0, 30000000))
    def apply_ticks(self, side, price, size):
        before = {s: _top(self.model[s], s) for s in (BID, ASK)}
        got = self.book.apply_ticks(side, price, size)
        unknown = 0
        if size == 0:
            if self.model[side].pop(price, None) is None:
                unknown = UNKNOWN
        else:
            self.model[side][price] = (fixed(price, P_SCALE, P_SCALE), fixed(size, S_SCALE, S_SCALE), size)
        assert got == self._flags(before) | unknown

    @rule(side=sides, bad=garbage, which=st.booleans())
    def apply_garbage(self, side, bad, which):
        with pytest.raises(ValueError):
            if which:
                self.book.apply(side, bad, "1")
            else:
                self.book.apply(side, "1", bad)

    @rule(depth=st.integers(0, 12))
    def truncate(self, depth):
        removed = 0
        for s in (BID, ASK):
            keep = sorted(self.model[s], reverse=(s == BID))[:depth]
            removed += len(self.model[s]) - len(keep)
            self.model[s] = {p: self.model[s][p] for p in keep}
        assert self.book.truncate(depth) == removed

    @rule()
    def clear(self):
        self.book.clear()
        self.model = {BID: {}, ASK: {}}

    def _levels(self, side):
        m = self.model[side]
        return [(m[p][0], m[p][1]) for p in sorted(m, reverse=(side == BID))]

    @invariant()
    def matches_model(self):
        book = self.book
        book._validate()
        bids, asks = self._levels(BID), self._levels(ASK)
        assert book.levels(BID) == bids
        assert book.levels(ASK) == asks
        assert book.levels(BID, 3) == bids[:3]
        assert book.levels(ASK, start=2) == asks[2:]
        assert book.levels(BID, 2, start=1) == bids[1:3]
        assert book.count(BID) == len(bids) and book.count(ASK) == len(asks)
        assert len(book) == len(bids) + len(asks)
        tops = []
        for s, getter in ((BID, book.best_bid), (ASK, book.best_ask)):
            top = _top(self.model[s], s)
            want = None if top is None else (top[0] / 10**P_SCALE, top[1] / 10**S_SCALE)
            assert getter() == want
            tops += list(want) if want else [0.0, 0.0]
        assert book.best() == tuple(tops)
        assert book.checksum_kraken() == kraken_ref(bids, asks)
        scaled = lambda lv: [(fixed(parse_ticks(p, P_SCALE), P_SCALE, P_SCALE),  # noqa: E731
                              fixed(parse_ticks(s, S_SCALE), S_SCALE, S_SCALE)) for p, s in lv]
        assert book.checksum_kraken(book_scale=True) == kraken_ref(scaled(bids), scaled(asks))
        assert book.checksum_okx() == okx_ref(bids, asks)
        assert book.checksum_bitfinex() == bitfinex_ref(bids, asks)


L2Machine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestL2Book = L2Machine.TestCase


class L3Machine(RuleBasedStateMachine):
    """Model: order id -> dict; per (side, price ticks) level: price text, max sdec, queue."""

    ids = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, "a", "b", "c", "d", "e", "f"])

    def __init__(self):
        super().__init__()
        self.book = L3Book(P_SCALE, S_SCALE, capacity=1)
        self.orders = {}  # id -> [side, price ticks, price text, size ticks, size text]
        self.levels = {}  # (side, price ticks) -> {"ptext", "sdec", "queue"}

    # -- model helpers
    def _tops(self):
        out = {}
        for s in (BID, ASK):
            keys = [p for (side, p) in self.levels if side == s]
            if not keys:
                out[s] = None
                continue
            p = max(keys) if s == BID else min(keys)
            out[s] = (p, sum(self.orders[i][3] for i in self.levels[(s, p)]["queue"]))
        return out

    def _flags(self, before):
        after = self._tops()
        flags = TOP_CHANGED if after != before else 0
        if after[BID] and after[ASK] and after[BID][0] >= after[ASK][0]:
            flags |= CROSSED
        return flags

    def _crossed(self):
        return self._flags(self._tops())

    def _unlink(self, oid):
        side, pt = self.orders[oid][0], self.orders[oid][1]
        lv = self.levels[(side, pt)]
        lv["queue"].remove(oid)
        if not lv["queue"]:
            del self.levels[(side, pt)]

    def _link(self, oid):
        side, pt, ptext, _, stext = self.orders[oid]
        sdec = len(stext.partition(".")[2])
        lv = self.levels.setdefault((side, pt), {"ptext": ptext, "sdec": 0, "queue": []})
        lv["queue"].append(oid)
        lv["sdec"] = max(lv["sdec"], sdec)

    def _remove(self, oid):
        self._unlink(oid)
        del self.orders[oid]

    # -- rules
    @rule(oid=ids, side=sides, price=prices, size=sizes)
    def add(self, oid, side, price, size):
        before = self._tops()
        got = self.book.add(oid, side, price[1], size[1])
        if size[0] == 0:
            if oid not in self.orders:
                assert got == UNKNOWN | self._crossed()
                return
            self._remove(oid)
        else:
            if oid in self.orders:
                self._unlink(oid)
            self.orders[oid] = [side, price[0], price[1], size[0], size[1]]
            self._link(oid)
        assert got == self._flags(before)

    @rule(oid=ids, size=sizes)
    def update(self, oid, size):
        before = self._tops()
        got = self.book.update(oid, size[1])
        if oid not in self.orders:
            assert got == UNKNOWN | self._crossed()
            return
        if size[0] == 0:
            self._remove(oid)
        else:
            o = self.orders[oid]
            o[3], o[4] = size
            lv = self.levels[(o[0], o[1])]
            lv["sdec"] = max(lv["sdec"], len(size[1].partition(".")[2]))
        assert got == self._flags(before)

    @rule(oid=ids, price=prices, size=sizes)
    def change(self, oid, price, size):
        before = self._tops()
        got = self.book.change(oid, price[1], size[1])
        if oid not in self.orders:
            assert got == UNKNOWN | self._crossed()
            return
        o = self.orders[oid]
        if size[0] == 0:
            self._remove(oid)
        elif price[0] == o[1]:
            o[2], o[3], o[4] = price[1], size[0], size[1]
            lv = self.levels[(o[0], o[1])]
            lv["sdec"] = max(lv["sdec"], len(size[1].partition(".")[2]))
        else:
            self._unlink(oid)
            o[1], o[2], o[3], o[4] = price[0], price[1], size[0], size[1]
            self._link(oid)
        assert got == self._flags(before)

    @rule(oid=ids)
    def remove(self, oid):
        before = self._tops()
        got = self.book.remove(oid)
        if oid not in self.orders:
            assert got == UNKNOWN | self._crossed()
            return
        self._remove(oid)
        assert got == self._flags(before)

    @rule(oid=ids, side=sides, bad=garbage)
    def add_garbage(self, oid, side, bad):
        with pytest.raises(ValueError):
            self.book.add(oid, side, bad, "1")
        with pytest.raises(ValueError):
            self.book.update(oid, bad)

    @precondition(lambda self: len(self.orders) > 10)
    @rule()
    def clear(self):
        self.book.clear()
        self.orders.clear()
        self.levels.clear()

    # -- invariants
    def _model_levels(self, side):
        keys = sorted((p for (s, p) in self.levels if s == side), reverse=(side == BID))
        out = []
        for p in keys:
            lv = self.levels[(side, p)]
            total = sum(self.orders[i][3] for i in lv["queue"])
            out.append((lv["ptext"], fixed(total, S_SCALE, lv["sdec"]), len(lv["queue"])))
        return keys, out

    @invariant()
    def matches_model(self):
        book = self.book
        book._validate()
        flat = {}
        for side in (BID, ASK):
            keys, want = self._model_levels(side)
            assert book.levels(side) == want
            assert book.levels(side, 2, start=1) == want[1:3]
            assert book.level_count(side) == len(keys)
            assert book.count(side) == sum(1 for o in self.orders.values() if o[0] == side)
            flat[side] = []
            for p, (ptext, _, _) in zip(keys, want):
                queue = self.levels[(side, p)]["queue"]
                assert book.orders_at(side, ptext) == [(i, self.orders[i][4]) for i in queue]
                flat[side] += [(str(i), self.orders[i][4]) for i in queue]
        assert len(book) == len(self.orders)
        for oid, (side, _, ptext, _, stext) in self.orders.items():
            assert book.order(oid) == (side, ptext, stext)
        tops = self._tops()
        for s, getter in ((BID, book.best_bid), (ASK, book.best_ask)):
            want = None if tops[s] is None else (tops[s][0] / 10**P_SCALE, tops[s][1] / 10**S_SCALE)
            assert getter() == want
        parts = interleave(
            [f"{i}:{js_number(s)}" for i, s in flat[BID][:25]],
            [f"{i}:{js_number(s, negate=True)}" for i, s in flat[ASK][:25]],
        )
        assert book.checksum_bitfinex() == signed32(zlib.crc32(":".join(parts).encode()))


L3Machine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestL3Book = L3Machine.TestCase


# ---------------------------------------------------------------------------------------------
# apply_sides: a message's levels in one call, validated whole, rows built in C


class _Row(tuple):
    """A stand-in row type (events.Lob is one too: a tuple subclass)."""

    __slots__ = ()


_level_text = st.builds(
    lambda i, f, d: f"{i}.{str(f).zfill(d)}" if d else str(i),
    st.integers(1, 99_999), st.integers(0, 99_999), st.integers(0, 5))
_size_text = st.one_of(st.just("0"), st.just("0.00000"), _level_text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_level_text, _size_text), max_size=12),
       st.lists(st.tuples(_level_text, _size_text), max_size=12),
       st.sampled_from([BID, ASK]), st.integers(0, 6))
def test_apply_sides_equals_apply_one_by_one(first_levels, second_levels, first, depth):
    batch, single = L2Book(5, 5), L2Book(5, 5)
    for b in (batch, single):  # a book with something in it
        b.apply(BID, "100.5", "1")
        b.apply(ASK, "101.25", "2")
    rows: list = []
    flags = batch.apply_sides(first, first_levels, second_levels, rows, _Row, "x", "S", 7, 8, depth)
    want_rows, want_flags = [], 0
    for side, levels in ((first, first_levels), (1 - first, second_levels)):
        for price, size in levels:
            f = single.apply(side, price, size)
            if not f & UNKNOWN:
                want_flags |= f
                want_rows.append(("x", "S", float(price), float(size), "buy" if side == BID else "sell", 7, 8))
    if depth:
        for side in (BID, ASK):
            for price, _ in single.levels(side, start=depth):
                want_rows.append(("x", "S", float(price), 0.0, "buy" if side == BID else "sell", 7, 8))
        single.truncate(depth)
    assert [tuple(r) for r in rows] == want_rows
    assert all(type(r) is _Row for r in rows)
    assert flags == want_flags
    assert batch.levels(BID) == single.levels(BID) and batch.levels(ASK) == single.levels(ASK)
    batch._validate()


@pytest.mark.parametrize("bad", [("-1", "1"), ("+1", "1"), ("1", "-0"), ("0", "1"), ("1.123456", "1"), ("abc", "1"),
                                 ("1", ""), ("1",), (1, "1"), ("1e999", "1")])
def test_apply_sides_refuses_a_message_whole(bad):
    book = L2Book(5, 5)
    book.apply(ASK, "101.25", "2")
    rows: list = []
    with pytest.raises((ValueError, TypeError)):
        # the good levels come first: none of them may be applied
        book.apply_sides(BID, [("100", "1"), ("99", "2")], [("102", "1"), bad], rows, _Row, "x", "S", 1, 2)
    assert rows == []
    assert book.levels(BID) == [] and book.levels(ASK) == [("101.25", "2")]
    with pytest.raises((ValueError, TypeError)):
        book.check_sides([("100", "1")], [bad])


class _V1Level(msgspec.Struct, array_like=True):  # as kraken's V1Level: price, size, timestamp
    price: str
    size: str
    timestamp: str


class _V2Level(msgspec.Struct, rename={"size": "qty"}):  # as kraken's V2Level: the raw digits
    price: msgspec.Raw
    size: msgspec.Raw


def test_apply_sides_reads_struct_levels_and_raw_digits():
    Level, RawLevel = _V1Level, _V2Level
    book, rows = L2Book(8, 8), []
    # KRAKEN.ws.50.0: [3648,{"a":[["0.00761700","0.00000000","1618678134.675888"]],...
    v1 = msgspec.json.decode(b'[["0.00761700","0.00000000","1618678134.675888"],["0.00762600","0.62480000","1"]]',
                             type=list[Level])
    v2 = msgspec.json.decode(b'[{"price":0.5666,"qty":4831.75496356}]', type=list[RawLevel])
    book.apply_sides(ASK, v1, v2, rows, _Row, "kraken", "KSM-BTC", 1, 2)
    assert [tuple(r) for r in rows] == [("kraken", "KSM-BTC", 0.007626, 0.6248, "sell", 1, 2),
                                        ("kraken", "KSM-BTC", 0.5666, 4831.75496356, "buy", 1, 2)]
    assert book.levels(BID) == [("0.5666", "4831.75496356")]  # the digits as sent


def test_apply_sides_floats_beyond_2_pow_53_ticks_come_from_the_text():
    book, rows = L2Book(8, 8), []
    price = "123456789.12345679"  # 12345678912345679 ticks > 2**53: ticks / 1e8 may round differently
    book.apply_sides(BID, [(price, "90071992.54740993")], None, rows, _Row, "x", "S", 1, 2)
    assert rows[0][2] == float(price) and rows[0][3] == float("90071992.54740993")


def test_apply_sides_appends_to_anything_with_append_and_checks_its_row_type():
    class Appender:  # not a list: anything with append
        def __init__(self):
            self.got = []

        def append(self, row):
            self.got.append(row)

    book, rows = L2Book(2, 2), Appender()
    book.apply_sides(ASK, (("1.5", "2"),), None, rows, _Row, "x", "S", 1, 2)
    assert [tuple(r) for r in rows.got] == [("x", "S", 1.5, 2.0, "sell", 1, 2)]
    with pytest.raises(TypeError):
        book.apply_sides(ASK, [("1.5", "2")], None, [], dict, "x", "S", 1, 2)
    with pytest.raises(TypeError):
        book.apply_sides(ASK, iter([("1.5", "2")]), None, [], _Row, "x", "S", 1, 2)


@pytest.mark.parametrize("text,ms,us", [
    ("1618678133.626511", 1618678133626, 1618678133626511),  # KRAKEN.ws.50.0's first snapshot level
    ("1618678133", 1618678133000, 1618678133000000),
    ("1618678133.", 1618678133000, 1618678133000000),
    ("12345678901.123456789012", 12345678901123, 12345678901123456),
])
def test_seconds_to_ms_and_us_exact(text, ms, us):
    assert bk.seconds_to_ms(text) == ms and bk.seconds_to_us(text) == us
    assert bk.seconds_to_ms(text.encode()) == ms


@pytest.mark.parametrize("text", ["", ".5", "1a", "1.5x", "123456789012.1", "1.1234567890123", "\uff11\uff12", "-1", None])
def test_seconds_to_ms_refuses(text):
    with pytest.raises(ValueError):
        bk.seconds_to_ms(text)


@pytest.mark.parametrize("text,ms", [
    ("2021-04-17T16:43:37.075687Z", 1618677817075),      # Coinbase
    ("2023-10-04T16:26:30.524394914Z", 1696436790524),   # Kraken v2 ohlc: nine digits
    ("2023-10-04T16:25:00Z", 1696436700000),
    ("2023-10-04t16:25:00z", 1696436700000),
    ("2023-10-04 16:25:00+00:00", 1696436700000),
    ("2023-10-04T16:25:00", 1696436700000),
    ("2023-10-04T16:25:00.5", 1696436700500),
    ("2023-10-04T16:25:00.123456789012Z", 1696436700123),
    ("2016-12-31T23:59:60Z", 1483228800000),              # a leap second: the next second's ms
    ("2024-02-29T00:00:00Z", 1709164800000),
    ("2000-02-29T12:00:00Z", 951825600000),
    ("1970-01-01T00:00:00Z", 0),
    ("5138-11-16T09:46:39.999Z", 10**14 - 1),
])
def test_rfc3339_to_ms_exact(text, ms):
    assert bk.rfc3339_to_ms(text) == ms


@pytest.mark.parametrize("text", [
    "", "garbage", "2023-13-06T17:35:55Z", "2023-10-06X17:35:55Z", "2023-10-06T17:35:55.Z", "2023-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z", "2023-04-31T00:00:00Z", "2023-10-04T24:00:00Z", "2023-10-04T16:60:00Z",
    "2023-10-04T16:25:61Z", "0000-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "5138-11-16T09:46:40Z",
    "2023-10-04T16:25:00.1234567890123Z", "2023-10-04T16:25:00+01:00", "2023-10-04T16:25:00Zx",
    "\uff12023-10-04T16:25:00Z", "2023-10-04T16:25:00.1\u00e9", b"2023-10-04T16:25:00Z", None, 1696436700])
def test_rfc3339_to_ms_refuses(text):
    with pytest.raises(ValueError, match="bad timestamp"):
        bk.rfc3339_to_ms(text)


@pytest.mark.parametrize("text,value", [("974947235", 974947235), ("0", 0), ("4294967295", 4294967295),
                                        ("0974947235", 974947235), (b"2466532719", 2466532719)])
def test_parse_checksum(text, value):
    assert bk.parse_checksum(text) == value


@pytest.mark.parametrize("text", ["", "4294967296", "12345678901", "-1", "+1", "1.0", "\u0661", " 1", None, 1])
def test_parse_checksum_refuses(text):
    with pytest.raises(ValueError):
        bk.parse_checksum(text)


@pytest.mark.parametrize("span", [400, 50_000])
def test_price_index_agrees_with_the_tree_through_random_updates(span):
    """Each side's price index (open addressing, deletion by backward shift) follows the tree
    through 16,000 random sets and removals, a clear and its growth: ``_validate`` checks that
    every level of the tree is found by the index and that it holds no other; the levels equal
    a dict's. A narrow span (many collisions and removals in one cluster) and a wide one."""
    import random

    rng = random.Random(span)
    book = L2Book(2, 3)
    model = {BID: {}, ASK: {}}
    for step in range(16_000):
        side = rng.choice((BID, ASK))
        if rng.random() < 0.45 and model[side]:
            price = rng.choice(list(model[side]))
            book.apply(side, f"{price / 100:.2f}", "0")
            del model[side][price]
        else:
            price, size = rng.randint(1, span), rng.randint(1, 10**6)
            book.apply(side, f"{price / 100:.2f}", f"{size / 1000:.3f}")
            model[side][price] = size
        if step % 1000 == 0:
            book._validate()
        if step == 8000:
            book.clear()
            model = {BID: {}, ASK: {}}
    book._validate()
    for side in (BID, ASK):
        assert {round(float(p) * 100): round(float(s) * 1000) for p, s in book.levels(side)} == model[side]
