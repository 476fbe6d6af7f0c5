"""level4's ``Control`` service (package ``level4.rpc``), served by every `atomfast serve` node.

Any node answers any call: the desired markets and the nodes' reports come from Kafka (see
cluster.py), so a client may talk to whichever node it likes, and keeps working when a node dies.

- StartMarket: the market is checked (id > 0, a known exchange and type, a symbol the exchange
  lists), refused when its id is in use (ALREADY_EXISTS) or when no live node has room
  (RESOURCE_EXHAUSTED), else written to the desired set with a slot on the node with the most
  room; the reply names that node. Errors change nothing.
- StopMarket: by id (the other fields are not needed); NOT_FOUND when no such market.
- ListActiveMarkets: the desired set (markets started and not stopped, wherever they run; a
  market waiting for room is listed too: IsMarketOnline tells whether it runs).
- ListNodes: the live members of the consumer group, with the markets each runs and its
  MAX_DATA_FEEDS.
- IsMarketOnline: the node owning the market's slot is alive and reports the market ``online``
  (connected, and events of its symbol published since the last connect).

Errors are gRPC statuses with one clear message naming the field: INVALID_ARGUMENT (bad market,
an id <= 0, a text field over ``MAX_FIELD`` characters, bytes that are no request of the call's
type), ALREADY_EXISTS, NOT_FOUND, RESOURCE_EXHAUSTED (capacity; a request over
``MAX_REQUEST_BYTES``), UNAVAILABLE (Kafka or the exchange's listing cannot be reached),
UNAUTHENTICATED (token). With a token configured, calls carry metadata
``authorization: Bearer <token>`` (or ``x-atomfast-token: <token>``); a refused call is counted
and logged once per kind (no token, wrong token; then every 1000th), never with a token's value.

The server is grpcio's threaded server: calls run in its worker threads, reading the cluster
view (thread-safe) and handing work that needs the event loop (fetching a listing) to it.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from concurrent import futures
from typing import Any

import grpc

from google.protobuf.message import DecodeError

from ..collector import StartError
from ..metrics import ErrorLog
from . import level4_pb2 as pb
from . import level4_pb2_grpc as pb_grpc
from .cluster import Cluster, ClusterError, Member, NodeRecord
from .markets import MarketError, MarketSpec, parse_market
from .placement import choose, owner_of, total_capacity

log = logging.getLogger("atomfast.control.server")

REPLY_WAIT = 3.0  # s a Start/Stop reply waits for the owning node to report the change
REBALANCE_WAIT = 10.0  # s a StartMarket that finds no room waits for a rebalance in progress to settle
MAX_REQUEST_BYTES = 64 * 1024  # a request is a few hundred bytes; grpcio's default would be 4 MiB


def market_message(spec: MarketSpec) -> pb.Market:
    return pb.Market(id=spec.id, base_symbol=spec.base_symbol, quote_symbol=spec.quote_symbol,
                     exchange_name=spec.exchange_name, type=spec.type)


class ControlService(pb_grpc.ControlServicer):
    def __init__(self, cluster: Cluster, node: Any, loop: asyncio.AbstractEventLoop, known_exchanges: Any,
                 timeout: float = 10.0) -> None:
        self.cluster = cluster
        self.node = node
        self.loop = loop
        self.known = known_exchanges
        self.timeout = timeout
        self._start_lock = threading.Lock()

    # --- helpers -------------------------------------------------------------------------------
    def _node_message(self, member: Member | None, records: dict[str, NodeRecord] | None = None,
                      fallback: str = "") -> pb.Node:
        if member is None:
            return pb.Node(name=fallback)
        records = records if records is not None else self.cluster.node_records()
        rec = records.get(member.name)
        if rec is None:
            return pb.Node(name=member.name)
        return pb.Node(name=member.name, active_market_count=len(rec.markets), max_active_markets=rec.max_feeds)

    def _sync(self, context) -> None:
        if not self.cluster.sync(self.timeout):
            context.abort(grpc.StatusCode.UNAVAILABLE, "cannot read the cluster state from Kafka")

    def _rebalancing(self, members: list[Member], records: dict[str, NodeRecord]) -> bool:
        """True while the group is not settled: a member without slots or without a report."""
        return (self.cluster.group_state not in ("", "STABLE")
                or any(not m.slots or m.name not in records for m in members))

    def _wait_report(self, name: str, market_id: int, present: bool) -> None:
        deadline = time.monotonic() + REPLY_WAIT
        while time.monotonic() < deadline:
            rec = self.cluster.node_records().get(name)
            if rec is not None and (market_id in rec.markets) == present:
                return
            time.sleep(0.05)

    # --- the calls -----------------------------------------------------------------------------
    def StartMarket(self, request, context):
        try:
            spec = parse_market(request.market if request.HasField("market") else None, self.known)
        except MarketError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        spec = self._resolve(spec, context)
        self._check_id(spec, context)
        with self._start_lock:
            self._sync(context)
            table = self.cluster.markets()
            have = table.get(spec.id)
            if have is not None:
                context.abort(grpc.StatusCode.ALREADY_EXISTS,
                              f"market id {spec.id} is already in use: {have.spec.exchange}:{have.spec.symbol} "
                              f"{have.spec.type}")
            members = self.cluster.members(max_age=1.0)
            records = self.cluster.node_records()
            choice = choose(members, records, table)
            deadline = time.monotonic() + REBALANCE_WAIT
            while choice is None and time.monotonic() < deadline and self._rebalancing(members, records):
                time.sleep(0.2)  # a node is joining or leaving: its room shows once the group settles
                members = self.cluster.refresh_members() or members
                records = self.cluster.node_records()
                choice = choose(members, records, table)
            if choice is None:
                nodes, total = total_capacity(members, records)
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"no node has room for market {spec.id}: {len(table)} market(s) on {nodes} node(s) "
                              f"with {total} feed(s) in all (MAX_DATA_FEEDS per node)")
            member, slot = choice
            try:
                offset = self.cluster.write_market(spec, slot)
            except ClusterError as exc:
                context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            if not self.cluster.wait_applied(self.cluster.names.markets, offset, self.timeout):
                context.abort(grpc.StatusCode.UNAVAILABLE, "the market was written but is not readable back yet")
            earlier = self.cluster.replaced(offset)
            if earlier is not None and earlier.spec != spec:
                # another node accepted the same id just before us: the log says it was first
                try:
                    self.cluster.restore_market(earlier)
                except ClusterError as exc:
                    log.error("restoring market %s after a duplicate start: %s", earlier.spec.label(), exc)
                context.abort(grpc.StatusCode.ALREADY_EXISTS,
                              f"market id {spec.id} is already in use: {earlier.spec.exchange}:{earlier.spec.symbol} "
                              f"{earlier.spec.type}")
        log.info("StartMarket %s -> %s (slot %d)", spec.label(), member.name, slot)
        self._wait_report(member.name, spec.id, True)
        return pb.StartMarketReply(market=request.market, node=self._node_message(member))

    def _resolve(self, spec: MarketSpec, context) -> MarketSpec:
        fut = asyncio.run_coroutine_threadsafe(self.node.resolver.check(spec), self.loop)
        try:
            return fut.result(30.0)
        except MarketError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"market {spec.id}: {exc}")
        except StartError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"market {spec.id}: {spec.exchange}: {exc}")
        except futures.TimeoutError:
            fut.cancel()
            context.abort(grpc.StatusCode.UNAVAILABLE, f"market {spec.id}: {spec.exchange}: no instrument listing within 30 s")
        raise AssertionError("unreachable")

    def _check_id(self, spec: MarketSpec, context) -> None:
        """A sink that keys records by market id (the level4 topic profile) may refuse an id, and
        makes room for it (partitions) before the market starts."""
        check = getattr(self.node.sink, "check_market_id", None)
        problem = check(spec.id) if check is not None else None
        if problem:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"market.id {spec.id}: {problem}")
        ensure = getattr(self.node.sink, "ensure_partitions", None)
        if ensure is not None:
            try:
                ensure(spec.id)
            except Exception as exc:  # noqa: BLE001 - Kafka's admin API: the call cannot be served now
                context.abort(grpc.StatusCode.UNAVAILABLE, f"market {spec.id}: {exc}")

    @staticmethod
    def _market_id(request, context) -> int:
        """The request's market.id, checked (INVALID_ARGUMENT when missing or not positive)."""
        if not request.HasField("market"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "market is required (market.id names the market)")
        mid = request.market.id
        if mid <= 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"market.id must be a positive integer, not {mid}")
        return mid

    def StopMarket(self, request, context):
        mid = self._market_id(request, context)
        self._sync(context)
        rec = self.cluster.markets().get(mid)
        if rec is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no active market with id {mid}")
        owner = owner_of(rec.slot, self.cluster.members(max_age=1.0))
        try:
            offset = self.cluster.delete_market(mid)
        except ClusterError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        self.cluster.wait_applied(self.cluster.names.markets, offset, self.timeout)
        log.info("StopMarket %s", rec.spec.label())
        if owner is not None:
            self._wait_report(owner.name, mid, False)
        return pb.StopMarketReply(market=market_message(rec.spec), node=self._node_message(owner))

    def ListNodes(self, request, context):
        members = self.cluster.members(max_age=1.0)
        records = self.cluster.node_records()
        seen: dict[str, pb.Node] = {}
        for m in members:
            if m.name in seen:
                continue  # a restarted node whose old member has not expired yet
            seen[m.name] = self._node_message(m, records)
        return pb.ListNodesReply(nodes=[seen[n] for n in sorted(seen)])

    def ListActiveMarkets(self, request, context):
        self.cluster.sync(self.timeout)
        table = self.cluster.markets()
        return pb.ListMarketsReply(markets=[market_message(table[i].spec) for i in sorted(table)])

    def IsMarketOnline(self, request, context):
        mid = self._market_id(request, context)
        rec = self.cluster.markets().get(mid)
        if rec is None:
            return pb.MarketOnlineReply(is_online=False)
        owner = owner_of(rec.slot, self.cluster.members(max_age=2.0))
        if owner is None:
            return pb.MarketOnlineReply(is_online=False)
        report = self.cluster.node_records().get(owner.name)
        online = (report is not None and not report.left and report.member_id in ("", owner.member_id)
                  and report.markets.get(mid) == "online")
        return pb.MarketOnlineReply(is_online=online)


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses calls without the shared token (UNAUTHENTICATED); each refusal is counted and
    logged once per kind ("no token", "wrong token"), then every 1000th, with the method and the
    peer but never a token's value."""

    def __init__(self, token: str, errors: ErrorLog | None = None) -> None:
        self._token = token.encode()
        self.errors = errors if errors is not None else ErrorLog(log)

        def refuse(kind: str):
            def deny(request, context):
                self.errors.report(f"unauthenticated call ({kind})", f"refused {context.peer()}")
                context.abort(grpc.StatusCode.UNAUTHENTICATED,
                              "missing or wrong token (authorization: Bearer <token>)")
            return grpc.unary_unary_rpc_method_handler(deny)

        self._missing = refuse("no token")
        self._wrong = refuse("wrong token")

    @property
    def refused(self) -> int:
        return sum(n for kind, n in self.errors.counts.items() if kind.startswith("unauthenticated call"))

    def intercept_service(self, continuation, handler_call_details):
        given = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                given = value[7:] if value.startswith("Bearer ") else ""
            elif key == "x-atomfast-token":
                given = value
        if given is None:
            return self._missing
        if isinstance(given, str):
            given = given.encode()
        if given and hmac.compare_digest(given, self._token):
            return continuation(handler_call_details)
        return self._wrong


class _Malformed:
    """What a request that does not decode becomes: the call answers INVALID_ARGUMENT."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _tolerant(cls):
    def parse(data: bytes):
        try:
            return cls.FromString(data)
        except (DecodeError, ValueError) as exc:  # truncated, garbage, a string that is not UTF-8
            return _Malformed(f"malformed {cls.__name__}: {str(exc)[:200] or 'cannot decode it'}")
    return parse


def _checked(behaviour):
    def call(request, context):
        if isinstance(request, _Malformed):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        return behaviour(request, context)
    return call


def add_service(service: ControlService, server: grpc.Server) -> None:
    """``pb_grpc.add_ControlServicer_to_server``, except that bytes that are no request of the
    call's type answer INVALID_ARGUMENT naming the type (grpcio: INTERNAL "Exception
    deserializing request!")."""
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["Control"].methods:
        request_cls = getattr(pb, method.input_type.name)
        reply_cls = getattr(pb, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _checked(getattr(service, method.name)), request_deserializer=_tolerant(request_cls),
            response_serializer=reply_cls.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("level4.rpc.Control", handlers),))
    server.add_registered_method_handlers("level4.rpc.Control", handlers)


def make_server(service: ControlService, host: str, port: int, *, token: str | None = None,
                tls_cert: bytes | None = None, tls_key: bytes | None = None,
                workers: int = 8) -> tuple[grpc.Server, int]:
    """A started threaded gRPC server; (server, bound port)."""
    interceptors = [TokenInterceptor(token)] if token else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
                         interceptors=interceptors,
                         options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", MAX_REQUEST_BYTES)])
    add_service(service, server)
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    if tls_cert and tls_key:
        bound = server.add_secure_port(address, grpc.ssl_server_credentials([(tls_key, tls_cert)]))
    else:
        bound = server.add_insecure_port(address)
    if not bound:
        raise OSError(f"cannot listen on {address}")
    server.start()
    return server, bound


__all__ = ["MAX_REQUEST_BYTES", "ControlService", "TokenInterceptor", "add_service", "make_server", "market_message"]
