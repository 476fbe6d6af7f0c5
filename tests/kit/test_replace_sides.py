"""``L2Book.replace_sides`` (a whole side as sent, one call) and ``round_sizes``: against their
Python references, ``apply_sides`` of ``atomfast.kit.levels.side_changes`` and
``atomfast.exchanges.htx.parse.fit_levels``'s Decimal rounding (``fit_size``), on random books
and messages: the same rows (list rows and Avro values), flags, book and errors."""
from __future__ import annotations

import random
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

import msgspec
import pytest

from atomfast.book import ASK, BID, AvroRows, L2Book, parse_ticks, round_sizes
from atomfast.events import Lob
from atomfast.kit.levels import side_changes


def _fit_size(size, decimals):
    """htx.parse.fit_size as written before the compiled ``round_sizes`` (the reference)."""
    try:
        parse_ticks(size, decimals)
        return size
    except (ValueError, OverflowError):
        pass
    text = bytes(size).decode("ascii", "replace") if not isinstance(size, str) else size
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise ValueError("not a number") from None
    if not d.is_finite() or d < 0 or text[:1] in "+-":
        raise ValueError("negative")
    try:
        q = d.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        raise ValueError("range") from None
    if q == 0 and d != 0:
        q = Decimal(1).scaleb(-decimals)
    out = format(q, "f").encode()
    parse_ticks(out, decimals)
    return out


def _size_text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.3:
        return repr(rng.uniform(0, 10 ** rng.randint(0, 9)))       # a float's 16-17 digits
    if kind < 0.45:
        return f"{rng.uniform(0, 10):.{rng.randint(0, 30)}f}"
    if kind < 0.6:
        return f"{rng.uniform(1, 10):.{rng.randint(0, 17)}f}E{rng.choice(['', '+', '-'])}{rng.randint(0, 25)}"
    if kind < 0.7:
        return "0." + "0" * rng.randint(0, 20) + str(rng.randint(1, 99999))
    if kind < 0.8:
        return str(rng.randint(0, 10 ** rng.randint(1, 22))) + "." + "5" * rng.randint(1, 3) + "0" * rng.randint(0, 4)
    if kind < 0.85:
        return rng.choice(["0", "0.0", "1", "0e5", "5e-13", "25e-13", "35e-13", "15E-13", "-1.5", "+1.5", ".5", "5.",
                           "1e", "abc", "", "1.5e-400", "1e401", "9223372036854775807", "9223372.0368547758075",
                           "9223372.0368547758085", "0.00000000000049999999999999999999999"])
    return f"{rng.randint(0, 10 ** 6)}.{rng.randint(0, 10 ** 12):012d}{rng.randint(0, 10 ** 8)}"


def test_round_sizes_is_decimal_quantize():
    rng = random.Random(7)
    for _ in range(20_000):
        decimals = rng.randint(0, 12)
        text = _size_text(rng)
        for size in (text, text.encode(), msgspec.Raw(text.encode())):
            try:
                want = _fit_size(size, decimals)
            except (ValueError, OverflowError):
                want = ValueError
            got = round_sizes([("1", size)], decimals)
            if got is None:
                continue  # the caller rounds it itself
            assert want is not ValueError, (text, decimals, got)
            got_size = got[0][1]
            if want is size:
                assert got_size is size
            else:
                assert got_size == want, (text, decimals)
    # what it leaves to the caller
    assert round_sizes([("1", "1", "x")], 2) is None
    assert round_sizes([("1", 1.5)], 2) is None
    assert round_sizes([("1", ".555")], 2) is None
    assert round_sizes([("1", "0.00")], 2) == [("1", "0.00")]
    assert round_sizes([["1", "1.555"]], 2) == [("1", b"1.56")]
    assert round_sizes([("1", "1.545")], 2) == [("1", b"1.54")]
    assert round_sizes([("1", "0.0001")], 2) == [("1", b"0.01")]
    assert round_sizes(iter([]), 2) is None


def _reference(book: L2Book, bids, asks, rows, event_ms=5, atom_us=6):
    fb = [(p, _fit_size(s, book.size_decimals)) for p, s in bids]
    fa = [(p, _fit_size(s, book.size_decimals)) for p, s in asks]
    book.check_sides(fb, fa)
    return book.apply_sides(BID, side_changes(book, BID, fb), side_changes(book, ASK, fa), rows, Lob, "x", "X-Y",
                            event_ms, atom_us)


def _price(rng, pd):
    return f"{rng.randint(1, 60) / 4:.{rng.choice([2, pd])}f}"


def _side(rng, pd, lo, hi, n, held=()):
    out = []
    for _ in range(n):
        if held and rng.random() < 0.6:
            p, s = rng.choice(held)
            out.append((p, s if rng.random() < 0.5 else (s + "0" if "." in s else s + ".0")
                        if rng.random() < 0.5 else _size_text(rng)))
            continue
        p = f"{rng.uniform(lo, hi):.{rng.randint(0, pd)}f}"
        out.append((p, repr(rng.uniform(0, 100)) if rng.random() < 0.8 else "0"))
    return out


def _book_state(book):
    return book.levels(BID), book.levels(ASK), book.best()


@pytest.mark.parametrize("avro", [False, True])
def test_replace_sides_is_apply_sides_of_side_changes(avro):
    rng = random.Random(11 + avro)
    for trial in range(1500):
        pd, sd = rng.randint(0, 6), rng.randint(0, 12)
        a, b = L2Book(pd, sd), L2Book(pd, sd)
        held_b: list = []
        held_a: list = []
        for step in range(6):
            bids = _side(rng, pd, 1, 100, rng.randint(0, 30), held_b)
            asks = _side(rng, pd, 90, 200, rng.randint(0, 30), held_a)
            if rng.random() < 0.1:
                bids = bids + bids[:3]  # a price sent twice
            if rng.random() < 0.05:
                asks = asks + [("1.5", "-1")]
            ra = AvroRows() if avro else []
            rb = AvroRows() if avro else []
            try:
                want = _reference(a, bids, asks, ra)
            except (ValueError, OverflowError):
                want = ValueError
            try:
                got = b.replace_sides(BID, bids, asks, rb, Lob, "x", "X-Y", 5, 6, round_sizes=True)
            except ValueError:
                got = ValueError
            if got is ValueError and want is not ValueError:
                # refused where the reference rounds (a size that is no plain JSON number): the
                # caller's slow path; take the reference's state and go on
                b = L2Book(pd, sd)
                b.apply_sides(BID, a.levels(BID), a.levels(ASK), [], Lob, "x", "X-Y", 5, 6)
                continue
            assert got == want, (trial, step)
            if avro:
                assert ra.take() == rb.take()
            else:
                assert ra == rb
            assert _book_state(a) == _book_state(b)
            b._validate()
            held_b = a.levels(BID)
            held_a = a.levels(ASK)


def test_replace_sides_examples():
    book = L2Book(2, 4)
    rows: list = []
    assert book.replace_sides(BID, [("10.00", "1"), ("9.00", "2")], [("11.00", "3")], rows, Lob, "x", "X", 1, 2)
    assert [(r.price, r.size, r.side) for r in rows] == [(10.0, 1.0, "buy"), (9.0, 2.0, "buy"), (11.0, 3.0, "sell")]
    rows.clear()
    # 10 unchanged ("1.0" is "1"), 9 gone, 8 new; asks: 11 resized
    book.replace_sides(BID, [("10.00", "1.0"), ("8.00", "4")], [("11.00", "5")], rows, Lob, "x", "X", 1, 2)
    assert [(r.price, r.size, r.side) for r in rows] == [(8.0, 4.0, "buy"), (9.0, 0.0, "buy"), (11.0, 5.0, "sell")]
    assert book.levels(BID) == [("10.00", "1"), ("8.00", "4")]
    rows.clear()
    # a malformed level: nothing changes
    with pytest.raises(ValueError):
        book.replace_sides(BID, [("10.00", "2")], [("x", "1")], rows, Lob, "x", "X", 1, 2)
    assert rows == [] and book.levels(BID) == [("10.00", "1"), ("8.00", "4")]
    # rounding: at the scale's decimals; refused without
    with pytest.raises(ValueError):
        book.replace_sides(BID, [("10.00", "1.00005")], [], rows, Lob, "x", "X", 1, 2)
    book.replace_sides(BID, [("10.00", "1.00005")], [], rows, Lob, "x", "X", 1, 2, round_sizes=True)
    assert book.levels(BID) == [("10.00", "1")]  # 1.0000: the same size, unchanged
    book.replace_sides(BID, [("10.00", "1.00015"), ("8.00", "4")], [], rows, Lob, "x", "X", 1, 2, round_sizes=True)
    assert book.levels(BID) == [("10.00", "1.0002"), ("8.00", "4")]
    assert book.levels(ASK) == []
    assert [(r.price, r.size, r.side) for r in rows] == [(8.0, 0.0, "buy"), (11.0, 0.0, "sell"), (10.0, 1.0002, "buy"),
                                                         (8.0, 4.0, "buy")]
    # an empty message empties the book
    rows.clear()
    assert book.replace_sides(BID, [], None, rows, Lob, "x", "X", 1, 2) & 1
    assert len(book) == 0 and [(r.price, r.size) for r in rows] == [(10.0, 0.0), (8.0, 0.0)]


@pytest.mark.parametrize("avro", [False, True])
def test_replace_sides_beyond_exact_floats(avro):
    """Prices and rounded sizes of 2**53 ticks or more: the rows' floats are float() of the texts."""
    rng = random.Random(5 + avro)
    for trial in range(300):
        pd, sd = 13, rng.choice([4, 12])
        a, b = L2Book(pd, sd), L2Book(pd, sd)
        held_b: list = []
        held_a: list = []
        for step in range(5):
            bids = [(f"{rng.uniform(500, 800):.{rng.randint(0, 13)}f}", repr(rng.uniform(0, 1e5)))
                    for _ in range(rng.randint(0, 20))] + held_b[:rng.randint(0, len(held_b))]
            asks = [(f"{rng.uniform(800, 900):.{rng.randint(0, 13)}f}", repr(rng.uniform(0, 1e5)))
                    for _ in range(rng.randint(0, 20))] + held_a[:rng.randint(0, len(held_a))]
            rng.shuffle(bids)
            ra = AvroRows() if avro else []
            rb = AvroRows() if avro else []
            want = _reference(a, bids, asks, ra)
            got = b.replace_sides(BID, bids, asks, rb, Lob, "x", "X-Y", 5, 6, round_sizes=True)
            assert got == want
            assert (ra.take() == rb.take()) if avro else ra == rb
            assert _book_state(a) == _book_state(b)
            held_b, held_a = a.levels(BID), a.levels(ASK)


_RAW_LEVELS = msgspec.json.Decoder(list[tuple[msgspec.Raw, msgspec.Raw]])


def _json_side(rng, levels) -> bytes:
    """Levels as a JSON array of numbers (the sizes' texts as JSON numbers where they are)."""
    sp = rng.choice(["", " "])
    return ("[" + f",{sp}".join(f"[{p},{sp}{s}]" for p, s in levels) + "]").encode()


def _json_number(text: str) -> bool:
    try:
        msgspec.json.decode(text.encode())
        return text[:1].isdigit() or text[:1] == "-"
    except msgspec.DecodeError:
        return False


@pytest.mark.parametrize("avro", [False, True])
def test_json_numbers_are_the_decoded_levels(avro):
    """check_json_numbers + replace_json_sides / apply_json_sides == the decoded levels' replace_sides
    (live) / fitted apply_sides (a load), where the text is read; nothing kept where it is not."""
    rng = random.Random(21 + avro)
    read = refused = 0
    for trial in range(800):
        pd, sd = rng.choice([(2, 4), (4, 9), (10, 9), (13, 12)])
        a, b = L2Book(pd, sd), L2Book(pd, sd)
        held_b: list = []
        held_a: list = []
        for step in range(5):
            lo = 500 if pd == 13 else 1
            bids = [(p, s) for p, s in _side(rng, min(pd, 6), lo, lo + 100, rng.randint(0, 25), held_b)
                    if _json_number(p) and _json_number(s)]
            asks = [(p, s) for p, s in _side(rng, min(pd, 6), lo + 90, lo + 200, rng.randint(0, 25), held_a)
                    if _json_number(p) and _json_number(s)]
            if rng.random() < 0.2:
                bids = [(f"{float(p):.5E}" if rng.random() < 0.5 else p, s) for p, s in bids]
            tb, ta = _json_side(rng, bids), _json_side(rng, asks)
            if rng.random() < 0.05:
                tb = b"null"
                bids = []
            raw_b, raw_a = _RAW_LEVELS.decode(tb) if tb != b"null" else [], _RAW_LEVELS.decode(ta)
            ra = AvroRows() if avro else []
            rb = AvroRows() if avro else []
            load = step == 0 or rng.random() < 0.1
            before = _book_state(b)
            first = msgspec.Raw(tb) if rng.random() < 0.5 else tb
            if not b.check_json_numbers(first, ta, True):
                refused += 1
                assert _book_state(b) == before
                with pytest.raises(ValueError):
                    b.replace_json_sides(BID, first, ta, rb, Lob, "x", "X-Y", 5, 6)
                a, b = L2Book(pd, sd), L2Book(pd, sd)
                held_b, held_a = [], []
                continue
            read += 1
            if load:
                a.clear()
                b.clear()  # (a snapshot: checked, the book cleared, applied)
                want = a.apply_sides(BID, [(p, _fit_size(s, sd)) for p, s in raw_b],
                                     [(p, _fit_size(s, sd)) for p, s in raw_a], ra, Lob, "x", "X-Y", 5, 6)
                got = b.replace_json_sides(BID, first, ta, rb, Lob, "x", "X-Y", 5, 6)  # (into the cleared book)
            else:
                want = a.replace_sides(BID, raw_b, raw_a, ra, Lob, "x", "X-Y", 5, 6, round_sizes=True)
                got = b.replace_json_sides(BID, first, ta, rb, Lob, "x", "X-Y", 5, 6)
            assert got == want, (trial, step)
            assert (ra.take() == rb.take()) if avro else ra == rb
            assert _book_state(a) == _book_state(b)
            b._validate()
            held_b, held_a = a.levels(BID), a.levels(ASK)
    assert read > 1000 and refused > 50


def test_json_numbers_shapes():
    book = L2Book(2, 4)
    for text in (b"", b"null", b" null ", b"[]", b" [ ] "):
        assert book.check_json_numbers(text, b"[[1.5,2]]")
    for text in (b"nul", b"[[1.5]]", b"[[1.5,2,3]]", b'[["1.5","2"]]', b"[[1.5,2],]", b"[[-1.5,2]]",
                 b"[[1.5,-2]]", b"[[0,2]]", b"[[1.555,2]]", b"[[1.5,2]] x", b"{}", b"[[1.5,null]]"):
        assert not book.check_json_numbers(text, b"[]"), text
    assert not book.check_json_numbers(b"[[1.5,2.00005]]", b"[]")
    assert book.check_json_numbers(b"[[1.5,2.00005]]", b"[]", True)
    rows: list = []
    with pytest.raises(ValueError):  # (not check_json_sides' texts: a level may have no item)
        book.apply_json_sides(BID, b"[[1.5,2.00005]]", b"[]", rows, Lob, "x", "X", 1, 2)
    assert book.check_json_numbers(b"[[1.5,2.00005]]", b"[]", True)
    assert book.replace_json_sides(BID, b"[[1.5,2.00005]]", b"[]", rows, Lob, "x", "X", 1, 2) == 1
    assert book.levels(BID) == [("1.5", "2.0000")]
    with pytest.raises(ValueError):  # (once)
        book.replace_json_sides(BID, b"[[1.5,2.00005]]", b"[]", rows, Lob, "x", "X", 1, 2)


def _json_number_text(rng: random.Random) -> str:
    """A JSON number without sign, of the forms exchanges print (and some they do not)."""
    kind = rng.random()
    if kind < 0.5:
        return _size_text(rng).lstrip("+-") or "0"
    x = rng.uniform(0, 10 ** rng.randint(-12, 12))
    if kind < 0.7:
        return repr(x)
    if kind < 0.85:
        return f"{x:.{rng.randint(0, 18)}E}".replace("E", rng.choice(["E", "e", "E+", "e-"]) if rng.random() < 0.2
                                                      else "E")
    return f"{rng.randint(0, 10 ** rng.randint(0, 20))}" + (f".{rng.randint(0, 10 ** rng.randint(1, 20))}"
                                                            if rng.random() < 0.7 else "")


@pytest.mark.parametrize("as_price", [False, True])
def test_json_number_read_as_the_book_reads_text(as_price):
    """One number read from JSON text (check_json_numbers: its one-pass reader where it applies)
    is the number the book reads from the same text (apply_sides / replace_sides' rounding):
    the level held (ticks and decimals as sent), its row's floats; refused alike."""
    rng = random.Random(31 + as_price)
    seen = {True: 0, False: 0}
    for _ in range(30_000):
        pd, sd = rng.randint(0, 18), rng.randint(0, 18)
        text = _json_number_text(rng)
        try:
            msgspec.json.decode(text.encode())
        except msgspec.DecodeError:
            continue
        level = (text, "1") if as_price else ("1", text)
        json_level = f"[[{level[0]},{level[1]}]]".encode()
        for round_sizes in (False, True):
            a, b = L2Book(pd, sd), L2Book(pd, sd)
            ra: list = []
            rb: list = []
            try:
                want = a.replace_sides(BID, [(msgspec.Raw(level[0].encode()), msgspec.Raw(level[1].encode()))],
                                       None, ra, Lob, "x", "X", 1, 2, round_sizes=round_sizes)
            except (ValueError, OverflowError):
                want = None
            ok = b.check_json_numbers(json_level, b"", round_sizes)
            seen[ok] += 1
            if not ok:
                assert want is None, (text, pd, sd, round_sizes)
                continue
            got = b.replace_json_sides(BID, json_level, b"", rb, Lob, "x", "X", 1, 2)
            assert (got, rb, b.levels(BID)) == (want, ra, a.levels(BID)), (text, pd, sd, round_sizes)
    assert seen[True] > 5000 and seen[False] > 5000


@pytest.mark.parametrize("avro", [False, True])
def test_json_numbers_of_texts_changing_a_little(avro):
    """A book reading a stream of whole sides, each the last one with a few levels inserted,
    removed or resized (check_json_numbers takes a level written as last time as read then): the
    same as the decoded levels' replace_sides on a twin book, also across refused texts, texts
    read without rounding, spacing that changes, and the sides swapped."""
    rng = random.Random(41 + avro)
    for trial in range(150):
        pd, sd = rng.choice([(2, 4), (4, 9), (10, 9), (12, 7)])
        a, b = L2Book(pd, sd), L2Book(pd, sd)
        sides = [[], []]
        for p in range(rng.randint(0, 40)):
            sides[p % 2].append([f"{rng.uniform(1, 100):.{min(pd, 3)}f}", _json_number_text(rng)])
        sp = ""
        for step in range(25):
            for side in sides:
                for _ in range(rng.randint(0, 4)):
                    op = rng.random()
                    if op < 0.3 or not side:
                        side.insert(rng.randint(0, len(side)), [f"{rng.uniform(1, 100):.{min(pd, 3)}f}",
                                                                _json_number_text(rng)])
                    elif op < 0.6:
                        side.pop(rng.randrange(len(side)))
                    else:
                        side[rng.randrange(len(side))][1] = _json_number_text(rng)
            if rng.random() < 0.1:
                sp = rng.choice(["", " ", "  "])
            texts = [("[" + "," .join(f"[{p},{sp}{s}]" for p, s in side) + "]").encode() for side in sides]
            round_sizes = rng.random() < 0.9
            first, second = (0, 1) if rng.random() < 0.9 else (1, 0)
            raws = [msgspec.Raw(t) for t in texts]
            try:
                decoded = [_RAW_LEVELS.decode(t) for t in texts]
            except msgspec.DecodeError:
                continue
            ra = AvroRows() if avro else []
            rb = AvroRows() if avro else []
            try:
                want = a.replace_sides(BID, decoded[first], decoded[second], ra, Lob, "x", "X-Y", 5, 6,
                                       round_sizes=round_sizes)
            except (ValueError, OverflowError):
                want = None
            if not b.check_json_numbers(raws[first], raws[second], round_sizes):
                assert want is None
                continue
            got = b.replace_json_sides(BID, raws[first], raws[second], rb, Lob, "x", "X-Y", 5, 6)
            assert got == want, (trial, step)
            assert (ra.take() == rb.take()) if avro else ra == rb
            assert _book_state(a) == _book_state(b)
