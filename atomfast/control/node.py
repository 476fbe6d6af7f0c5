"""One `atomfast serve` node's feeds: the markets of the slots it owns, up to MAX_DATA_FEEDS.

Runs on the node's event loop (uvloop), beside nothing else: each market is one ``FeedGroup``
(atomfast/feed.py) over the exchange's scheme for that one symbol, assembled by the collector
from a ``FeedSpec`` as for ``atomfast run`` (``atomfast.collector.prepare`` / ``resolve`` /
``validate``: settings, the scheme, the instrument listing over REST, which is cached per
exchange; then ``build_feed``), writing through its own ``Pipeline`` into the node's one shared
sink (Kafka). Only events of the market's own symbol (and connection-wide status events) pass:
a local simulator replays whole recorded connections.

``reconcile()`` (after any change of the desired markets, the owned slots or the group) makes the
running set the markets of the owned slots: stops what is no longer ours (StopMarket: status
``stopped``; moved away: ``handover``), starts what is (``started``, or ``moved`` with the node
it came from when another node ran it before), keeps running feeds first when the slots hold more
than MAX_DATA_FEEDS, and moves the excess to nodes with room, or reports it (``unplaced``).
A market whose feed cannot start (the listing unreachable, ...) is reported ``failed`` and
retried with backoff; the feed itself reconnects forever.

Market states in the node's report: ``starting`` (resolving, connecting), ``online`` (an event of
the market's own symbol published since the last connect), ``offline`` (disconnected,
reconnecting), ``failed``.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Callable

from ..collector import FeedSpec, Setup, StartError, UsageError, build_feed, prepare, resolve, split_list, validate
from ..events import Status
from ..pipeline import Pipeline
from .cluster import Cluster, MarketRecord, NodeRecord
from .markets import MarketError, MarketSpec, resolve_symbol
from .placement import choose, owner_of

log = logging.getLogger("atomfast.control.node")

LISTING_TTL = 900.0  # s an instrument listing is reused
RETRY_CAP = 60.0
RELEASED_KEEP = 120.0  # s a handed-over market stays in the node's report (for "moved from")


def _now_ns() -> int:
    return time.time_ns()


class Resolver:
    """Market -> its ``FeedSpec`` and a ready ``Setup`` (scheme, instruments, endpoints), by the
    collector as for ``atomfast run``."""

    def __init__(self, endpoints: dict[str, str] | None = None, rest_endpoints: dict[str, str] | None = None,
                 schemes: dict[str, str] | None = None, channels: str | None = None, backoff: float = 0.5) -> None:
        self.endpoints = endpoints or {}
        self.rest_endpoints = rest_endpoints or {}
        self.schemes = schemes or {}
        self.channels = channels
        self.backoff = backoff
        self._cache: dict[str, tuple[float, Any, dict]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def feed_spec(self, spec: MarketSpec) -> FeedSpec:
        """The collector's spec of a market: its exchange and symbol, the node's endpoints,
        scheme and channels for that exchange, reconnecting forever."""
        return FeedSpec(
            spec.exchange, symbols=split_list(spec.symbol),
            channels=split_list(self.channels), endpoint=self.endpoints.get(spec.exchange),
            rest_endpoint=self.rest_endpoints.get(spec.exchange), scheme=self.schemes.get(spec.exchange),
            max_retries=None, backoff=self.backoff,
        )

    async def setup(self, spec: MarketSpec) -> Setup:
        """The Setup for ``spec`` with the symbol as the listing names it. Raises MarketError
        (a market the exchange does not list, bad channels) or ``StartError`` (the listing
        cannot be fetched)."""
        try:
            setup = prepare(self.feed_spec(spec), "serve")
        except UsageError as exc:
            raise MarketError(str(exc)) from None
        key = f"{spec.exchange}|{setup.endpoint}|{setup.rest_base}|{getattr(setup.scheme_cls, '__name__', '')}"
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self._cache.get(key)
            if hit is not None and time.monotonic() - hit[0] < LISTING_TTL:
                setup.scheme_cls, setup.instruments = hit[1], hit[2]
            else:
                await resolve(setup)
                self._cache[key] = (time.monotonic(), setup.scheme_cls, setup.instruments)
        listed = {i.symbol for i in setup.instruments.values()}
        symbol = resolve_symbol(spec.symbol, spec.type, listed, dict(getattr(setup.scheme_cls, "aliases", {}) or {}))
        setup.symbols = [symbol]
        try:
            validate(setup)
        except UsageError as exc:
            raise MarketError(str(exc)) from None
        return setup

    async def check(self, spec: MarketSpec) -> MarketSpec:
        """``spec`` with its symbol resolved against the exchange's listing."""
        setup = await self.setup(spec)
        return MarketSpec(spec.id, spec.base_symbol, spec.quote_symbol, spec.exchange_name, spec.type, spec.exchange,
                          setup.symbols[0])


class MarketFeed:
    """One market on this node: its FeedGroup, across retries."""

    def __init__(self, node: "Node", rec: MarketRecord) -> None:
        self.node = node
        self.rec = rec
        self.spec = rec.spec
        self.state = "starting"
        self.group = None
        self.task: asyncio.Task | None = None
        self.stopping = False
        self.stop_reason = ""
        self.stop_status = "stopped"
        self.failures = 0

    @property
    def id(self) -> int:
        return self.spec.id

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.node.state_changed()

    def emit_filter(self, emit: Callable[[str, tuple], None]) -> Callable[[str, tuple], None]:
        symbol = self.spec.symbol

        def filtered(topic: str, record: tuple) -> None:
            s = record[1]
            if s == symbol:
                emit(topic, record)
                if self.state != "online" and topic != "status":
                    self._set_state("online")
            elif not s:
                emit(topic, record)
                if topic == "status" and record[2] == "disconnected" and not self.stopping:
                    self._set_state("offline")

        return filtered

    async def run(self) -> None:
        node = self.node
        await node.announce(self.rec)
        while not self.stopping:
            try:
                setup = await node.resolver.setup(self.spec)
            except (MarketError, StartError) as exc:
                await self._failed(str(exc))
                continue
            if self.stopping:
                break
            try:
                pipeline = Pipeline(node.market_sink(self.spec), node.metrics)
                self.group = build_feed(setup, node.resolver.feed_spec(self.spec), pipeline,
                                        emit=self.emit_filter(pipeline.emit))
            except Exception as exc:  # noqa: BLE001 - a scheme that cannot be built: report, retry
                await self._failed(f"{type(exc).__name__}: {exc}")
                continue
            if self.stopping:
                break
            self.failures = 0
            reason = await self.group.run()
            try:
                pipeline.end_frame()
            except Exception:  # noqa: BLE001
                pass
            if self.stopping:
                break
            await self._failed(f"feed ended: {reason}")

    async def _failed(self, reason: str) -> None:
        self.failures += 1
        self._set_state("failed")
        delay = min(RETRY_CAP, 2.0 * 2 ** min(self.failures - 1, 6))
        log.warning("market %s: %s; retrying in %.0f s", self.spec.label(), reason, delay)
        self.node.status(self.spec, "failed", f"market {self.spec.id} on {self.node.name}: {reason}; retry in {delay:.0f} s")
        try:
            await asyncio.wait_for(self._stop_event().wait(), delay)
        except asyncio.TimeoutError:
            pass
        if not self.stopping:
            self._set_state("starting")

    def _stop_event(self) -> asyncio.Event:
        ev = getattr(self, "_ev", None)
        if ev is None:
            ev = self._ev = asyncio.Event()
            if self.stopping:
                ev.set()
        return ev

    def stop(self, status: str, reason: str) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.stop_status, self.stop_reason = status, reason
        self._stop_event().set()
        if self.group is not None:
            self.group.stop(reason)
        elif self.task is not None:
            self.task.cancel()


class Node:
    """The node's feeds, reconciled with the cluster view; see the module doc."""

    def __init__(self, name: str, max_feeds: int, cluster: Cluster, sink: Any, metrics: Any, resolver: Resolver,
                 rpc_address: str = "", relocate_interval: float = 2.0) -> None:
        self.name = name
        self.max_feeds = max_feeds
        self.cluster = cluster
        self.sink = sink
        self.metrics = metrics
        self.resolver = resolver
        self.rpc_address = rpc_address
        self.relocate_interval = relocate_interval
        self.loop: asyncio.AbstractEventLoop | None = None
        self.feeds: dict[int, MarketFeed] = {}
        self.excess: list[int] = []
        self.unplaced: set[int] = set()
        self.released: dict[int, int] = {}  # market id -> ms it was handed over
        self.closing = False
        self._pending = False
        self._report_pending = False
        self._last_report: tuple | None = None
        self._control = Pipeline(sink, metrics)
        self._relocating = False
        self._timer: asyncio.TimerHandle | None = None

    # --- thread-safe entry points (cluster threads) ---------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._timer = loop.call_later(self.relocate_interval, self._periodic)

    def changed(self) -> None:
        """The cluster view changed (any thread)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.schedule)

    def slots_assigned(self, slots: set[int]) -> None:
        self.changed()

    def slots_revoked(self, slots: set[int]) -> None:
        """Called by the group thread; returns once the feeds of ``slots`` are stopped, so that
        no market ever runs on two nodes because of a rebalance."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        reason = "node leaving" if self.closing else "rebalance"
        fut = asyncio.run_coroutine_threadsafe(self.release(slots, reason), loop)
        try:
            fut.result(15.0)
        except Exception as exc:  # noqa: BLE001
            log.warning("releasing slots %s: %s", sorted(slots), exc)

    def slots_lost(self, slots: set[int]) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self.release(slots, "group session lost")))

    # --- loop side -------------------------------------------------------------------------------
    def schedule(self) -> None:
        if not self._pending and self.loop is not None:
            self._pending = True
            self.loop.call_soon(self.reconcile)

    def state_changed(self) -> None:
        if not self._report_pending and self.loop is not None:
            self._report_pending = True
            self.loop.call_later(0.02, self.report)

    def market_sink(self, spec: MarketSpec) -> Any:
        """Where a market's events go: the node's sink; or, when the sink keys records by market
        id (``for_market``: the level4 topic profile, atomfast/sinks/level4.py), that market's
        own sink, which knows the id StartMarket gave."""
        for_market = getattr(self.sink, "for_market", None)
        return self.sink if for_market is None else for_market(spec.id, self.name)

    def status(self, spec: MarketSpec, status: str, reason: str) -> None:
        """A control event on the status topic (market's exchange and symbol)."""
        now = _now_ns()
        try:
            pipe = self._control if not hasattr(self.sink, "for_market") else Pipeline(self.market_sink(spec), self.metrics)
            pipe.emit("status", Status(spec.exchange, spec.symbol, status, reason, now // 1_000_000, now // 1000))
            pipe.end_frame()
        except Exception as exc:  # noqa: BLE001
            log.warning("cannot publish status %s for %s: %s", status, spec.label(), exc)
        log.info("market %s: %s (%s)", spec.label(), status, reason)

    def owned_records(self) -> dict[int, MarketRecord]:
        owned = set(self.cluster.owned)
        return {i: r for i, r in self.cluster.markets().items() if r.slot in owned}

    def reconcile(self) -> None:
        self._pending = False
        if self.closing:
            return
        table = self.cluster.markets()
        owned = set(self.cluster.owned)
        mine = {i: r for i, r in table.items() if r.slot in owned}
        for mid, feed in list(self.feeds.items()):
            rec = mine.get(mid)
            if rec is None:
                if mid not in table:
                    self._stop(feed, "stopped", f"market {mid} stopped (StopMarket) on {self.name}")
                else:
                    moved = table[mid]
                    owner = owner_of(moved.slot, self.cluster.members())
                    to = owner.name if owner is not None else f"slot {moved.slot}"
                    self._stop(feed, "handover", f"market {mid} handed over from {self.name} to {to}")
            elif rec.spec != feed.spec:
                self._stop(feed, "handover", f"market {mid} redefined; restarting on {self.name}")
            else:
                feed.rec = rec
        running = [i for i, f in self.feeds.items() if not f.stopping]
        room = self.max_feeds - len(running)
        waiting = sorted(i for i in mine if i not in self.feeds)
        for mid in waiting[:max(0, room)]:
            self._start(mine[mid])
        self.excess = waiting[max(0, room):]
        for mid in list(self.unplaced):
            if mid not in self.excess:
                self.unplaced.discard(mid)
        if self.excess:
            self._relocate_soon()
        self.state_changed()

    def _start(self, rec: MarketRecord) -> None:
        assert self.loop is not None
        feed = MarketFeed(self, rec)
        self.feeds[rec.spec.id] = feed
        feed.task = self.loop.create_task(self._run_feed(feed), name=f"market-{rec.spec.id}")

    async def announce(self, rec: MarketRecord) -> None:
        """Status ``started``, or ``moved`` naming the node that ran the market before and why it
        no longer does (asks the group coordinator first: a dead node is gone from it by the time
        its slots are reassigned)."""
        prev = self._previous_runner(rec)
        if prev is None:
            self.status(rec.spec, "started", f"market {rec.spec.id} on {self.name}")
            return
        loop = asyncio.get_running_loop()
        members = await loop.run_in_executor(None, self.cluster.refresh_members, 2.0, self.cluster.assigned_at)
        if members is None:
            members = self.cluster.members()
        report = self.cluster.node_records().get(prev)
        if prev not in {m.name for m in members}:
            why = f"{prev} left the group"
        elif report is not None and rec.spec.id in report.released:
            why = "rebalance" if rec.op != "move" else f"no room on {prev}"
        else:
            why = "rebalance"
        self.status(rec.spec, "moved", f"market {rec.spec.id} moved from {prev} to {self.name} ({why})")

    def _previous_runner(self, rec: MarketRecord) -> str | None:
        """The node that ran this market (this definition of it) most lately, if another."""
        mid = rec.spec.id
        best = None
        for name, nr in self.cluster.node_records().items():
            if name == self.name:
                continue
            when = nr.released.get(mid, 0) if mid not in nr.markets else nr.ts
            if when < rec.ts or when == 0:
                continue
            if best is None or when > best[0]:
                best = (when, name)
        return best[1] if best else None

    async def _run_feed(self, feed: MarketFeed) -> None:
        try:
            await feed.run()
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001
            log.exception("market %s: feed crashed", feed.spec.label())
        finally:
            if self.feeds.get(feed.id) is feed:
                del self.feeds[feed.id]
            if feed.stopping:
                self.status(feed.spec, feed.stop_status, feed.stop_reason)
                if feed.stop_status == "handover":
                    self.released[feed.id] = int(time.time() * 1000)
            self.state_changed()
            self.schedule()

    def _stop(self, feed: MarketFeed, status: str, reason: str) -> None:
        feed.stop(status, reason)

    async def release(self, slots: set[int], reason: str) -> None:
        """Stop the feeds of ``slots`` and wait for them."""
        tasks = []
        for feed in list(self.feeds.values()):
            if feed.rec.slot in slots:
                if reason == "rebalance":
                    self._stop(feed, "handover", f"market {feed.id} handed over by {self.name} (rebalance)")
                elif reason == "node leaving":
                    self._stop(feed, "handover", f"market {feed.id} handed over: {self.name} is leaving")
                else:
                    self._stop(feed, "handover", f"market {feed.id} dropped by {self.name}: {reason}")
                if feed.task is not None:
                    tasks.append(feed.task)
        if tasks:
            await asyncio.wait(tasks, timeout=10.0)
        self.report()

    async def stop_all(self, reason: str) -> None:
        self.closing = True
        tasks = []
        for feed in list(self.feeds.values()):
            self._stop(feed, "handover", f"market {feed.id} handed over: {self.name} is {reason}")
            if feed.task is not None:
                tasks.append(feed.task)
        if tasks:
            await asyncio.wait(tasks, timeout=10.0)

    # --- report ------------------------------------------------------------------------------------
    def record(self, left: bool = False) -> NodeRecord:
        markets = {} if left else {i: f.state for i, f in self.feeds.items() if not f.stopping}
        now = int(time.time() * 1000)
        for mid, when in list(self.released.items()):
            if now - when > RELEASED_KEEP * 1000 or mid in markets:
                del self.released[mid]
        return NodeRecord(self.name, self.max_feeds, self.rpc_address, self.cluster.member_id, markets,
                          now, left, dict(self.released))

    def report(self, force: bool = False) -> None:
        self._report_pending = False
        rec = self.record()
        sig = (rec.member_id, tuple(sorted(rec.markets.items())), rec.max_feeds, rec.rpc,
               tuple(sorted(rec.released.items())))
        if not force and sig == self._last_report:
            return
        self._last_report = sig
        self.cluster.publish_node(rec)

    def final_report(self) -> None:
        self.cluster.publish_node(self.record(left=True))

    # --- excess: move it where there is room, or report it -----------------------------------------
    def _periodic(self) -> None:
        assert self.loop is not None
        if self.closing:
            return
        if self.excess:
            self._relocate_soon(0.0)
        try:
            self.sink.poll()  # delivery reports of the status events, even with no feed running
        except Exception:  # noqa: BLE001
            pass
        if self.cluster.member_id and self._last_report and self._last_report[0] != self.cluster.member_id:
            self.report()
        self._timer = self.loop.call_later(self.relocate_interval, self._periodic)

    def _relocate_soon(self, jitter: float | None = None) -> None:
        if self._relocating or self.loop is None:
            return
        self._relocating = True
        delay = random.uniform(0.05, 0.5) if jitter is None else jitter
        self.loop.call_later(delay, lambda: asyncio.ensure_future(self._relocate()))

    async def _relocate(self) -> None:
        try:
            if self.closing or not self.excess:
                return
            loop = asyncio.get_running_loop()
            members = await loop.run_in_executor(None, self.cluster.members, 1.0)
            records = self.cluster.node_records()
            table = self.cluster.markets()
            me = self.cluster.member_id
            promised: dict[str, int] = {}
            for mid in list(self.excess):
                rec = table.get(mid)
                if rec is None or rec.slot not in self.cluster.owned or mid in self.feeds:
                    continue
                choice = choose(members, records, table, exclude=[me], extra=promised)
                if choice is None:
                    if mid not in self.unplaced:
                        self.unplaced.add(mid)
                        self.status(rec.spec, "unplaced",
                                    f"market {mid}: no node has room (MAX_DATA_FEEDS {self.max_feeds} on {self.name}); "
                                    "kept in the desired set, placed when room appears")
                    continue
                member, slot = choice
                try:
                    await loop.run_in_executor(None, self.cluster.write_market, rec.spec, slot, "move")
                except Exception as exc:  # noqa: BLE001
                    log.warning("moving market %s to %s: %s", rec.spec.label(), member.name, exc)
                    continue
                promised[member.member_id] = promised.get(member.member_id, 0) + 1
                self.unplaced.discard(mid)
                log.info("market %s: no room on %s, moved to %s (slot %d)", rec.spec.label(), self.name,
                         member.name, slot)
        finally:
            self._relocating = False

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        try:
            self._control.end_frame()
        except Exception:  # noqa: BLE001
            pass


__all__ = ["MarketFeed", "Node", "Resolver"]
