"""A local exchange: replays a capture over a real websocket, and serves its recorded REST answers.

One picows server (``ws_create_server``) on HOST:PORT does both:

- websocket upgrade requests get a replay: each client connection is matched to one recorded
  connection of the capture and, after the client's first message (its subscribe), receives that
  connection's recorded received frames, all of them, byte-identical and in order (text frames as
  text, binary as binary), at recorded pace or as fast as flow control lets it;
- plain HTTP GET requests (no ``Upgrade: websocket``) are answered from the capture's REST
  recordings, from picows' upgrade handler: ``GET path?query`` -> the recorded body (200), else
  404. REST is therefore served on the SAME port as the websocket (``--rest-port R`` adds a
  second listener on R, same behaviour, which also answers a POST with the path's recorded
  answer, as a venue's websocket token needs: picows' upgrade handler refuses a POST).
  ``GET /_atomfast/capture`` describes the capture
  (``{"exchange": ..., "urls": [...], "connections": N, "frames": [...]}``), so a client can tell
  which exchange protocol the simulator speaks.

Matching a client connection to a recorded one: among the recorded connections not serving
another client, the one whose recorded sent messages contain the client's first message wins;
otherwise the most similar first sent message; ties go to the lowest number (so with identical
subscriptions, client connections get recorded connections in the order they connect). A
recorded connection that sent nothing (URL-subscribed streams) starts playing on connect.

Options: ``pace`` ``recorded`` (the recorded gaps between frames) or ``fast`` (no gaps; writes
pause when picows reports the socket buffer full and yield to the loop every 256 frames);
``loop`` (start over at the end); ``close_after`` N (drop the connection after N frames: CLOSE
1001 then TCP close, so the N frames are delivered); ``resume`` (a recorded connection continues
where its previous client stopped instead of from the start). After the last frame the
connection stays open and idle (answering pings), like a market gone quiet.

Faults (``faults=FaultPlan.parse("...")``, ``atomfast simulate --faults SPEC --seed S``): an
exchange that misbehaves on purpose, deterministically for a seed. SPEC is comma-separated
``name=value`` items (an item may repeat where it says so):

- ``drop-every=N``: close each client connection after N frames sent on it (CLOSE 1001 with the
  reason ``fault: drop-every``, then TCP close; the N frames are delivered);
- ``drop=P``: after each frame, with probability P, end the connection at the TCP level, with no
  CLOSE frame (what was sent is delivered first);
- ``stall=T@N`` (repeatable): once the simulator has sent N frames in all, that client's
  connection goes silent for T seconds: no frame, no PONG (a dead link that stays open);
- ``garbage=P``: before each recorded frame, with probability P, an extra text frame that is no
  JSON (``!garbage <n> <letters>``);
- ``truncate=P``: a recorded frame, with probability P, is sent cut to its first half (its
  content is lost, as after a corrupted read);
- ``duplicate=P``: a recorded frame, with probability P, is sent twice;
- ``reorder=P``: a recorded frame, with probability P, is sent after the frame that follows it;
- ``rest-delay=T``: REST answers wait T seconds (on the separate REST listener, which this
  fault opens on a free port unless ``rest_port`` is given; the websocket port cannot delay an
  answer, picows' upgrade handler being synchronous);
- ``rest-status=CODE:N`` (repeatable, in order): the first N requests of each REST path are
  answered with HTTP CODE (400..599, e.g. 429 or 503) and a JSON error body;
- ``refuse=T``: after each connection a fault ended (drop-every, drop, or a stalled connection
  the client gave up), websocket upgrades are refused (HTTP 503) for T seconds.

REST faults spare the start-up: a request made before the first websocket connection (the
instrument listings) and ``/_atomfast/capture`` are answered normally. At most one of
truncate, duplicate, reorder applies to a recorded frame (in that order); garbage comes before
it, a drop after it. Every random choice comes from ``random.Random(f"{seed}:{client}")`` (client:
the connection's number, 1, 2, ... in accept order), so a seed gives the same faults at the same
frames. Each injected fault is logged (``atomfast.simulator``, INFO: ``fault <kind> ...``) and,
with ``fault_log``, written as one JSON line: ``{"fault": kind, "client": n, "at": the
simulator-wide ordinal of the frame it concerns (1 = first frame sent), "sent": frames sent on
the connection, "recorded": the recorded connection, "index": the recorded frame, ...}``
(``refuse``, ``rest-status`` and ``rest-delay`` lines name the request instead).

Markets (``market_symbol="BTCUSDT", markets=["BTCUSDT", "ETHUSDT", ...]``): the recording of one
market served as N markets with distinct symbols (benchmarks: a one-market session replayed as a
busy venue). Every recorded connection plays, for each recorded frame, that frame once per name
in ``markets``, in that order (round robin: frame 1 as market 1, 2, ..., N, then frame 2, ...;
the N copies of a frame keep its recorded time), with every occurrence of ``market_symbol``
replaced by the name, in the case it is written in: as given, lower case, upper case (Binance's
``BTCUSDT`` in payloads, ``btcusdt`` in stream names). The copies are renamed as they are sent
(not held in memory). The recorded sent messages are renamed the same way (for matching a
client's subscription), and a REST answer whose path or query names the symbol is served for
each name (path and body renamed). Text as recorded: a compressed binary frame is not renamed
inside.

Recorded frames are held in memory.
"""
from __future__ import annotations

import asyncio
import collections.abc as abc
import difflib
import json
import logging
import random
import string
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Sequence

from picows import (
    WSCloseCode,
    WSListener,
    WSMsgType,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from .capture import OPEN, RECV, SENT, open_capture

log = logging.getLogger("atomfast.simulator")

INFO_PATH = "/_atomfast/capture"
YIELD_EVERY = 256

FAULT_GRAMMAR = """\
SPEC is comma-separated name=value items:
  drop-every=N      close each connection after N frames sent on it (CLOSE 1001 "fault: drop-every")
  drop=P            after each frame, with probability P, end the connection (TCP close, no CLOSE frame)
  stall=T@N         once N frames were sent in all, that connection is silent T s (no frames, no PONG); repeatable
  garbage=P         before each frame, with probability P, an extra frame that is no JSON
  truncate=P        a frame, with probability P, is sent cut to its first half
  duplicate=P       a frame, with probability P, is sent twice
  reorder=P         a frame, with probability P, is sent after the next one
  rest-delay=T      REST answers wait T s (on the separate REST listener, opened on a free port)
  rest-status=C:N   the first N requests of each REST path get HTTP C (400..599); repeatable, in order
  refuse=T          after a connection a fault ended, refuse websocket upgrades (HTTP 503) for T s
P is a probability in [0, 1], T seconds >= 0, N an integer >= 1. REST faults spare requests made
before the first websocket connection (the instrument listings). Random choices come from --seed."""


class FaultSpecError(ValueError):
    """A ``--faults`` spec that cannot be parsed: one line naming the item and what is wrong."""


@dataclass(frozen=True)
class FaultPlan:
    """What the simulator does wrong on purpose (see the module doc). ``FaultPlan.parse(spec)``."""

    drop_every: int = 0
    drop: float = 0.0
    stalls: tuple[tuple[float, int], ...] = ()  # (seconds, after this many frames sent in all)
    garbage: float = 0.0
    truncate: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    rest_delay: float = 0.0
    rest_status: tuple[tuple[int, int], ...] = ()  # (HTTP status, first N requests of a path)
    refuse: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> "FaultPlan":
        values: dict = {}
        stalls: list[tuple[float, int]] = []
        statuses: list[tuple[int, int]] = []
        for item in (spec or "").split(","):
            item = item.strip()
            if not item:
                continue
            name, eq, value = item.partition("=")
            name, value = name.strip(), value.strip()
            if not eq or not value:
                raise FaultSpecError(f"fault {item!r}: expected name=value")
            if name in ("drop-every",):
                values["drop_every"] = _count(item, value)
            elif name in ("drop", "garbage", "truncate", "duplicate", "reorder"):
                values[name] = _probability(item, value)
            elif name == "stall":
                secs, at, n = value.partition("@")
                if not at:
                    raise FaultSpecError(f"fault {item!r}: expected stall=SECONDS@FRAMES")
                stalls.append((_seconds(item, secs), _count(item, n)))
            elif name == "rest-delay":
                values["rest_delay"] = _seconds(item, value)
            elif name == "rest-status":
                code, colon, n = value.partition(":")
                if not colon:
                    raise FaultSpecError(f"fault {item!r}: expected rest-status=CODE:N")
                try:
                    status = int(code)
                except ValueError:
                    status = 0
                if not 400 <= status <= 599:
                    raise FaultSpecError(f"fault {item!r}: the status must be an HTTP error code 400..599")
                statuses.append((status, _count(item, n)))
            elif name == "refuse":
                values["refuse"] = _seconds(item, value)
            else:
                raise FaultSpecError(f"unknown fault {name!r} in {item!r} (known: drop-every, drop, stall, garbage, "
                                     "truncate, duplicate, reorder, rest-delay, rest-status, refuse)")
        return cls(stalls=tuple(sorted(stalls, key=lambda s: s[1])), rest_status=tuple(statuses), **values)

    def __bool__(self) -> bool:
        return self != FaultPlan()

    @property
    def rest_faults(self) -> bool:
        return bool(self.rest_delay or self.rest_status)

    def describe(self) -> str:
        parts = []
        if self.drop_every:
            parts.append(f"drop-every={self.drop_every}")
        for name in ("drop", "garbage", "truncate", "duplicate", "reorder"):
            if getattr(self, name):
                parts.append(f"{name}={getattr(self, name):g}")
        parts += [f"stall={t:g}@{n}" for t, n in self.stalls]
        if self.rest_delay:
            parts.append(f"rest-delay={self.rest_delay:g}")
        parts += [f"rest-status={c}:{n}" for c, n in self.rest_status]
        if self.refuse:
            parts.append(f"refuse={self.refuse:g}")
        return ",".join(parts) or "none"


def _count(item: str, text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise FaultSpecError(f"fault {item!r}: {text!r} is not a whole number >= 1")
    return n


def _probability(item: str, text: str) -> float:
    try:
        p = float(text)
    except ValueError:
        p = -1.0
    if not 0.0 <= p <= 1.0:
        raise FaultSpecError(f"fault {item!r}: {text!r} is not a probability in [0, 1]")
    return p


def _seconds(item: str, text: str) -> float:
    try:
        t = float(text)
    except ValueError:
        t = -1.0
    if not 0.0 <= t <= 3600.0 or t != t:
        raise FaultSpecError(f"fault {item!r}: {text!r} is not a number of seconds in [0, 3600]")
    return t


@dataclass
class RecordedConnection:
    """One recorded websocket connection: what the client sent, what it received."""

    number: int
    url: str = ""
    sent: list[bytes] = field(default_factory=list)
    frames: list[tuple[int, bytes, bool]] = field(default_factory=list)  # (ts_ns, payload, binary)
    cursor: int = 0  # next frame for a resumed client (resume mode)
    busy: int = 0  # clients currently served from it


def _spellings(symbol: str, name: str) -> list[tuple[bytes, bytes]]:
    """(recorded, renamed) byte pairs for ``symbol`` -> ``name`` as given, lower and upper case."""
    pairs: list[tuple[bytes, bytes]] = []
    for old, new in ((symbol, name), (symbol.lower(), name.lower()), (symbol.upper(), name.upper())):
        pair = (old.encode(), new.encode())
        if old != new and pair not in pairs:
            pairs.append(pair)
    return pairs


def _rename(data: bytes, pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    for old, new in pairs:
        data = data.replace(old, new)
    return data


class MarketFrames(abc.Sequence):
    """The frames of one recorded connection served as N markets (``Simulator(markets=...)``):
    item ``i`` is recorded frame ``i // N`` renamed for market ``i % N``, renamed when read."""

    def __init__(self, frames: Sequence[tuple[int, bytes, bool]], symbol: str, names: Sequence[str]) -> None:
        self.frames = frames
        self.names = list(names)
        self.renames = [_spellings(symbol, name) for name in self.names]

    def __len__(self) -> int:
        return len(self.frames) * len(self.names)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self.names)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        j, k = divmod(i, n)
        ts, data, binary = self.frames[j]
        return ts, _rename(data, self.renames[k]), binary


def multiply_markets(recordings: list[RecordedConnection], rest: dict[str, list[bytes]], symbol: str,
                     names: Sequence[str]) -> None:
    """Serve the recording of ``symbol`` as the markets ``names`` (module doc: Markets), in place."""
    if not symbol or not names:
        raise ValueError("markets: a recorded symbol and at least one name are needed")
    renames = [_spellings(symbol, name) for name in names]
    for rc in recordings:
        rc.frames = MarketFrames(rc.frames, symbol, names)
        sent: list[bytes] = []
        for message in rc.sent:
            for pairs in renames:
                renamed = _rename(message, pairs)
                if renamed not in sent:
                    sent.append(renamed)
        rc.sent = sent
    spelled = {symbol, symbol.lower(), symbol.upper()}
    for key in [k for k in rest if any(s in k for s in spelled)]:
        for pairs in renames:
            if pairs:
                new_key = _rename(key.encode(), pairs).decode()
                rest.setdefault(new_key, [_rename(body, pairs) for body in rest[key]])


def load_recordings(paths: Sequence[str | Path]) -> tuple[list[RecordedConnection], dict[str, list[bytes]], str]:
    """The recorded connections of the capture files (in order), REST answers by path+query, exchange."""
    conns: list[RecordedConnection] = []
    rest: dict[str, list[bytes]] = {}
    exchange = ""
    for path in paths:
        capture = open_capture(path)
        exchange = exchange or capture.exchange or _exchange_from_name(Path(path).name)
        by_id: dict[int, RecordedConnection] = {}
        for frame in capture.frames():
            if frame.kind not in (OPEN, SENT, RECV):
                continue
            rc = by_id.get(frame.conn)
            if rc is None:
                rc = by_id[frame.conn] = RecordedConnection(len(conns) + len(by_id), frame.url)
            if frame.kind == OPEN:
                rc.url = rc.url or frame.url
            elif frame.kind == SENT:
                rc.sent.append(frame.data)
            else:
                rc.frames.append((frame.ts_ns, frame.data, frame.binary))
        conns.extend(by_id[k] for k in sorted(by_id))
        for url, answers in capture.rest.items():
            parts = urllib.parse.urlsplit(url)
            key = (parts.path or "/") + ("?" + parts.query if parts.query else "")
            rest.setdefault(key, []).extend(body for _ts, body in answers)
    for i, rc in enumerate(conns):
        rc.number = i
    return conns, rest, exchange


def _exchange_from_name(name: str) -> str:
    """cryptofeed names its files after the exchange: ``KRAKEN_FUTURES.ws.1.0`` -> kraken-futures."""
    if ".ws." not in name:
        return ""
    return name.split(".ws.", 1)[0].lower().replace("_", "-")


def _similarity(a: bytes, b: bytes) -> float:
    return difflib.SequenceMatcher(None, a[:2000], b[:2000], autojunk=False).ratio()


class _ClientListener(WSListener):
    """One client websocket connection of the simulator."""

    def __init__(self, sim: "Simulator", peer: str, number: int = 0) -> None:
        super().__init__()
        self.sim = sim
        self.peer = peer
        self.number = number
        self.transport = None
        self.recording: RecordedConnection | None = None
        self.task: asyncio.Task | None = None
        self.writable = asyncio.Event()
        self.writable.set()
        self.received: list[bytes] = []
        self.sent = 0  # frames sent on this connection (injected ones included)
        self.stalled = False  # a stall fault: no frames, no PONG
        self.fault_ended = False  # a fault dropped this connection (or stalled it until the client left)

    def on_ws_connected(self, transport) -> None:
        self.transport = transport
        self.sim.clients.add(self)
        if self.sim.recordings and all(not rc.sent for rc in self.sim.recordings):
            self._start(self.sim.choose(None))

    def on_ws_frame(self, transport, frame) -> None:
        mt = frame.msg_type
        if mt is WSMsgType.TEXT or mt is WSMsgType.BINARY:
            data = frame.get_payload_as_bytes()
            self.received.append(data)
            if self.recording is None:
                self._start(self.sim.choose(data))
        elif mt is WSMsgType.PING:  # (auto-pong is off when stalls are planned)
            if not self.stalled:
                transport.send_pong(frame.get_payload_as_bytes())
        elif mt is WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(WSCloseCode.OK)
            transport.disconnect()

    def on_ws_disconnected(self, transport) -> None:
        self.sim.clients.discard(self)
        if self.stalled:
            self.fault_ended = True
        if self.fault_ended and self.sim.faults.refuse:
            self.sim.refuse_for(self.sim.faults.refuse, self.number)
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.recording is not None:
            self.recording.busy -= 1
            self.recording = None

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def _start(self, rc: RecordedConnection | None) -> None:
        if rc is None:
            log.warning("client %s: the capture has no connection to play", self.peer)
            return
        self.recording = rc
        rc.busy += 1
        log.info("client %s: playing recorded connection %d (%d frames)", self.peer, rc.number, len(rc.frames))
        self.task = asyncio.get_running_loop().create_task(self._play(rc))

    async def _play(self, rc: RecordedConnection) -> None:
        if self.sim.faults:
            await self._play_faulty(rc)
            return
        sim = self.sim
        transport = self.transport
        loop = asyncio.get_running_loop()
        frames = rc.frames
        start = rc.cursor if sim.resume else 0
        sent = 0
        recorded = sim.pace == "recorded"
        rate = sim.rate
        text, binary = WSMsgType.TEXT, WSMsgType.BINARY
        writable = self.writable
        try:
            while True:
                t0_wall = loop.time()
                t0_rec = frames[start][0] if start < len(frames) else 0
                for i in range(start, len(frames)):
                    ts, data, is_binary = frames[i]
                    if rate:
                        delay = t0_wall + (i - start) / rate - loop.time()
                        if delay > 0.0005:
                            await asyncio.sleep(delay)
                    elif recorded:
                        delay = t0_wall + (ts - t0_rec) / 1e9 - loop.time()
                        if delay > 0.0005:
                            await asyncio.sleep(delay)
                    if transport.is_disconnected:
                        return
                    transport.send(binary if is_binary else text, data)
                    sent += 1
                    if sim.resume:
                        rc.cursor = i + 1
                    sim.frames_sent += 1
                    if sim.close_after and sent >= sim.close_after:
                        log.info("client %s: closing after %d frames (--close-after)", self.peer, sent)
                        transport.send_close(WSCloseCode.GOING_AWAY, b"close-after")
                        transport.disconnect()
                        return
                    if not writable.is_set():
                        await writable.wait()
                    elif sent % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                if not sim.loop_capture or not frames:
                    break
                start = 0
                if sim.resume:
                    rc.cursor = 0
            log.info("client %s: recorded connection %d played (%d frames)", self.peer, rc.number, sent)
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - one client's failure must not stop the simulator
            log.exception("client %s: playback failed", self.peer)
            transport.disconnect(graceful=False)

    # --- faults ------------------------------------------------------------------------------
    def _fault(self, kind: str, rc: RecordedConnection, index: int, **extra) -> None:
        self.sim.fault(kind, client=self.number, at=self.sim.frames_sent, sent=self.sent, recorded=rc.number,
                       index=index, **extra)

    def _send(self, payload: bytes, is_binary: bool) -> None:
        self.transport.send(WSMsgType.BINARY if is_binary else WSMsgType.TEXT, payload)
        self.sent += 1
        self.sim.frames_sent += 1

    async def _play_faulty(self, rc: RecordedConnection) -> None:
        """``_play`` with the fault plan applied (one code path per fault, every choice from the
        connection's own seeded generator, drawn the same way for every frame)."""
        sim = self.sim
        plan = sim.faults
        rng = random.Random(f"{sim.seed}:{self.number}")
        transport = self.transport
        loop = asyncio.get_running_loop()
        frames = rc.frames
        recorded = sim.pace == "recorded"
        rate = sim.rate
        writable = self.writable
        start = rc.cursor if sim.resume else 0
        try:
            while True:
                t0_wall = loop.time()
                t0_rec = frames[start][0] if start < len(frames) else 0
                i = start
                while i < len(frames):
                    ts, data, is_binary = frames[i]
                    if rate:
                        delay = t0_wall + (i - start) / rate - loop.time()
                        if delay > 0.0005:
                            await asyncio.sleep(delay)
                    elif recorded:
                        delay = t0_wall + (ts - t0_rec) / 1e9 - loop.time()
                        if delay > 0.0005:
                            await asyncio.sleep(delay)
                    if transport.is_disconnected:
                        return
                    # the same five draws for every frame, whatever they decide
                    r_garbage, r_truncate, r_duplicate, r_reorder, r_drop = (rng.random() for _ in range(5))
                    if r_garbage < plan.garbage:
                        junk = "!garbage %d %s" % (sim.faults_injected + 1,
                                                   "".join(rng.choice(string.ascii_letters) for _ in range(16)))
                        self._send(junk.encode(), False)
                        self._fault("garbage", rc, i, bytes=len(junk))
                    step = 1
                    if r_truncate < plan.truncate and len(data) >= 2:
                        self._send(data[: len(data) // 2], is_binary)
                        self._fault("truncate", rc, i, bytes=len(data), kept=len(data) // 2)
                    elif r_duplicate < plan.duplicate:
                        self._send(data, is_binary)
                        self._send(data, is_binary)
                        self._fault("duplicate", rc, i)
                    elif r_reorder < plan.reorder and i + 1 < len(frames):
                        _ts2, data2, binary2 = frames[i + 1]
                        self._send(data2, binary2)
                        self._send(data, is_binary)
                        self._fault("reorder", rc, i, swapped_with=i + 1)
                        step = 2
                    else:
                        self._send(data, is_binary)
                    i += step
                    if sim.resume:
                        rc.cursor = i
                    for secs, after in plan.stalls:
                        if after <= sim.frames_sent and (secs, after) not in sim.stalls_done:
                            sim.stalls_done.add((secs, after))
                            self._fault("stall", rc, i - 1, seconds=secs)
                            self.stalled = True
                            try:
                                await asyncio.sleep(secs)
                            finally:
                                self.stalled = False
                            if transport.is_disconnected:
                                return
                    if plan.drop_every and self.sent >= plan.drop_every:
                        self._fault("drop-every", rc, i - 1)
                        self.fault_ended = True
                        transport.send_close(WSCloseCode.GOING_AWAY, b"fault: drop-every")
                        transport.disconnect()
                        return
                    if r_drop < plan.drop:
                        self._fault("drop", rc, i - 1)
                        self.fault_ended = True
                        transport.disconnect()  # graceful: what was written is flushed, then TCP close
                        return
                    if sim.close_after and self.sent >= sim.close_after:
                        log.info("client %s: closing after %d frames (--close-after)", self.peer, self.sent)
                        transport.send_close(WSCloseCode.GOING_AWAY, b"close-after")
                        transport.disconnect()
                        return
                    if not writable.is_set():
                        await writable.wait()
                    elif self.sent % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                if not sim.loop_capture or not frames:
                    break
                start = 0
                if sim.resume:
                    rc.cursor = 0
            log.info("client %s: recorded connection %d played (%d frames)", self.peer, rc.number, self.sent)
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - one client's failure must not stop the simulator
            log.exception("client %s: playback failed", self.peer)
            transport.disconnect(graceful=False)


class Simulator:
    """The local exchange. ``await start()``, then ``url``/``rest_url``; ``close()`` to stop."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        host: str = "127.0.0.1",
        port: int = 0,
        pace: str = "recorded",
        loop: bool = False,
        close_after: int = 0,
        resume: bool = False,
        rest_port: int | None = None,
        rate: float = 0.0,
        faults: FaultPlan | str | None = None,
        seed: int = 0,
        fault_log: str | Path | IO[str] | None = None,
        market_symbol: str = "",
        markets: Sequence[str] = (),
    ) -> None:
        if pace not in ("recorded", "fast"):
            raise ValueError(f"pace must be recorded or fast, not {pace!r}")
        if rate < 0:
            raise ValueError(f"rate must be >= 0 frames/s, not {rate!r}")
        self.paths = [Path(p) for p in paths]
        self.host = host
        self.port = port
        self.rest_port = rest_port
        self.pace = pace
        self.rate = rate  # frames/s per client connection; 0 = by pace
        self.loop_capture = loop
        self.close_after = close_after
        self.resume = resume
        self.recordings, self.rest, self.exchange = load_recordings(self.paths)
        self.market_symbol = market_symbol
        self.markets = list(markets)
        if market_symbol or self.markets:
            multiply_markets(self.recordings, self.rest, market_symbol, self.markets)
        self._rest_served: dict[str, int] = {}
        self.clients: set[_ClientListener] = set()
        self.servers: list[asyncio.AbstractServer] = []
        self.frames_sent = 0
        self.connections = 0  # client websocket connections accepted
        self.faults = faults if isinstance(faults, FaultPlan) else FaultPlan.parse(faults or "")
        self.seed = seed
        if self.faults.rest_delay and self.rest_port is None:
            self.rest_port = 0  # a delay needs the REST listener of our own
        self.faults_injected = 0
        self.fault_counts: dict[str, int] = {}
        self.stalls_done: set[tuple[float, int]] = set()
        self.refuse_until = 0.0  # loop time
        self._rest_faulted: dict[str, int] = {}
        self._fault_file: IO[str] | None = None
        self._own_fault_file = False
        if fault_log is not None:
            if isinstance(fault_log, (str, Path)):
                self._fault_file = open(fault_log, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
                self._own_fault_file = True
            else:
                self._fault_file = fault_log

    # --- faults ------------------------------------------------------------------------------
    def fault(self, kind: str, **detail) -> None:
        """One injected fault: counted, logged, and a JSON line in the fault log."""
        self.faults_injected += 1
        self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1
        log.info("fault %s %s", kind, " ".join(f"{k}={v}" for k, v in detail.items()))
        if self._fault_file is not None:
            self._fault_file.write(json.dumps({"fault": kind, **detail}, separators=(",", ":")) + "\n")
            self._fault_file.flush()

    def refuse_for(self, seconds: float, client: int) -> None:
        loop = asyncio.get_running_loop()
        self.refuse_until = max(self.refuse_until, loop.time() + seconds)
        log.info("refusing websocket connections for %g s (client %d ended by a fault)", seconds, client)

    def _refusing(self) -> bool:
        if not self.refuse_until:
            return False
        try:
            return asyncio.get_running_loop().time() < self.refuse_until
        except RuntimeError:  # pragma: no cover - always called on the loop
            return False

    def rest_fault(self, path: str) -> tuple[int, float]:
        """(HTTP status to answer instead, 0 for none; delay in s) for a REST request of ``path``."""
        plan = self.faults
        if not plan.rest_faults or not self.connections or urllib.parse.urlsplit(path).path == INFO_PATH:
            return 0, 0.0
        n = self._rest_faulted.get(path, 0)
        self._rest_faulted[path] = n + 1
        for status, count in plan.rest_status:
            if n < count:
                self.fault("rest-status", path=path, status=status, request=self._rest_faulted[path])
                return status, 0.0
            n -= count
        return 0, plan.rest_delay

    # --- matching ----------------------------------------------------------------------------
    def choose(self, first_message: bytes | None) -> RecordedConnection | None:
        if not self.recordings:
            return None
        free = [rc for rc in self.recordings if not rc.busy] or list(self.recordings)
        if first_message is None:
            return free[0]
        exact = [rc for rc in free if first_message in rc.sent]
        if exact:
            return exact[0]
        scored = [(max((_similarity(first_message, s) for s in rc.sent), default=0.0), -rc.number, rc) for rc in free]
        return max(scored, key=lambda t: (t[0], t[1]))[2]

    # --- HTTP / websocket routing ------------------------------------------------------------
    def _route(self, request):
        upgrade = (request.headers.get("Upgrade") or "").lower()
        if upgrade == "websocket":
            if self._refusing():
                self.fault("refuse", client=0, until=round(self.refuse_until, 3))
                return WSUpgradeResponseWithListener(
                    WSUpgradeResponse.create_error_response(503, b"refused (fault: refuse)\n"), None)
            self.connections += 1
            return _ClientListener(self, str(self.connections), self.connections)
        path = request.path.decode("latin-1") if isinstance(request.path, (bytes, bytearray)) else str(request.path)
        method = request.method.decode("latin-1") if isinstance(request.method, (bytes, bytearray)) else str(request.method)
        status, _delay = self.rest_fault(path) if method.upper() == "GET" else (0, 0.0)
        if status:  # (no delay here: picows' upgrade handler answers synchronously)
            return WSUpgradeResponseWithListener(
                WSUpgradeResponse.create_error_response(status, _fault_body(status)), None)
        body = self.rest_answer(path)
        if method.upper() != "GET" or body is None:
            log.info("REST %s %s -> 404", method, path)
            return WSUpgradeResponseWithListener(
                WSUpgradeResponse.create_error_response(404, b"not found in the capture\n"), None)
        log.info("REST GET %s -> 200 (%d bytes)", path, len(body))
        response = WSUpgradeResponse.create_ok_response(body, {"Content-Type": "application/json"})
        if not body:
            response.headers["Content-Length"] = "0"
        return WSUpgradeResponseWithListener(response, None)

    def rest_answer(self, path: str) -> bytes | None:
        """The recorded body for ``path?query`` (repeated requests get later recordings, then the last)."""
        if urllib.parse.urlsplit(path).path == INFO_PATH:
            return json.dumps(self.info()).encode()
        answers = self.rest.get(path)
        if not answers:
            return None
        n = self._rest_served.get(path, 0)
        self._rest_served[path] = n + 1
        return answers[min(n, len(answers) - 1)]

    def info(self) -> dict:
        return {
            "exchange": self.exchange,
            "urls": [rc.url for rc in self.recordings],
            "connections": len(self.recordings),
            "frames": [len(rc.frames) for rc in self.recordings],
            "rest": sorted(self.rest),
        }

    # --- life --------------------------------------------------------------------------------
    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The REST listener (``rest_port``): one GET or POST per TCP connection, answered as
        the websocket port answers a GET, but able to wait (``rest-delay``)."""
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            length = 0
            while True:  # the headers
                h = await asyncio.wait_for(reader.readline(), 10)
                if h in (b"\r\n", b"\n", b""):
                    break
                name, _, value = h.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length" and value.strip().isdigit():
                    length = min(int(value.strip()), 1 << 20)
            if length:  # a POST's body: read, not used (the answer is the one recorded for the path)
                await asyncio.wait_for(reader.readexactly(length), 10)
            method, _, rest = line.decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0] or "/"
            status, delay = self.rest_fault(path) if method in _ANSWERED else (0, 0.0)
            if delay:
                self.fault("rest-delay", path=path, seconds=delay)
                await asyncio.sleep(delay)
            if status:
                body = _fault_body(status)
            else:
                body = self.rest_answer(path) if method in _ANSWERED else None
                status = 200 if body is not None else 404
                log.info("REST %s %s -> %d", method, path, status)
                if body is None:
                    body = b"not found in the capture\n"
            reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests"}.get(status, "Error")
            ctype = "application/json" if status != 404 else "text/plain"
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def start(self) -> None:
        server = await ws_create_server(self._route, self.host, self.port, logger_name="simulator",
                                        enable_auto_pong=not self.faults.stalls, max_frame_size=16 * 1024 * 1024)
        self.servers.append(server)
        self.port = server.sockets[0].getsockname()[1]
        if self.rest_port is not None and self.rest_port != self.port:
            # (plain asyncio: picows' upgrade handler refuses a POST, which this listener answers)
            rest_server = await asyncio.start_server(self._http, self.host, self.rest_port)
            self.servers.append(rest_server)
            self.rest_port = rest_server.sockets[0].getsockname()[1]
        else:
            self.rest_port = self.port

    @property
    def url(self) -> str:
        return f"ws://{_host_for_url(self.host)}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{_host_for_url(self.host)}:{self.rest_port}"

    async def serve_forever(self) -> None:
        await asyncio.gather(*(s.serve_forever() for s in self.servers))

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for client in list(self.clients):
            if client.transport is not None:
                client.transport.disconnect(graceful=False)
        for server in self.servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 2.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                pass
        if self._own_fault_file and self._fault_file is not None:
            self._fault_file.close()
            self._fault_file = None


#: the HTTP methods answered from the recordings: a POST (a venue's websocket token, KuCoin's
#: ``bullet-public``) gets the answer recorded for its path, as a GET does
_ANSWERED = ("GET", "POST")


def _fault_body(status: int) -> bytes:
    return json.dumps({"code": -status, "msg": f"simulated HTTP {status} (fault: rest-status)"}).encode()


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


__all__ = ["FAULT_GRAMMAR", "INFO_PATH", "FaultPlan", "FaultSpecError", "MarketFrames", "RecordedConnection",
           "Simulator", "load_recordings", "multiply_markets"]
