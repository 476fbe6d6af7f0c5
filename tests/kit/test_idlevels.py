"""The compiled common case of a book whose levels are named by id (``atomfast.kit.idlevels``,
BitMEX's ``orderBookL2``): it changes nothing that the venue's own step-by-step path would have
done. Every frame is fed to two BitMEX schemes, one with the compiled calls (``IdRows.message``,
``IdRows.partial``) and one with them refused (the handler's Python path, the reference), and
what each frame publishes, the counters, the errors, the id maps and the books must be equal:
on the recorded capture, and on random messages made to hit every condition of the common case
(ids held or not, on the other side, prices as held, equal in value only, or not; sizes and
prices with signs, exponents, zeros; times of every form; mixed sides and times; ids twice;
rows of another market; more rows than the stack buffer)."""
from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest

from atomfast.book import ASK, BID
from atomfast.events import Lob, Spread
from atomfast.exchanges.bitmex import BitmexScheme
from atomfast.kit.idlevels import DELETE, INSERT, NOT_APPLIED, UPDATE, IdRows, iso_ms
from atomfast.testing import Harness, fixture_path, recv_frames

from ..venues.test_bitmex import CAPTURE, listing


def _pair() -> tuple[Harness, Harness]:
    inst = listing()
    fast, ref = Harness(BitmexScheme, inst), Harness(BitmexScheme, inst)
    ref.scheme._id_message = lambda *a: NOT_APPLIED
    ref.scheme._id_partial = lambda *a: None
    return fast, ref


def _state(h: Harness):
    books = {n: (b.levels(BID), b.levels(ASK)) for n, b in h.scheme.books.items()}
    return (books, h.scheme.ids, sorted(h.scheme.unsynced), h.metrics.gaps, h.metrics.resyncs,
            h.metrics.errors.total, h.reports)


def _same(fast: Harness, ref: Harness, data, recv_ns: int) -> list:
    got, want = fast.feed(data, recv_ns), ref.feed(data, recv_ns)
    assert got == want, data
    assert fast.conn.sent == ref.conn.sent
    return got


def test_capture_as_the_python_path():
    fast, ref = _pair()
    for ts, data in recv_frames(fixture_path(CAPTURE)):
        _same(fast, ref, data, ts)
    assert _state(fast) == _state(ref)
    assert fast.metrics.gaps == 0 and len(fast.scheme.ids["XBTUSD"]) == 9352


_GOOD_TIMES = ["2023-05-19T08:51:43.911Z", "2023-05-19T08:51:43.912Z", ""]
_OTHER_TIMES = ["2023-05-19T08:51:43Z", "2023-05-19T08:51:43.911123Z", "2023-05-19T08:51:43.911+00:00",
                "2023-02-30T08:51:43.911Z", "2023-05-19t08:51:43.911Z", "2016-12-31T23:59:60.000Z", "garbage",
                "1969-12-31T23:59:59.999Z"]
_OTHER_SIZES = ["0", "+7", "-5", "1e3", "00012", "0.00001", '"12"', "1.50"]
#: what may be wrong with one row of a message
_DEFECTS = ["time", "size", "price", "side", "symbol", "twice", "unknown id", "held id", "other side", "value price",
            "other price", "no price"]


def _row(rnd: random.Random, native: str, rid: int, side: str, price: str | None, size: str | None,
         ts: str | None) -> str:
    parts = [f'"symbol":"{native}"', f'"id":{rid}', f'"side":"{side}"']
    if size is not None:
        parts.append(f'"size":{size}')
    if price is not None:
        parts.append(f'"price":{price}')
    if ts is not None:
        parts.append(f'"timestamp":"{ts}"')
    rnd.shuffle(parts)
    return "{" + ",".join(parts) + "}"


def _message(rnd: random.Random, native: str, held: dict[int, tuple[str, int]]) -> str:
    """A book message of ``native`` against what it holds: clean (most), or with one defect."""
    action = rnd.choice(["insert", "update", "delete"])
    if action != "insert" and not held:
        action = "insert"
    n = rnd.choice([1, 1, 1, 1, 2, 2, 3, 5, 33, 40])
    if action != "insert":
        n = min(n, len(held))
    side0 = rnd.choice(["Buy", "Sell"])
    ts0 = rnd.choice(_GOOD_TIMES)
    mixed = rnd.random() < 0.2  # rows of both sides / several times
    defect = rnd.choice(_DEFECTS) if rnd.random() < 0.35 else None
    bad_row = rnd.randrange(n)
    base = 26000 if native == "XBTUSD" else 1800
    picked = rnd.sample(list(held), n) if action != "insert" else []
    rows = []
    for k in range(n):
        side = rnd.choice(["Buy", "Sell"]) if mixed else side0
        ts = rnd.choice(_GOOD_TIMES) if mixed else ts0
        if action == "insert":
            rid = rnd.randrange(8798400000, 8798900000)
            price = base - rnd.randrange(1, 900) if side == "Buy" else base + rnd.randrange(1, 900)
            size = str(rnd.randrange(1, 5000))
        else:
            rid = picked[k]
            side, price = held[rid]
            size = str(rnd.randrange(0 if action == "update" else 1, 5000)) if action == "update" else None
        ptext = str(price) if action == "insert" or rnd.random() < 0.6 else None
        sym = native
        if k == bad_row and defect:
            if defect == "time":
                ts = rnd.choice(_OTHER_TIMES)
            elif defect == "size":
                size = rnd.choice(_OTHER_SIZES)
            elif defect == "price":
                ptext = rnd.choice(["0", "-1", "1e3", '"1"', f"{price}.0", "0.0"])
            elif defect == "side":
                side = rnd.choice(["Bid", "buy", ""])
            elif defect == "symbol":
                sym = rnd.choice(["ETHUSD" if native == "XBTUSD" else "XBTUSD", "NOPE", ""])
            elif defect == "unknown id":
                rid = rnd.randrange(8799000000, 8799100000)
            elif defect == "held id" and held:
                rid = rnd.choice(list(held))
            elif defect == "other side":
                side = "Sell" if side == "Buy" else "Buy"
            elif defect == "value price":
                ptext = f"{price}.0"
            elif defect == "other price":
                ptext = str(price + 1)
            elif defect == "no price":
                ptext = None
        rows.append(_row(rnd, sym, rid, side, ptext, size, ts))
        if k == bad_row and defect == "twice":
            rows.append(rows[-1])
    return '{"table":"orderBookL2","action":"' + action + '","data":[' + ",".join(rows) + "]}"


@pytest.mark.parametrize("seed", range(6))
def test_random_messages_as_the_python_path(seed):
    rnd = random.Random(seed)
    fast, ref = _pair()
    natives = ["XBTUSD", "ETHUSD"]
    recv = 1684486304000000000

    def partial(native: str) -> str:
        rows = []
        base = 26000 if native == "XBTUSD" else 1800
        ts = rnd.choice(["", "2023-05-19T08:51:40.000Z", None])
        for k in range(rnd.randrange(0, 300)):
            side = "Sell" if k % 2 else "Buy"
            price = base + (k + 1 if side == "Sell" else -k)
            row_ts = ts if rnd.random() < 0.995 else rnd.choice(_OTHER_TIMES + _GOOD_TIMES)
            rows.append(_row(rnd, native, 8798300000 + k, side, str(price), str(rnd.randrange(1, 999)), row_ts))
        rows.sort(key=lambda r: '"side":"Sell"' in r)  # a partial is sorted by side
        return ('{"table":"orderBookL2","action":"partial","keys":["symbol","id","side"],"filter":{"symbol":"'
                + native + '"},"data":[' + ",".join(rows) + "]}")

    for native in natives:
        _same(fast, ref, partial(native), recv)
    for step in range(600):
        recv += 1_000_000
        waiting = [n for n in natives if n in ref.scheme.unsynced]
        if waiting and rnd.random() < 0.5:
            _same(fast, ref, partial(rnd.choice(waiting)), recv)
            continue
        native = rnd.choice(natives)
        held = {rid: ("Buy" if s == BID else "Sell", int(Decimal(p.decode())))
                for rid, (s, p) in ref.scheme.ids.get(native, {}).items()}
        _same(fast, ref, _message(rnd, native, held), recv)
    assert _state(fast) == _state(ref)


def test_apply_and_partial_directly():
    from atomfast.book import L2Book
    from atomfast.exchanges.bitmex import messages as m

    rows_of = {"lob": [], "spread": []}.__getitem__
    ids_rows = IdRows("Buy", "Sell", Lob, Spread, "bitmex", BID, ASK)
    book, ids = L2Book(3, 4), {}
    dec = m.l2_decoder.decode
    ins = dec(json.dumps([{"symbol": "XBTUSD", "id": 1, "side": "Buy", "size": 5, "price": 100.5,
                           "timestamp": "2023-05-19T08:51:43.911Z"}]).encode())
    assert ids_rows.apply(book, ids, ins, INSERT, rows_of, "XBTUSD", "BTC-USD-PERP", 10**18) == 1
    assert ids == {1: (BID, b"100.5")} and book.levels(BID) == [("100.5", "5")]
    assert rows_of("lob") == [Lob("bitmex", "BTC-USD-PERP", 100.5, 5.0, "buy", 1684486303911, 10**15)]
    assert len(rows_of("spread")) == 1
    # the insert again: the id is held, nothing changed
    assert ids_rows.apply(book, ids, ins, INSERT, rows_of, "XBTUSD", "BTC-USD-PERP", 10**18) == NOT_APPLIED
    assert len(rows_of("lob")) == 1
    # another market's name, another side, a price not as held: nothing changed
    upd = [{"symbol": "XBTUSD", "id": 1, "side": "Buy", "size": 7}]
    for bad in ('"symbol":"ETHUSD","id":1,"side":"Buy","size":7', '"symbol":"XBTUSD","id":1,"side":"Sell","size":7',
                '"symbol":"XBTUSD","id":1,"side":"Buy","size":7,"price":100.50',  # (equal in value only)
                '"symbol":"XBTUSD","id":1,"side":"Buy","size":-7', '"symbol":"XBTUSD","id":1,"side":"buy","size":7',
                '"symbol":"XBTUSD","id":1,"side":"Buy","size":7,"timestamp":"2023-05-19T08:51:43Z"'):
        bad = dec(("[{" + bad + "}]").encode())
        assert ids_rows.apply(book, ids, bad, UPDATE, rows_of, "XBTUSD", "BTC-USD-PERP", 10**18) == NOT_APPLIED
    assert book.levels(BID) == [("100.5", "5")] and len(rows_of("lob")) == 1
    assert ids_rows.apply(book, ids, dec(json.dumps(upd).encode()), UPDATE, rows_of, "XBTUSD", "BTC-USD-PERP",
                          10**18) == 1
    assert book.levels(BID) == [("100.5", "7")] and rows_of("lob")[-1].event_timestamp == 10**12
    assert ids_rows.apply(book, ids, dec(b'[{"symbol":"XBTUSD","id":1,"side":"Buy","price":100.5}]'), DELETE,
                          rows_of, "XBTUSD", "BTC-USD-PERP", 10**18) == 1
    assert ids == {} and book.levels(BID) == []
    # a partial: runs of one side and one time, the ids
    part = dec(b'[{"symbol":"X","id":3,"side":"Sell","size":1,"price":2},'
               b'{"symbol":"X","id":4,"side":"Sell","size":1,"price":3,"timestamp":"2023-05-19T08:51:43.911Z"},'
               b'{"symbol":"X","id":5,"side":"Buy","size":1,"price":1,"timestamp":"2023-05-19T08:51:43.911Z"}]')
    runs, got = ids_rows.partial(part, 77)
    assert [(s, [r.id for r in rs], ms) for s, rs, ms in runs] == [
        (ASK, [3], 77), (ASK, [4], 1684486303911), (BID, [5], 1684486303911)]
    assert got == {3: (ASK, b"2"), 4: (ASK, b"3"), 5: (BID, b"1")}
    assert ids_rows.partial(dec(b'[{"symbol":"X","id":3,"side":"Bid","size":1,"price":2}]'), 0) is None
    assert ids_rows.market(part) == "X" and ids_rows.market([]) is None
    assert ids_rows.market(part + dec(b'[{"symbol":"Y","id":3,"side":"Buy"}]')) is None
    assert ids_rows.partial(dec(b'[{"symbol":"X","id":3,"side":"Buy","timestamp":"2023-05-19T08:51:43Z"}]'),
                            0) is None


def test_iso_ms():
    assert iso_ms("2021-07-22T22:36:09.757Z") == 1626993369757
    assert iso_ms("1970-01-01T00:00:00.000Z") == 0 and iso_ms("2016-12-31T23:59:60.000Z") == 1483228800000
    for other in ("2021-07-22T22:36:09Z", "2021-07-22T22:36:09.7570Z", "2021-07-22 22:36:09.757Z",
                  "2021-02-29T00:00:00.000Z", "1969-12-31T23:59:59.999Z", "5138-11-16T09:46:40.000Z", "", None,
                  b"2021-07-22T22:36:09.757Z", "2021-07-22T22:36:09.757+00:00"):
        assert iso_ms(other) == -1
