"""Kraken spot websocket v2 ``level3`` test data: the documented example and what is derived
from it, with an independent reference model of the level-3 book and its checksum.

Sources:
- ``tests/data/kraken_l3/l3_checksum_example.json``: the snapshot of Kraken's "Spot Websockets
  (v2) Level3 Checksum" guide (https://docs.kraken.com/api/docs/guides/spot-ws-l3-v2, "Checksum
  Steps with Example"), verbatim: BTC/USD, 21 bids and 14 asks on 10 levels a side, checksum
  1063832831. The guide writes prices and quantities as strings ("using json string decoder");
  the wire carries JSON numbers (https://docs.kraken.com/api/docs/websocket-v2/level3), so the
  stream renders them as numbers with the same digits.
- The pair's precision (price 1 decimal, quantity 8) is the ``XXBTZUSD`` entry of the recorded
  ``/0/public/AssetPairs`` listing (``../shared/fixtures/cryptofeed/KRAKEN.0``, 2021-04-17).
- The update messages are DERIVED (no documented level3 update carries a checksum): each
  deletes, modifies or adds orders of the documented book (new order ids are ours), and its
  checksum is the one ``RefL3`` computes for the book after it: Kraken's documented algorithm
  on plain Python lists and Decimals, independent of the compiled book.
"""
from __future__ import annotations

import json
import zlib
from decimal import Decimal
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "kraken_l3"
EXAMPLE = DATA / "l3_checksum_example.json"
CAPTURE = DATA / "KRAKEN_L3.ws.1.0"
LISTING = DATA / "KRAKEN_L3.0"
PRICE_DECIMALS, SIZE_DECIMALS = 1, 8
DOC_CHECKSUM = 1063832831
ASSET_PAIRS_URL = "https://api.kraken.com/0/public/AssetPairs"
#: the recorded listing's BTC/USD entry (``KRAKEN.0``), the fields the scheme reads and names
XXBTZUSD = {"altname": "XBTUSD", "wsname": "XBT/USD", "base": "XXBT", "quote": "ZUSD", "pair_decimals": 1,
            "lot_decimals": 8, "ordermin": "0.0002"}
L3_URL = "wss://ws-l3.kraken.com/v2"


def documented_snapshot() -> dict:
    """The guide's example as it is written (strings)."""
    return json.loads(EXAMPLE.read_text())


def numbers(msg: dict) -> bytes:
    """A level3 message with its prices and quantities as JSON numbers (the same digits)."""
    text = json.dumps(msg, separators=(",", ":"))
    for d in msg["data"]:
        for o in d["bids"] + d["asks"]:
            for key in ("limit_price", "order_qty"):
                text = text.replace(f'"{key}":"{o[key]}"', f'"{key}":{o[key]}')
    return text.encode()


class RefL3:
    """An independent level-3 book: per side a list of orders [id, price text, qty text] in
    arrival order; levels are the distinct Decimal prices."""

    def __init__(self, depth: int = 10) -> None:
        self.depth = depth
        self.sides: dict[str, list[list[str]]] = {"bids": [], "asks": []}

    def prices(self, side: str) -> list[Decimal]:
        distinct = {Decimal(o[1]) for o in self.sides[side]}
        return sorted(distinct, reverse=side == "bids")

    def level(self, side: str, price: Decimal) -> list[list[str]]:
        return [o for o in self.sides[side] if Decimal(o[1]) == price]

    def find(self, oid: str):
        for side, orders in self.sides.items():
            for o in orders:
                if o[0] == oid:
                    return side, o
        return None, None

    def apply(self, side: str, o: dict) -> None:
        orders = self.sides[side]
        event, oid, price, qty = o.get("event", "add"), o["order_id"], o["limit_price"], o["order_qty"]
        _, held = self.find(oid)
        if event == "add":
            if held is not None:
                orders.remove(held)
            orders.append([oid, price, qty])
        elif event == "delete":
            if held is not None:
                orders.remove(held)
        elif Decimal(price) == Decimal(held[1]) and Decimal(qty) <= Decimal(held[2]):
            held[2] = qty  # keeps its place
        else:
            orders.remove(held)
            if Decimal(qty) > 0:
                orders.append([oid, price, qty])

    def truncate(self) -> list[tuple[str, list[str]]]:
        """Cut each side to ``depth`` levels; the orders dropped (side, order), best first."""
        dropped = []
        for side in ("bids", "asks"):
            keep = set(self.prices(side)[:self.depth])
            for price in self.prices(side)[self.depth:]:
                dropped.extend((side, o) for o in self.level(side, price))
            self.sides[side] = [o for o in self.sides[side] if Decimal(o[1]) in keep]
        return dropped

    def load(self, msg: dict) -> None:
        self.sides = {"bids": [], "asks": []}
        for side in ("bids", "asks"):
            for o in msg["data"][0][side]:
                self.apply(side, o)

    def checksum(self) -> int:
        def text(value: str, decimals: int) -> str:
            return f"{Decimal(value):.{decimals}f}".replace(".", "").lstrip("0")

        out = []
        for side in ("asks", "bids"):
            for price in self.prices(side)[:10]:
                for o in self.level(side, price):
                    out.append(text(o[1], PRICE_DECIMALS) + text(o[2], SIZE_DECIMALS))
        return zlib.crc32("".join(out).encode())

    def orders(self, side: str) -> list[tuple[str, Decimal, Decimal]]:
        """(id, price, qty), best level first, queue order within a level."""
        return [(o[0], Decimal(o[1]), Decimal(o[2])) for p in self.prices(side) for o in self.level(side, p)]

    def snapshot(self, ts: str) -> dict:
        """What Kraken would send as a fresh snapshot of this book."""
        def rows(side):
            return [{"order_id": o[0], "limit_price": o[1], "order_qty": o[2], "timestamp": ts}
                    for p in self.prices(side) for o in self.level(side, p)]

        return {"channel": "level3", "type": "snapshot",
                "data": [{"symbol": "BTC/USD", "checksum": self.checksum(), "bids": rows("bids"), "asks": rows("asks")}]}


def _order(event: str, oid: str, price: str, qty: str, ts: str) -> dict:
    return {"event": event, "order_id": oid, "limit_price": price, "order_qty": qty, "timestamp": ts}


#: the derived updates, (bids, asks) of (event, order_id, limit_price, order_qty)
UPDATES = [
    # 1: the first bid at the best level leaves (a fill or a cancel)
    ([("delete", "OTCFZG-YOE2Q-LQKNM3", "44939.4", "0.88968699")], []),
    # 2: the first ask at the best level partly filled: it keeps its place
    ([], [("modify", "OFVLAA-HRSSP-BK75KB", "44939.5", "4.00000000")]),
    # 3: a new bid at the best level (the back of its queue)
    ([("add", "OQ3ADD-AAAAA-BBBBB1", "44939.4", "0.50000000")], []),
    # 4: a new best ask level: 11 ask levels, the 11th (44979.2) leaves the depth-10 book
    ([], [("add", "OQ4ADD-AAAAA-BBBBB2", "44939.0", "0.20000000")]),
    # 5: a bid moves up to a new best level (price amended: to the back of its new level)
    ([("modify", "OSMYPE-S5VOC-YSS3WM", "44939.8", "1.28140860")], []),
    # 5 left 11 bid levels: the 11th (44901.9) left the book. 6: the only bid at 44937.1 leaves;
    # Kraken publishes the orders of the next level (44901.9, back in scope) to keep 10 levels
    ([("delete", "OJPMIN-NXZL5-SOWP6V", "44937.1", "0.03346877"),
      ("add", "O73C6Y-VZXYA-H4LDFY", "44901.9", "0.00088982")], []),
]


def update_messages() -> tuple[list[dict], RefL3]:
    """The derived updates with the reference's checksums, and the reference after them."""
    ref = RefL3()
    ref.load(documented_snapshot())
    out = []
    for i, (bids, asks) in enumerate(UPDATES, 1):
        ts = f"2024-01-08T12:26:4{5 + i // 4}.{i:06d}000Z"
        msg = {"channel": "level3", "type": "update", "data": [{
            "symbol": "BTC/USD", "checksum": 0, "timestamp": ts,
            "bids": [_order(*o, ts) for o in bids], "asks": [_order(*o, ts) for o in asks]}]}
        for side, orders in (("bids", bids), ("asks", asks)):
            for o in orders:
                ref.apply(side, _order(*o, ts))
        ref.truncate()
        msg["data"][0]["checksum"] = ref.checksum()
        out.append(msg)
    return out, ref


SUBSCRIBE = ('{"method":"subscribe","params":{"channel":"level3","symbol":["BTC/USD"],"depth":10,'
             '"snapshot":true,"token":"***"}}')
ACK = ('{"method":"subscribe","result":{"channel":"level3","symbol":"BTC/USD","depth":10,"snapshot":true},'
       '"success":true,"time_in":"2024-01-08T12:26:45.100000Z","time_out":"2024-01-08T12:26:45.100100Z"}')
T0 = 1704716805.0  # 2024-01-08T12:26:45Z


def stream_frames() -> list[bytes]:
    """The frames of the capture: the subscribe ack, the documented snapshot (as numbers), the
    derived updates (as numbers)."""
    updates, _ = update_messages()
    return [ACK.encode(), numbers(documented_snapshot())] + [numbers(u) for u in updates]


def write_capture() -> None:
    """``KRAKEN_L3.0`` (the listing) and ``KRAKEN_L3.ws.1.0`` (one level3 connection) in the
    cryptofeed capture format (../shared/fixtures/README.md)."""
    listing = json.dumps({"error": [], "result": {"XXBTZUSD": XXBTZUSD}}, separators=(",", ":"))
    LISTING.write_text(f"{ASSET_PAIRS_URL} -> {T0 - 1:.6f}: {listing}\n")
    lines = [f"{L3_URL} <-> {T0:.6f}", f"{L3_URL} <- {T0 + 0.000001:.6f}: {SUBSCRIBE}"]
    lines += [f"{T0 + 0.001 * (i + 1):.6f}: {frame.decode()}" for i, frame in enumerate(stream_frames())]
    CAPTURE.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":  # regenerate the capture: python -m tests.venues.kraken_l3_stream
    write_capture()
