"""The floor: per venue, msgspec decoding of every received frame and nothing else.

Each function takes the capture's received frames (a list of ``bytes``, preloaded: the capture
reader is not part of it) and decodes every frame into the Structs of the scheme's OWN
decoders (``atomfast/exchanges/<venue>/messages.py``), choosing the decoder the way the
scheme's ``Dispatch`` and handlers do (a bytes prefix or a channel id learnt from the
subscription answers; a second decode where the scheme decodes a frame twice, e.g. an event
refused by Kraken Futures' data union, or Deribit's slow way for heartbeats and answers). No
book, no validation, no events. It returns the number of frames decoded (or deliberately
ignored, as the scheme ignores them); a frame that does not fit its Struct is counted as an
error (``len(frames) - result``) and the loop goes on. (The decodes a scheme makes only to
describe a frame it refuses are not part of the floor.)

Decoders are looked up through their module at call time (``m.v1_book_decoder``), so the
floor follows the schemes while they change; a renamed decoder makes the floor fail loudly
(AttributeError) rather than silently measure something else. A changed decoder (a venue that
now decodes a frame once, whole, instead of an envelope and then its data) is caught by
``decoder_calls``: ``python -m bench`` counts the decode calls of the scheme and of its floor on
each capture, by decoder type, and the report says where they differ.

    FLOORS["kraken-book"](frames) -> int
"""
from __future__ import annotations

from typing import Callable

import msgspec

_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)


def _type_name(t) -> str:
    """A decoder's type, short: ``Notification[Annotated[str, ...], Book]``, ``list[L2Row]``."""
    import re

    text = re.sub(r"<class '([^']*)'>", r"\1", repr(t))
    return re.sub(r"(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)


#: Python functions (of atomfast/replay.py) under which a decode is not a received frame's
_NOT_FRAMES = {"_other", "_answer_fetches"}


def decoder_calls(fn: Callable, *args) -> dict[str, int]:
    """``fn(*args)`` run with a profile hook that counts every ``msgspec.json.Decoder.decode``
    call (by the decoder's type) and every ``msgspec.json.decode`` call made from Python code;
    decodes made for what a replay hands over besides received frames (REST answers, a
    connection opened: ``Replay._other``, ``Replay._answer_fetches``) are left out. Slow (a
    hook on every call): untimed passes only."""
    import sys

    decoder_cls = msgspec.json.Decoder
    json_decode = msgspec.json.decode
    counts: dict[str, int] = {}
    names: dict[int, tuple] = {}

    def hook(frame, event, arg):
        if event != "c_call":
            return
        owner = getattr(arg, "__self__", None)
        if owner.__class__ is decoder_cls and arg.__name__ == "decode":
            f = frame
            while f is not None:
                code = f.f_code
                if code.co_name in _NOT_FRAMES and code.co_filename.endswith("replay.py"):
                    return
                f = f.f_back
            entry = names.get(id(owner))
            if entry is None:  # (the decoder is kept, so that its id is not reused)
                entry = names[id(owner)] = (owner, _type_name(owner.type))
            key = entry[1]
            counts[key] = counts.get(key, 0) + 1
        elif arg is json_decode:
            counts["msgspec.json.decode"] = counts.get("msgspec.json.decode", 0) + 1

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        fn(*args)
    finally:
        sys.setprofile(previous)
    return counts


def kraken_v1(frames: list[bytes]) -> int:
    """Kraken spot websocket v1 (``KrakenSpotV1Scheme.dispatch``): a ``[`` frame is routed by its
    channel, known by the frame's bytes up to the channelID's comma (``b"[3648,"``, learnt from
    ``subscriptionStatus``; a channelID not learnt yet is read from the message's own tail:
    channelID, channelName, pair, as ``_on_new_channel`` does) and decoded with its kind's
    decoder: a book frame as the common one-payload update (``m.v1_update_decoder``), and one that
    does not decode so (a snapshot, two payloads) again as any book frame (``m.v1_book_decoder``,
    ``_on_other`` -> ``_on_book_message``); ``{`` frames with the event decoder."""
    from atomfast.exchanges.kraken import messages as m

    by_kind = {
        "book": m.v1_update_decoder.decode,
        "trade": m.v1_trade_decoder.decode,
        "ticker": m.v1_ticker_decoder.decode,
        "ohlc": m.v1_ohlc_decoder.decode,
    }
    book_any = m.v1_book_decoder.decode
    event = m.v1_event_decoder.decode
    tail = m.v1_tail_decoder.decode
    int_decode = m.int_decoder.decode
    str_decode = m.str_decoder.decode
    status_cls = m.V1SubscriptionStatus
    channels: dict[bytes, str] = {}  # b"[channelID," -> kind ("" : not ours)
    n = 0
    for data in frames:
        try:
            first = data[:1]
            if first == b"[":
                key = data[:data.find(b",") + 1]
                kind = channels.get(key)
                if kind is None:  # a channel we were not told about: read its tail, learn it
                    parts = tail(data)
                    int_decode(parts[0])
                    name = str_decode(parts[-2])
                    str_decode(parts[-1])
                    kind = channels[key] = name.partition("-")[0]
                decode = by_kind.get(kind)
                if decode is not None:
                    try:
                        decode(data)
                    except _ERRORS:
                        if kind != "book":
                            raise
                        book_any(data)  # another shape of book message
            elif first == b"{":
                ev = event(data)
                if ev.__class__ is status_cls and ev.status == "subscribed" and ev.channelID is not None:
                    name = ev.channelName or (ev.subscription.name if ev.subscription is not None else "")
                    channels[b"[%d," % ev.channelID] = name.partition("-")[0]
            else:
                continue
            n += 1
        except _ERRORS:
            pass
    return n


def kraken_futures(frames: list[bytes]) -> int:
    """Kraken Futures v1 (``KrakenFuturesScheme.dispatch``): every ``{`` frame is decoded as the
    data union (by ``feed``); one it refuses (an event: ``{"event":...``) is decoded again with
    the event decoder (``_on_other``), as the scheme does; a frame that is no JSON object is not
    decoded (bad input)."""
    from atomfast.exchanges.kraken_futures import messages as m

    data_decode = m.data_decoder.decode
    event_decode = m.event_decoder.decode
    n = 0
    for data in frames:
        if data[:1] != b"{":
            continue
        try:
            try:
                data_decode(data)
            except msgspec.ValidationError:  # not a data message: an event
                event_decode(data)
            n += 1
        except _ERRORS:
            pass
    return n


def binance(frames: list[bytes]) -> int:
    """Binance spot / USD-M / COIN-M combined streams (``BinanceScheme.on_frame``): the byte
    after the stream name's ``@`` picks the wrapper Struct (DepthFrame, TradeFrame, ...);
    anything else (answers, errors, partial depth) goes through the tolerant ``Probe``."""
    from atomfast.exchanges.binance import messages as m

    handlers = {
        ord("d"): m.depth_frame.decode,
        ord("t"): m.trade_frame.decode,
        ord("a"): m.agg_trade_frame.decode,
        ord("b"): m.book_ticker_frame.decode,
        ord("k"): m.kline_frame.decode,
        ord("m"): m.mark_price_frame.decode,
    }
    get = handlers.get
    d = ord("d")
    probe = m.probe.decode
    n = 0
    for data in frames:
        try:
            if data[:11] == b'{"stream":"':
                at = data.find(b"@", 11, 96)
                if at > 0 and at + 1 < len(data):
                    kind = data[at + 1]
                    decode = get(kind)
                    if decode is not None and (kind != d or data[at + 6:at + 7] in (b"@", b'"')):
                        decode(data)
                        n += 1
                        continue
            probe(data)
            n += 1
        except _ERRORS:
            pass
    return n


def bitfinex(frames: list[bytes]) -> int:
    """Bitfinex v2 (``BitfinexScheme.on_frame``): ``{`` events; arrays by their channel (learnt
    from ``subscribed``): first as the channel's common message (``common``: the scheme's
    ``_Chan.ROUTE``, tried by its ``Lookup``), where that decoder refuses the frame by the shape
    of element 1 (``[[`` snapshot, ``[n`` row, ``"tag"``)."""
    from atomfast.exchanges.bitfinex import messages as m

    event = m.event_decoder.decode
    parts = m.parts_decoder.decode
    book = {"row": m.p0_update_decoder.decode, "snapshot": m.p0_snapshot_decoder.decode, "cs": m.checksum_decoder.decode}
    raw = {"row": m.r0_update_decoder.decode, "snapshot": m.r0_snapshot_decoder.decode, "cs": m.checksum_decoder.decode}
    by_kind = {
        "book": book,
        "raw": raw,
        "trades": {"te": m.trade_update_decoder.decode, "tu": m.trade_update_decoder.decode,
                   "snapshot": m.trades_snapshot_decoder.decode},
        "ticker": {"row": m.ticker_decoder.decode},
        "candles": {"row": m.candle_update_decoder.decode, "snapshot": m.candles_snapshot_decoder.decode},
        "status": {"row": m.status_decoder.decode},
    }
    common = {"book": "row", "raw": "row", "trades": "te", "ticker": "row", "candles": "row", "status": "row"}
    channels: dict[bytes, dict] = {}  # chanId digits -> shape/tag -> decode
    n = 0
    for data in frames:
        try:
            first = data[:1]
            if first == b"[":
                comma = data.find(b",", 1, 24)
                ch = channels.get(data[1:comma]) if comma > 0 else None
                tried = None
                if ch is not None:
                    tried = ch["common"]
                    try:
                        tried(data)
                        n += 1
                        continue
                    except _ERRORS:
                        pass
                c1 = data[comma + 1:comma + 2]
                if c1 == b"[":
                    c2 = data[comma + 2:comma + 3]
                    shape = "snapshot" if c2 == b"[" or c2 == b"]" else "row"
                elif c1 == b'"':
                    end = data.find(b'"', comma + 2, comma + 12)
                    shape = data[comma + 2:end].decode("ascii", "replace")
                else:
                    shape = ""
                if shape == "hb":  # read element by element: its sequence number, if it has one
                    p = parts(data)
                    if len(p) == 3:
                        msgspec.json.decode(p[2], type=int)
                else:
                    decode = ch.get(shape) if ch is not None else None
                    if decode is None:
                        parts(data)  # unusual spacing / unknown channel: the scheme classifies it
                    elif decode is not tried:
                        decode(data)
            elif first == b"{":
                ev = event(data)
                if ev.event == "subscribed" and ev.chanId is not None:
                    kind = ev.channel or ""
                    if kind == "book":
                        kind = "raw" if ev.prec == "R0" else "book"
                    if kind in by_kind:
                        channels[str(ev.chanId).encode()] = {**by_kind[kind], "common": by_kind[kind][common[kind]]}
            else:
                continue
            n += 1
        except _ERRORS:
            pass
    return n


def _one_decoder(module: str, attr: str = "decoder") -> Callable[[list[bytes]], int]:
    def floor(frames: list[bytes]) -> int:
        import importlib

        decode = getattr(importlib.import_module(module), attr).decode
        n = 0
        for data in frames:
            try:
                decode(data)
                n += 1
            except _ERRORS:
                pass
        return n

    floor.__doc__ = f"One tagged union for every frame: ``{module}.{attr}``."
    return floor


bitstamp = _one_decoder("atomfast.exchanges.bitstamp.messages")
coinbase = _one_decoder("atomfast.exchanges.coinbase.messages")


def bitmex(frames: list[bytes]) -> int:
    """BitMEX realtime (``BitmexScheme.on_frame``): the envelope (data kept raw), then the rows
    with the decoder of the table; ``pong`` is skipped."""
    from atomfast.exchanges.bitmex import messages as m

    envelope = m.envelope_decoder.decode
    tables = {
        "orderBookL2": m.l2_decoder.decode,
        "trade": m.trade_decoder.decode,
        "quote": m.quote_decoder.decode,
        "instrument": m.instrument_decoder.decode,
    }
    tradebin = m.tradebin_decoder.decode
    for t in ("tradeBin1m", "tradeBin5m", "tradeBin1h", "tradeBin1d"):
        tables[t] = tradebin
    n = 0
    for data in frames:
        try:
            if data[:1] == b"{":
                env = envelope(data)
                if env.table:
                    decode = tables.get(env.table)
                    if decode is not None:
                        decode(env.data)
            elif data != b"pong":
                continue
            n += 1
        except _ERRORS:
            pass
    return n


def deribit(frames: list[bytes]) -> int:
    """Deribit JSON-RPC (``DeribitScheme.dispatch``): a notification written as Deribit writes
    one (``handler._NOTIFICATION``) is decoded ONCE, whole, with the decoder of its channel kind
    (its first four bytes: ``m.book_notification``, ``m.trades_notification``,
    ``m.ticker_notification``, ``m.chart_notification``). Anything else, and a notification that
    decoder refuses, goes the slow way (``_on_other``): the envelope with ``data`` left raw, then
    a subscription's data with the decoder of its channel, or an answer's channel list."""
    from atomfast.exchanges.deribit import handler as h
    from atomfast.exchanges.deribit import messages as m

    prefix, key = h._NOTIFICATION, h._KEY
    fast = {
        b"book": m.book_notification.decode,
        b"trad": m.trades_notification.decode,
        b"tick": m.ticker_notification.decode,
        b"char": m.chart_notification.decode,
    }
    envelope = m.envelope_decoder.decode
    channel_list = m.channels_decoder.decode
    kinds = {
        "book": m.book_decoder.decode,
        "trades": m.trades_decoder.decode,
        "ticker": m.ticker_decoder.decode,
        "chart": m.chart_decoder.decode,
    }
    n = 0
    for data in frames:
        try:
            decode = fast.get(data[key]) if data.startswith(prefix) else None
            if decode is not None:
                try:
                    decode(data)
                    n += 1
                    continue
                except msgspec.ValidationError:  # the slow way says what is wrong
                    pass
            if data[:1] != b"{":
                continue
            env = envelope(data)
            params = env.params
            if env.method == "subscription" and params is not None:
                decode = kinds.get(params.channel.partition(".")[0])
                if decode is not None:
                    decode(params.data)
            elif env.id is not None and not env.method:
                raw = bytes(env.result)
                if raw[:1] == b"[":
                    channel_list(raw)
            n += 1
        except _ERRORS:
            pass
    return n


def fmfw(frames: list[bytes]) -> int:
    """HitBTC v3 / FMFW (``HitbtcScheme``): every notification is one tagged union on ``ch``; an
    answer to a request (which the union refuses) is decoded as JSON, then as an answer."""
    from atomfast.exchanges.hitbtc import messages as m

    union, anything, answer = m.decoder.decode, m.any_decoder.decode, m.answer_decoder.decode
    n = 0
    for data in frames:
        try:
            try:
                union(data)
            except _ERRORS:
                if not isinstance(anything(data), dict):
                    raise
                answer(data)
            n += 1
        except _ERRORS:
            pass
    return n


def poloniex(frames: list[bytes]) -> int:
    """Poloniex v3 spot (``PoloniexScheme``): a frame that starts ``{"channel":"book_lv2"`` (the
    scheme's ``ByteAfter``) decoded whole, its levels kept as raw JSON (read by the book); any
    other, the envelope (``data`` kept raw), then the data with the decoder of its channel
    (trades, candles); answers and events stop at the envelope."""
    from atomfast.exchanges.poloniex import messages as m

    book = m.book_msg_decoder.decode
    envelope = m.envelope_decoder.decode
    channels = {"book_lv2": m.book_decoder.decode, "trades": m.trades_decoder.decode,
                "candles_minute_1": m.candles_decoder.decode}
    n = 0
    for data in frames:
        try:
            if data.startswith(b'{"channel":"book_lv2"'):
                book(data)
            else:
                env = envelope(data)
                decode = channels.get(env.channel) if not env.event else None
                if decode is not None:
                    decode(env.data)
            n += 1
        except _ERRORS:
            pass
    return n


def phemex(frames: list[bytes]) -> int:
    """Phemex (``PhemexScheme``): a frame that starts ``{"book":`` is a book message (the
    scheme's ``ByteAfter``); another's kind is from a key only that kind holds (the scheme's
    ``_route``: ``kind_of``); then that kind's decoder, once."""
    from atomfast.exchanges.phemex import handler as h
    from atomfast.exchanges.phemex import messages as m

    decoders = {h.BOOK: m.book_decoder.decode, h.BOOK_P: m.book_p_decoder.decode, h.TRADES: m.trades_decoder.decode,
                h.TRADES_P: m.trades_p_decoder.decode, h.KLINE: m.kline_decoder.decode,
                h.KLINE_P: m.kline_p_decoder.decode, h.PACK: m.pack_decoder.decode, h.ANSWER: m.answer_decoder.decode}
    kind_of = h.kind_of
    book = h.BOOK
    n = 0
    for data in frames:
        key = book if data[:8] == b'{"book":' else kind_of(data)
        try:
            if key is not None:
                decoders[key](data)
            n += 1
        except _ERRORS:
            pass
    return n


def bybit(frames: list[bytes]) -> int:
    """Bybit v5 (``BybitScheme``): the topic's kind read on the bytes (the scheme's
    ``_topic_kind``), then that kind's decoder, once; what has no topic (answers, pongs) is
    decoded as a control message."""
    from atomfast.exchanges.bybit import messages as m
    from atomfast.exchanges.bybit.handler import BybitLinearScheme

    kind_of = BybitLinearScheme._topic_kind
    decoders = {b"orderbook": m.book_decoder.decode, b"publicTrade": m.trade_decoder.decode,
                b"tickers": m.ticker_decoder.decode, b"kline": m.kline_decoder.decode,
                b"allLiquidation": m.liquidation_decoder.decode}
    control = m.control_decoder.decode
    n = 0
    for data in frames:
        try:
            decode = decoders.get(kind_of(None, data), control)
            decode(data)
            n += 1
        except _ERRORS:
            pass
    return n


def bitflyer(frames: list[bytes]) -> int:
    """bitFlyer Lightning (``BitflyerScheme``): the JSON-RPC envelope (``message`` kept raw), then
    the message with its channel's decoder (board snapshots and diffs, executions, ticker)."""
    from atomfast.exchanges.bitflyer import handler as h
    from atomfast.exchanges.bitflyer import messages as m

    envelope = m.envelope_decoder.decode
    by_channel = ((h.SNAPSHOT_CHANNEL, m.board_decoder.decode), (h.BOARD_CHANNEL, m.board_decoder.decode),
                  (h.EXECUTIONS_CHANNEL, m.executions_decoder.decode), (h.TICKER_CHANNEL, m.ticker_decoder.decode))
    n = 0
    for data in frames:
        try:
            env = envelope(data)
            if env.params is not None:
                channel = env.params.channel
                decode = next((d for prefix, d in by_channel if channel.startswith(prefix)), None)
                if decode is not None:
                    decode(env.params.message)
            n += 1
        except _ERRORS:
            pass
    return n


def kucoin(frames: list[bytes]) -> int:
    """KuCoin spot (``KucoinScheme``): the envelope (``data`` kept raw), then the data with the
    decoder of its ``subject``; control messages (welcome, ack, pong) stop at the envelope."""
    from atomfast.exchanges.kucoin import messages as m

    envelope = m.envelope_decoder.decode
    subjects = {"trade.l2update": m.l2_decoder.decode, "trade.l3match": m.match_decoder.decode,
                "trade.ticker": m.spot_ticker_decoder.decode, "trade.candles.update": m.spot_candle_decoder.decode,
                "trade.candles.add": m.spot_candle_decoder.decode}
    n = 0
    for data in frames:
        try:
            env = envelope(data)
            decode = subjects.get(env.subject)
            if decode is not None:
                decode(env.data)
            n += 1
        except _ERRORS:
            pass
    return n


def okx(frames: list[bytes]) -> int:
    """OKX v5 (``OkxScheme``): the route read on the bytes (the scheme's ``_route``: ``event`` or
    the channel), then that route's decoder, once; ``pong`` (no route) is not decoded."""
    from atomfast.exchanges.okx import messages as m
    from atomfast.exchanges.okx.handler import OkxScheme

    route = OkxScheme._route
    decoders = {b"books": m.book_decoder.decode, b"trades": m.trade_decoder.decode,
                b"tickers": m.ticker_decoder.decode, b"candle": m.candle_decoder.decode,
                b"funding-rate": m.funding_decoder.decode, b"open-interest": m.open_interest_decoder.decode,
                b"liquidation-orders": m.liquidation_decoder.decode, b"event": m.event_decoder.decode}
    n = 0
    for data in frames:
        try:
            decode = decoders.get(route(None, data))
            if decode is not None:
                decode(data)
            n += 1
        except _ERRORS:
            pass
    return n


def htx(frames: list[bytes]) -> int:
    """HTX spot (``HtxScheme``): each frame gunzipped (HTX sends gzip), its route read on the
    bytes (the scheme's ``_route``), then that route's decoder (``depth.step0``: its levels kept
    as raw JSON, read by the book); what has none (answers) is decoded as a control message.
    Inflated by the module the scheme inflates with (``handler._zlib``: zlib-ng, else zlib)."""
    from atomfast.exchanges.htx import messages as m
    from atomfast.exchanges.htx.handler import HtxScheme
    from atomfast.exchanges.htx.handler import _zlib as zlib

    route = HtxScheme._route
    decoders = {b"mbp": m.mbp_decoder.decode, b"dep": m.depth_raw_decoder.decode, b"tra": m.trade_decoder.decode,
                b"bbo": m.spot_bbo_decoder.decode, b"kli": m.kline_decoder.decode, b"ping": m.ping_decoder.decode,
                b"rep": m.rep_decoder.decode}
    control = m.control_decoder.decode
    n = 0
    for data in frames:
        try:
            if data[:2] == b"\x1f\x8b":
                data = zlib.decompress(data, 16 + zlib.MAX_WBITS)
            decoders.get(route(None, data), control)(data)
            n += 1
        except (*_ERRORS, zlib.error):
            pass
    return n


gemini = _one_decoder("atomfast.exchanges.gemini.messages", "v2_decoder")


#: bench/bench_replay.py's cases -> floor function
FLOORS: dict[str, Callable[[list[bytes]], int]] = {
    "kraken-book": kraken_v1,
    "kraken-trades+ticker": kraken_v1,
    "kraken-futures": kraken_futures,
    "binance": binance,
    "binance-futures": binance,
    "binance-delivery": binance,
    "bitfinex": bitfinex,
    "bitstamp": bitstamp,
    "bitmex": bitmex,
    "coinbase": coinbase,
    "deribit": deribit,
    "binance-usdm-session": binance,
    "fmfw": fmfw,
    "poloniex": poloniex,
    "phemex": phemex,
    "bybit-linear": bybit,
    "bitflyer": bitflyer,
    "kucoin": kucoin,
    "okx": okx,
    "htx": htx,
    "gemini": gemini,
}
