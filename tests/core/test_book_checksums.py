"""Exchange book checksums computed by the compiled books, against the exchanges' own numbers.

* Kraken websocket v1: EVERY update of the real ``book-1000`` capture carries a CRC32 ("c");
  the book must reproduce all of them (and the example of Kraken's documentation).
* OKX: every ``books`` message of the real capture carries a signed CRC32 ("checksum"); plus
  the example of OKX's documentation.
* Bitfinex: the capture was recorded without checksums (conf flags 65536 = sequence numbers
  only; checksums need 131072), so the P0 checksum is checked against the CRC of the string
  built, per Bitfinex's documented format, from the numbers exactly as they came off the wire
  (JSON number text, including exponent forms such as 1.1e-7): the book must rebuild that text
  from its integer ticks. R0 (raw, L3): a worked example of the documented format.
"""
from __future__ import annotations

import json
import zlib
from decimal import Decimal

from atomfast._book import ASK, BID, L2Book, L3Book

from atomfast.testing import fixture_path


def signed32(crc: int) -> int:
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def _received(path):
    """JSON payloads received on a cryptofeed websocket capture (`<ts>: <payload>` lines)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("wss://"):
                continue  # connect / sent-by-client lines
            _ts, _, payload = line.partition(": ")
            if payload.strip():
                yield payload


# ---------------------------------------------------------------------------------------------
# Kraken (https://docs.kraken.com/api/docs/guides/spot-ws-book-v1)


def test_kraken_doc_example():
    # The book of Kraken's v1 checksum guide, whose checksum is 974947235.
    asks = ["0.05005", "0.05010", "0.05015", "0.05020", "0.05025",
            "0.05030", "0.05035", "0.05040", "0.05045", "0.05050"]
    bids = ["0.05000", "0.04995", "0.04990", "0.04980", "0.04975",
            "0.04970", "0.04965", "0.04960", "0.04955", "0.04950"]
    book = L2Book(price_decimals=5, size_decimals=8)
    for p in asks:
        book.apply(ASK, p, "0.00000500")
    for p in bids:
        book.apply(BID, p, "0.00000500")
    book.apply(ASK, "0.06000", "1.00000000")  # an 11th level: outside the checksum
    assert book.checksum_kraken() == 974947235
    assert book.checksum_kraken(book_scale=True) == 974947235  # strings at the book's scale


def _replay_kraken(as_numbers: bool):
    """Replay KRAKEN.ws.50.0; yields (pair, computed, expected) for every update with "c".

    as_numbers=False: v1 strings as sent, checksum with the decimals as sent.
    as_numbers=True: v2-style JSON numbers (no trailing zeros: "0.0000229"), checksum at the
    book's scale. Either way the book's scale is the precision the pair's v1 strings carry."""
    path = fixture_path("cryptofeed/KRAKEN.ws.50.0")
    books: dict[int, L2Book] = {}

    def value(text: str) -> str:
        if not as_numbers:
            return text
        return format(Decimal(text).normalize(), "f")

    for payload in _received(path):
        if not payload.startswith("["):
            continue  # events, heartbeats
        msg = json.loads(payload)
        chan, parts, pair = msg[0], msg[1:-2], msg[-1]
        if "as" in parts[0] or "bs" in parts[0]:
            snap = parts[0]
            first = (snap.get("as") or snap["bs"])[0]
            # The pair's precision, as its v1 strings carry it (5 for XBT/CHF ... 9 for ADA/XBT).
            # Not one big scale for all: XBT/CHF has an ask at 9999999997.00000, which does
            # not fit in int64 ticks at 10 decimals.
            pdec = len(first[0].partition(".")[2])
            book = books[chan] = L2Book(price_decimals=pdec, size_decimals=8)
            for p, v, _ts in snap.get("as", []):
                book.apply(ASK, value(p), value(v))
            for p, v, _ts in snap.get("bs", []):
                book.apply(BID, value(p), value(v))
            continue
        book = books[chan]
        expected = None
        for part in parts:
            for p, v, *_rest in part.get("a", []):  # [price, volume, ts] or [..., "r"]
                book.apply(ASK, value(p), value(v))
            for p, v, *_rest in part.get("b", []):
                book.apply(BID, value(p), value(v))
            expected = part.get("c", expected)
        # "truncate your book to the subscribed depth after each update"
        book.truncate(1000)
        if expected is not None:
            yield pair, book.checksum_kraken(book_scale=as_numbers), int(expected)


def test_kraken_v1_capture_every_update_checksum():
    results = list(_replay_kraken(as_numbers=False))
    bad = [(pair, i) for i, (pair, got, want) in enumerate(results) if got != want]
    assert bad == []
    assert len(results) == 2437  # every update of the capture carries "c"
    raw = fixture_path("cryptofeed/KRAKEN.ws.50.0").read_text(encoding="utf-8")
    assert raw.count('"c":"') == 2437
    assert {pair for pair, _, _ in results} == {"WAVES/EUR", "KSM/XBT", "ETH/CHF", "OMG/USD", "XBT/CHF", "ADA/XBT"}


def test_kraken_v2_style_numbers_with_book_scale():
    results = list(_replay_kraken(as_numbers=True))
    assert len(results) == 2437
    assert sum(got == want for _, got, want in results) == 2437


# ---------------------------------------------------------------------------------------------
# OKX (https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel)


def test_okx_doc_example():
    # OKX's checksum guide: bids [3366.1, 7]; asks [3366.8, 9], [3368, 8], [3372, 8]
    # -> "3366.1:7:3366.8:9:3368:8:3372:8" -> 831078360
    book = L2Book(price_decimals=1, size_decimals=0)
    book.apply(BID, "3366.1", "7")
    for p, s in (("3366.8", "9"), ("3368", "8"), ("3372", "8")):
        book.apply(ASK, p, s)
    assert book.checksum_okx() == 831078360


def test_okx_capture_every_message_checksum():
    path = fixture_path("cryptofeed/OKX.ws.1.0")
    books: dict[str, L2Book] = {}
    checked = snapshots = 0
    for payload in _received(path):
        if '"channel":"books"' not in payload or '"action"' not in payload:
            continue
        msg = json.loads(payload)
        inst, data = msg["arg"]["instId"], msg["data"][0]
        if msg["action"] == "snapshot":
            books[inst] = L2Book(price_decimals=8, size_decimals=8)
            snapshots += 1
        book = books[inst]
        for p, s, _liq, _n in data["asks"]:
            book.apply(ASK, p, s)
        for p, s, _liq, _n in data["bids"]:
            book.apply(BID, p, s)
        assert book.checksum_okx() == data["checksum"], (inst, data["ts"])
        checked += 1
    assert (snapshots, checked) == (3, 290)
    assert len(books["BTC-USDT"]) == 800


# ---------------------------------------------------------------------------------------------
# Bitfinex (https://docs.bitfinex.com/docs/ws-websocket-checksum)


def test_bitfinex_p0_known_answer():
    # Bitfinex sends JSON numbers; prices below 1e-6 print in exponent form (JavaScript), which
    # is what the server's checksum uses (bitfinexcom/bfx-api-node-models issue #70).
    book = L2Book(price_decimals=10, size_decimals=8)
    book.apply(BID, "5.6e-7", "60712.4250231")
    book.apply(BID, "5.5e-7", "1047414.30449527")
    book.apply(BID, "5e-7", "4000")
    book.apply(ASK, "5.7e-7", "123.5")  # wire amount -123.5: asks are given positive here
    book.apply(ASK, "0.000001", "1e-8")
    book.apply(ASK, "0.0000012", "250.00")
    text = ("5.6e-7:60712.4250231:5.7e-7:-123.5:5.5e-7:1047414.30449527:0.000001:-1e-8"
            ":5e-7:4000:0.0000012:-250")
    assert book.checksum_bitfinex() == signed32(zlib.crc32(text.encode())) == 1291502833


def test_bitfinex_p0_top_25_and_one_sided():
    book = L2Book(price_decimals=1, size_decimals=8)
    for i in range(30):
        book.apply(BID, f"{30000 - i}.5", f"1.{i:02d}1")
    for i in range(3):
        book.apply(ASK, f"{30001 + i}.0", "1.2500")
    bids = [f"{30000 - i}.5:1.{i:02d}1" for i in range(25)]  # the 5 worst bids are left out
    asks = [f"{30001 + i}:-1.25" for i in range(3)]
    parts = [bids[0], asks[0], bids[1], asks[1], bids[2], asks[2]] + bids[3:]
    assert book.checksum_bitfinex() == signed32(zlib.crc32(":".join(parts).encode()))
    assert book.checksum_bitfinex() == -1695018525


def test_bitfinex_p0_capture_text_rebuilt_exactly():
    """Replay every P0 book of the capture; after each message the checksum over the book must
    equal the CRC of the documented string made of the wire's own number texts."""
    path = fixture_path("cryptofeed/BITFINEX.ws.11.0")
    channels: dict[int, str] = {}
    books: dict[int, L2Book] = {}
    wire: dict[int, dict[int, dict[Decimal, tuple[str, str]]]] = {}
    checked = exponent_texts = 0
    raw = path.read_text(encoding="utf-8")
    assert '"cs"' not in raw  # recorded without checksums
    for payload in _received(path):
        msg = json.loads(payload, parse_float=str, parse_int=str)  # keep the number texts
        if isinstance(msg, dict):
            if msg.get("event") == "subscribed" and msg["channel"] == "book":
                assert msg["prec"] == "P0"
                channels[int(msg["chanId"])] = msg["symbol"]
            continue
        chan = int(msg[0])
        if chan not in channels or not isinstance(msg[1], list):
            continue  # other channels, heartbeats
        if isinstance(msg[1][0], list):  # snapshot
            rows = msg[1]
            books[chan] = L2Book(price_decimals=8, size_decimals=8)
            wire[chan] = {BID: {}, ASK: {}}
        else:
            rows = [msg[1]]
        book, model = books[chan], wire[chan]
        for price, count, amount in rows:
            exponent_texts += ("e" in price) + ("e" in amount)
            side = ASK if amount.startswith("-") else BID
            if int(count) == 0:  # count 0: delete (amount 1 = bid, -1 = ask)
                book.apply(side, price, "0")
                model[side].pop(Decimal(price), None)
            else:
                book.apply(side, price, amount.lstrip("-"))
                model[side][Decimal(price)] = (price, amount)
        bids = [model[BID][k] for k in sorted(model[BID], reverse=True)[:25]]
        asks = [model[ASK][k] for k in sorted(model[ASK])[:25]]
        parts = []
        for i in range(max(len(bids), len(asks))):
            parts += [f"{p}:{a}" for p, a in (bids[i:i + 1] + asks[i:i + 1])]
        assert book.checksum_bitfinex() == signed32(zlib.crc32(":".join(parts).encode())), (
            channels[chan], payload[:200])
        checked += 1
    assert checked == 7 + 1593  # 7 snapshots, 1593 updates
    assert exponent_texts == 21  # numbers written like 1.1e-7 on the wire


def test_bitfinex_r0_known_answer():
    # Raw book: "bids[0].id:bids[0].amount:asks[0].id:asks[0].amount:...", ask amounts negative.
    book = L3Book(price_decimals=1, size_decimals=8)
    book.add(101, BID, "30000", "0.5")
    book.add(102, BID, "30000", "1.25")  # same price: behind 101 (arrival order)
    book.add(99, BID, "29999.5", "2")
    book.add(200, ASK, "30001", "0.1")
    book.add(201, ASK, "30002", "0.00000003")
    text = "101:0.5:200:-0.1:102:1.25:201:-3e-8:99:2"
    assert book.checksum_bitfinex() == signed32(zlib.crc32(text.encode())) == -894251485
    book.update(101, "0.4")
    book.remove(200)
    text = "101:0.4:201:-3e-8:102:1.25:99:2"
    assert book.checksum_bitfinex() == signed32(zlib.crc32(text.encode()))
