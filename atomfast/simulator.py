"""A local exchange: replays a capture over a real websocket, and serves its recorded REST answers.

One picows server (``ws_create_server``) on HOST:PORT does both:

- websocket upgrade requests get a replay: each client connection is matched to one recorded
  connection of the capture and, after the client's first message (its subscribe), receives that
  connection's recorded received frames, all of them, byte-identical and in order (text frames as
  text, binary as binary), at recorded pace or as fast as flow control lets it;
- plain HTTP GET requests (no ``Upgrade: websocket``) are answered from the capture's REST
  recordings, from picows' upgrade handler: ``GET path?query`` -> the recorded body (200), else
  404. REST is therefore served on the SAME port as the websocket (``--rest-port R`` adds a
  second listener on R, same behaviour). ``GET /_atomfast/capture`` describes the capture
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

Recorded frames are held in memory.
"""
from __future__ import annotations

import asyncio
import difflib
import json
import logging
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

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


@dataclass
class RecordedConnection:
    """One recorded websocket connection: what the client sent, what it received."""

    number: int
    url: str = ""
    sent: list[bytes] = field(default_factory=list)
    frames: list[tuple[int, bytes, bool]] = field(default_factory=list)  # (ts_ns, payload, binary)
    cursor: int = 0  # next frame for a resumed client (resume mode)
    busy: int = 0  # clients currently served from it


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

    def __init__(self, sim: "Simulator", peer: str) -> None:
        super().__init__()
        self.sim = sim
        self.peer = peer
        self.transport = None
        self.recording: RecordedConnection | None = None
        self.task: asyncio.Task | None = None
        self.writable = asyncio.Event()
        self.writable.set()
        self.received: list[bytes] = []

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
        elif mt is WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(WSCloseCode.OK)
            transport.disconnect()

    def on_ws_disconnected(self, transport) -> None:
        self.sim.clients.discard(self)
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
        self._rest_served: dict[str, int] = {}
        self.clients: set[_ClientListener] = set()
        self.servers: list[asyncio.AbstractServer] = []
        self.frames_sent = 0
        self.connections = 0  # client websocket connections accepted

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
            self.connections += 1
            return _ClientListener(self, str(self.connections))
        path = request.path.decode("latin-1") if isinstance(request.path, (bytes, bytearray)) else str(request.path)
        method = request.method.decode("latin-1") if isinstance(request.method, (bytes, bytearray)) else str(request.method)
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
    async def start(self) -> None:
        server = await ws_create_server(self._route, self.host, self.port, logger_name="simulator",
                                        enable_auto_pong=True, max_frame_size=16 * 1024 * 1024)
        self.servers.append(server)
        self.port = server.sockets[0].getsockname()[1]
        if self.rest_port is not None and self.rest_port != self.port:
            rest_server = await ws_create_server(self._route, self.host, self.rest_port, logger_name="simulator")
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


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


__all__ = ["INFO_PATH", "RecordedConnection", "Simulator", "load_recordings"]
