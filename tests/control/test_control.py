"""The Control service: level4's gRPC API on `atomfast serve`.

- unit: how a level4 Market maps to an exchange and a symbol; placement; the committed generated
  code matches level4.proto;
- one node on a real broker (MAX_DATA_FEEDS 3, markets served by the simulator): start / stop /
  list / nodes / online round trips, a duplicate id, an unknown exchange, type or symbol, capacity
  reached, each an error status that changes nothing; `atomfast ctl`; the shared token;
- every call goes through level4's own client: its proto file, unchanged, compiled with
  grpc_tools.protoc into a tmp dir at test time (tests/control/conftest.py, fixture ``level4``);
  the acceptance test also runs it as a level4 user's standalone program, without atomfast.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from atomfast.control.markets import (
    MarketError,
    MarketSpec,
    base_symbol_for,
    parse_market,
    resolve_symbol,
    split_symbol,
)

from atomfast.testing import (
    ROOT,
    ClusterHarness,
    MemorySink,
    ServeProcess,
    serve_env,
    statuses,
    wait_for,
)

# level4's own proto files (level4.proto and the elixirpb.proto it imports) are in
# ../shared/fixtures/level4, exactly as level4 ships them.

# A level4 client, as a level4 user would write it against stubs generated from level4's file.
LEVEL4_CLIENT = r'''
import json, sys, time
import grpc
import level4_pb2 as pb
import level4_pb2_grpc as rpc

stub = rpc.ControlStub(grpc.insecure_channel(sys.argv[1]))
out = {}
out["nodes"] = [[n.name, n.active_market_count, n.max_active_markets]
                for n in stub.ListNodes(pb.ListNodesRequest()).nodes]
m = pb.Market(id=42, base_symbol="ETH", quote_symbol="CHF", exchange_name="KRAKEN", type="SPOT")
reply = stub.StartMarket(pb.StartMarketRequest(market=m))   # declared as StopMarketReply in level4's file
out["start"] = [type(reply).__name__, reply.market.id, reply.market.base_symbol, reply.node.name]
try:
    stub.StartMarket(pb.StartMarketRequest(market=m))
except grpc.RpcError as e:
    out["duplicate"] = [e.code().name, e.details()]
deadline = time.time() + 30
while time.time() < deadline and not stub.IsMarketOnline(pb.MarketOnlineRequest(market=m)).is_online:
    time.sleep(0.2)
out["online"] = stub.IsMarketOnline(pb.MarketOnlineRequest(market=m)).is_online
out["markets"] = [[x.id, x.exchange_name, x.base_symbol, x.quote_symbol, x.type]
                  for x in stub.ListActiveMarkets(pb.ListMarketsRequest()).markets]
reply = stub.StopMarket(pb.StopMarketRequest(market=pb.Market(id=42)))
out["stop"] = [type(reply).__name__, reply.market.id, reply.market.exchange_name, reply.node.name]
out["online_after"] = stub.IsMarketOnline(pb.MarketOnlineRequest(market=m)).is_online
print(json.dumps(out))
'''

KNOWN = {"kraken", "kraken-futures", "coinbase", "binance", "binance-futures"}


class M:
    def __init__(self, id=1, base_symbol="BTC", quote_symbol="USD", exchange_name="kraken", type="SPOT"):
        self.id, self.base_symbol, self.quote_symbol, self.exchange_name, self.type = (
            id, base_symbol, quote_symbol, exchange_name, type)


# --- unit --------------------------------------------------------------------------------------

def test_market_types_map_to_normalised_symbols():
    assert base_symbol_for("btc", "usd", "SPOT") == "BTC-USD"
    assert base_symbol_for("BTC", "USDT", "PERP") == "BTC-USDT-PERP"
    assert base_symbol_for("BTC", "USD", "INVERSE") == "BTC-USD-PERP"
    assert base_symbol_for("BTC", "USD-20261225", "FUTURE") == "BTC-USD-20261225"
    assert base_symbol_for("BTC", "USD-20261225-100000-C", "OPTION") == "BTC-USD-20261225-100000-C"
    with pytest.raises(MarketError, match="expiry"):
        base_symbol_for("BTC", "USD", "FUTURE")
    with pytest.raises(MarketError, match="strike"):
        base_symbol_for("BTC", "USD-20261225", "OPTION")
    with pytest.raises(MarketError, match="base_symbol is required"):
        base_symbol_for("", "USD", "SPOT")


def test_parse_market_checks_every_field():
    spec = parse_market(M(7, "xbt", "usd", "KRAKEN", "spot"), KNOWN)
    assert (spec.id, spec.exchange, spec.type, spec.symbol, spec.exchange_name) == (7, "kraken", "SPOT", "XBT-USD", "KRAKEN")
    assert parse_market(M(exchange_name="Coinbase-Pro"), KNOWN).exchange == "coinbase"
    assert parse_market(M(exchange_name="KRAKEN_FUTURES", type="inverse"), KNOWN).exchange == "kraken-futures"
    for bad, msg in ((M(id=0), "positive"), (M(id=-3), "positive"), (M(exchange_name="nope"), "unknown exchange"),
                     (M(type="SWAP"), "unknown market type"), (M(type=""), "type is required"),
                     (M(quote_symbol="U SD"), "not an asset"), (M(exchange_name=""), "exchange_name is required")):
        with pytest.raises(MarketError, match=msg):
            parse_market(bad, KNOWN)
    with pytest.raises(MarketError, match="market is required"):
        parse_market(None, KNOWN)


def test_symbols_resolve_against_the_listing():
    listed = {"BTC-USD", "XRP-USD-PERP", "BTC-USD-PERP", "BTC-USD-PERP-INV"}
    assert resolve_symbol("XBT-USD", "SPOT", listed, {"XBT": "BTC"}) == "BTC-USD"
    assert resolve_symbol("XRP-USD-PERP", "INVERSE", listed, {}) == "XRP-USD-PERP"  # no linear twin
    assert resolve_symbol("BTC-USD-PERP", "INVERSE", listed, {}) == "BTC-USD-PERP-INV"
    assert resolve_symbol("BTC-USD-PERP", "PERP", listed, {}) == "BTC-USD-PERP"
    assert resolve_symbol("ANY-THING", "SPOT", set(), {}) == "ANY-THING"  # no listing: as given
    with pytest.raises(MarketError, match="lists no market ETH-USD"):
        resolve_symbol("ETH-USD", "SPOT", listed, {})


def test_ctl_symbol_syntax():
    assert split_symbol("btc/usd") == ("BTC", "USD", "SPOT")
    assert split_symbol("XRP-USD-PERP") == ("XRP", "USD", "PERP")
    assert split_symbol("BTC-USD-PERP-INV") == ("BTC", "USD", "INVERSE")
    assert split_symbol("BTC-USD-20261225") == ("BTC", "USD-20261225", "FUTURE")
    assert split_symbol("BTC-USD-20261225-100000-C") == ("BTC", "USD-20261225-100000-C", "OPTION")
    with pytest.raises(MarketError):
        split_symbol("BTCUSD")


def test_market_spec_json_round_trip():
    spec = MarketSpec(3, "XBT", "USD", "KRAKEN", "SPOT", "kraken", "BTC-USD")
    assert MarketSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_placement_prefers_room_and_the_emptiest_slot():
    from atomfast.control.cluster import MarketRecord, Member, NodeRecord
    from atomfast.control.placement import choose

    a = Member("a", "ma", "h", frozenset({0, 2}))
    b = Member("b", "mb", "h", frozenset({1, 3}))
    c = Member("c", "mc", "h", frozenset())  # joining: no slots yet
    records = {"a": NodeRecord("a", 2), "b": NodeRecord("b", 3), "c": NodeRecord("c", 5)}
    spec = MarketSpec(1, "B", "Q", "x", "SPOT", "x", "B-Q")
    table = {1: MarketRecord(spec, 0, 0), 2: MarketRecord(spec, 0, 1), 3: MarketRecord(spec, 1, 2)}
    assert choose([a, b, c], records, table) == (b, 3)  # a is full; b's slot 3 is empty
    assert choose([a, b], records, table, exclude=["mb"]) is None
    assert choose([a, b], records, table, extra={"mb": 2}) is None
    assert choose([a, b], {"a": NodeRecord("a", 2)}, table) is None  # b has not reported: unknown room


class _FakeCluster:
    """What a Node sees of the cluster: node a (MAX_DATA_FEEDS 1) owns slots 0-1 holding three
    markets; b (2) and c (1) have room."""

    def __init__(self, room=True):
        from atomfast.control.cluster import MarketRecord, Member, NodeRecord

        spec = lambda i, sym: MarketSpec(i, sym.split("-")[0], sym.split("-")[1], "kraken", "SPOT", "kraken", sym)  # noqa: E731
        self.table = {1: MarketRecord(spec(1, "BTC-CHF"), 0, 0), 2: MarketRecord(spec(2, "ETH-CHF"), 1, 1),
                      3: MarketRecord(spec(3, "ADA-BTC"), 1, 2)}
        self.owned = frozenset({0, 1})
        self.member_id = "m-a"
        self.assigned_at = 0.0
        self._members = [Member("a", "m-a", "h", frozenset({0, 1})), Member("b", "m-b", "h", frozenset({2, 3})),
                         Member("c", "m-c", "h", frozenset({4}))]
        self._records = {"a": NodeRecord("a", 1), "b": NodeRecord("b", 2 if room else 0), "c": NodeRecord("c", 1 if room else 0)}
        self.writes = []

    def markets(self):
        return dict(self.table)

    def members(self, max_age=None):
        return list(self._members)

    def node_records(self):
        return dict(self._records)

    def write_market(self, spec, slot, op="start"):
        self.writes.append((spec.id, slot, op))
        return len(self.writes)


@pytest.mark.parametrize("room", [True, False])
def test_a_node_over_capacity_moves_the_excess_or_reports_it(room):
    import asyncio

    from atomfast.control.node import Node, Resolver
    from atomfast.metrics import Metrics

    async def scenario():
        cluster, sink = _FakeCluster(room), MemorySink()
        node = Node("a", 1, cluster, sink, Metrics(), Resolver())
        node.loop = asyncio.get_running_loop()
        node.excess = [2, 3]  # market 1 runs; 2 and 3 are beyond MAX_DATA_FEEDS
        await node._relocate()
        return cluster.writes, [r for t, r in sink.records if t == "status"]

    writes, status = asyncio.run(scenario())
    if room:
        assert writes == [(2, 2, "move"), (3, 4, "move")]  # b has the most room, then c
        assert status == []
    else:
        assert writes == []
        assert [(r.symbol, r.status) for r in status] == [("ETH-CHF", "unplaced"), ("ADA-BTC", "unplaced")]
        assert "no node has room" in status[0].reason


def test_generated_code_matches_the_proto():
    pytest.importorskip("grpc_tools")
    r = subprocess.run([sys.executable, "-m", "atomfast.control.generate", "--check"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_our_proto_differs_from_level4s_only_in_the_start_reply_and_elixir_options(level4):
    """Same package, service, methods, messages and fields (names, numbers, types) as level4's
    own file (compiled from it, unchanged)."""
    from atomfast.control import level4_pb2

    ours, theirs = level4_pb2.DESCRIPTOR, level4.pb.DESCRIPTOR
    assert ours.package == theirs.package == "level4.rpc"
    assert theirs.name == "level4.proto" and [d.name for d in theirs.dependencies] == ["elixirpb.proto"]

    def methods(fd):
        return [(m.name, m.input_type.name, m.output_type.name) for m in fd.services_by_name["Control"].methods]

    assert methods(ours) == [
        ("StartMarket", "StartMarketRequest", "StartMarketReply"),  # level4: StopMarketReply
        ("StopMarket", "StopMarketRequest", "StopMarketReply"),
        ("ListNodes", "ListNodesRequest", "ListNodesReply"),
        ("ListActiveMarkets", "ListMarketsRequest", "ListMarketsReply"),
        ("IsMarketOnline", "MarketOnlineRequest", "MarketOnlineReply"),
    ]
    assert methods(theirs) == [("StartMarket", "StartMarketRequest", "StopMarketReply"), *methods(ours)[1:]]

    def message_fields(fd):
        return {name: [(f.name, f.number, f.type, f.is_repeated, f.message_type.full_name if f.message_type else "")
                       for f in m.fields] for name, m in fd.message_types_by_name.items()}

    assert message_fields(ours) == message_fields(theirs)
    fields = {name: [(f.name, f.number, f.type, f.is_repeated) for f in m.fields] for name, m in ours.message_types_by_name.items()}
    start, stop = fields["StartMarketReply"], fields["StopMarketReply"]
    assert start == stop  # so level4's clients decode our StartMarketReply as their StopMarketReply
    from google.protobuf.descriptor import FieldDescriptor as F

    assert fields["Node"] == [("name", 1, F.TYPE_STRING, False), ("active_market_count", 2, F.TYPE_INT64, False),
                              ("max_active_markets", 3, F.TYPE_INT64, False)]
    assert [f[:2] for f in fields["Market"]] == [("id", 1), ("base_symbol", 2), ("quote_symbol", 3), ("exchange_name", 4), ("type", 5)]
    assert fields["MarketOnlineReply"] == [("is_online", 1, F.TYPE_BOOL, False)]
    assert fields["ListNodesReply"] == [("nodes", 1, F.TYPE_MESSAGE, True)]
    assert fields["ListMarketsReply"] == [("markets", 1, F.TYPE_MESSAGE, True)]


# --- one node on a real broker ------------------------------------------------------------------

@pytest.fixture(scope="module")
def node(kafka_bootstrap, tmp_path_factory):
    with ClusterHarness(kafka_bootstrap, log_dir=str(tmp_path_factory.mktemp("serve"))) as h:
        h.start_node("solo", "--max-feeds", 3)
        yield h


def _code(exc) -> str:
    return exc.code().name


def test_round_trips_and_errors(node, level4):
    import grpc

    pb, market_msg = level4.pb, level4.market
    stub = level4.stub(node.nodes["solo"].address)
    nodes = stub.ListNodes(pb.ListNodesRequest(), timeout=10).nodes
    assert [(n.name, n.max_active_markets) for n in nodes] == [("solo", 3)]
    base = len(stub.ListActiveMarkets(pb.ListMarketsRequest(), timeout=10).markets)
    assert base == 0

    m1 = market_msg(101, "kraken", "BTC", "CHF", "SPOT")
    reply = stub.StartMarket(pb.StartMarketRequest(market=m1), timeout=60)
    assert type(reply).__name__ == "StopMarketReply"  # as level4's file declares it
    assert (reply.market.id, reply.market.base_symbol, reply.node.name, reply.node.max_active_markets) == (
        101, "BTC", "solo", 3)
    wait_for(lambda: stub.IsMarketOnline(pb.MarketOnlineRequest(market=m1), timeout=10).is_online, 30, what="online")

    def listed():
        return [(m.id, m.exchange_name, m.base_symbol, m.quote_symbol, m.type)
                for m in stub.ListActiveMarkets(pb.ListMarketsRequest(), timeout=10).markets]

    assert listed() == [(101, "kraken", "BTC", "CHF", "SPOT")]

    def refused(market, code, text):
        with pytest.raises(grpc.RpcError) as err:
            stub.StartMarket(pb.StartMarketRequest(market=market), timeout=60)
        assert _code(err.value) == code, err.value
        assert text in err.value.details(), err.value.details()

    refused(market_msg(101, "kraken", "ETH", "CHF", "SPOT"), "ALREADY_EXISTS", "market id 101 is already in use")
    refused(market_msg(102, "mtgox", "BTC", "USD", "SPOT"), "INVALID_ARGUMENT", "unknown exchange 'mtgox'")
    refused(market_msg(102, "kraken", "BTC", "USD", "SWAP"), "INVALID_ARGUMENT", "unknown market type 'SWAP'")
    refused(market_msg(102, "kraken", "BTC", "XYZ", "SPOT"), "INVALID_ARGUMENT", "lists no market BTC-XYZ")
    refused(market_msg(0, "kraken", "BTC", "CHF", "SPOT"), "INVALID_ARGUMENT", "positive integer")
    with pytest.raises(grpc.RpcError) as err:
        stub.StartMarket(pb.StartMarketRequest(), timeout=10)
    assert _code(err.value) == "INVALID_ARGUMENT"
    assert listed() == [(101, "kraken", "BTC", "CHF", "SPOT")]  # nothing changed

    m2 = market_msg(102, "kraken-futures", "XRP", "USD", "INVERSE")
    m3 = market_msg(103, "Kraken-Futures", "LTC", "USD", "perp")
    for m in (m2, m3):
        assert stub.StartMarket(pb.StartMarketRequest(market=m), timeout=60).node.name == "solo"
    # capacity reached (MAX_DATA_FEEDS 3): refused, nothing changed
    refused(market_msg(104, "kraken", "ETH", "CHF", "SPOT"), "RESOURCE_EXHAUSTED", "no node has room")
    assert [m[0] for m in listed()] == [101, 102, 103]
    wait_for(lambda: all(stub.IsMarketOnline(pb.MarketOnlineRequest(market=m), timeout=10).is_online for m in (m2, m3)),
             30, what="futures markets online")
    assert [(n.name, n.active_market_count) for n in stub.ListNodes(pb.ListNodesRequest(), timeout=10).nodes] == [("solo", 3)]

    reply = stub.StopMarket(pb.StopMarketRequest(market=pb.Market(id=102)), timeout=30)
    assert (reply.market.id, reply.market.exchange_name, reply.market.type, reply.node.name) == (
        102, "kraken-futures", "INVERSE", "solo")
    assert [m[0] for m in listed()] == [101, 103]
    assert not stub.IsMarketOnline(pb.MarketOnlineRequest(market=m2), timeout=10).is_online
    with pytest.raises(grpc.RpcError) as err:
        stub.StopMarket(pb.StopMarketRequest(market=pb.Market(id=102)), timeout=30)
    assert _code(err.value) == "NOT_FOUND" and "no active market with id 102" in err.value.details()
    assert not stub.IsMarketOnline(pb.MarketOnlineRequest(market=pb.Market(id=999)), timeout=10).is_online
    # room again: the id is free again too
    assert stub.StartMarket(pb.StartMarketRequest(market=m2), timeout=60).node.name == "solo"
    for mid in (101, 102, 103):
        stub.StopMarket(pb.StopMarketRequest(market=pb.Market(id=mid)), timeout=30)
    assert listed() == []
    wait_for(lambda: stub.ListNodes(pb.ListNodesRequest(), timeout=10).nodes[0].active_market_count == 0, 10,
             what="no market running")


def test_status_topic_has_the_control_events(node, level4):
    pb = level4.pb
    stub = level4.stub(node.nodes["solo"].address)
    since = int(time.time() * 1000)
    stub.StartMarket(pb.StartMarketRequest(market=level4.market(301, "kraken", "OMG", "USD", "SPOT")), timeout=60)
    wait_for(lambda: stub.IsMarketOnline(pb.MarketOnlineRequest(market=pb.Market(id=301)), timeout=10).is_online, 30,
             what="online")
    stub.StopMarket(pb.StopMarketRequest(market=pb.Market(id=301)), timeout=30)

    def seen():
        recs = [r for r in statuses(node.bootstrap, node.prefix, since) if r["symbol"] == "OMG-USD"]
        return recs if any(r["status"] == "stopped" for r in recs) else None

    recs = wait_for(seen, 20, what="the stopped status of market 301")
    kinds = [r["status"] for r in recs]
    assert kinds[0] == "started" and recs[0]["reason"] == "market 301 on solo", recs
    assert "snapshot" in kinds and kinds.index("snapshot") < kinds.index("stopped")
    stopped = recs[kinds.index("stopped")]
    assert stopped["exchange"] == "kraken" and "StopMarket" in stopped["reason"]


def _ctl(node, *args, env_extra=None):
    env = serve_env(node.bootstrap, node.prefix, env_extra)
    return subprocess.run([sys.executable, "-m", "atomfast.cli", "ctl", "--server", node.nodes["solo"].address, *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_ctl_client(node):
    r = _ctl(node, "start", "201", "kraken", "ADA/BTC")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "started 201\tkraken\tADA-BTC\tSPOT on solo"
    r = _ctl(node, "start", "201", "kraken", "ADA-BTC")
    assert r.returncode == 1 and "ALREADY_EXISTS: market id 201 is already in use" in r.stderr
    r = _ctl(node, "start", "202", "kraken-futures", "ETH-USD-PERP")
    assert r.returncode == 0, r.stderr
    r = _ctl(node, "--json", "list")
    assert json.loads(r.stdout) == [
        {"id": 201, "base_symbol": "ADA", "quote_symbol": "BTC", "exchange_name": "kraken", "type": "SPOT"},
        {"id": 202, "base_symbol": "ETH", "quote_symbol": "USD", "exchange_name": "kraken-futures", "type": "PERP"}]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = _ctl(node, "online", "202")
        if r.returncode == 0:
            break
        time.sleep(0.5)
    assert (r.returncode, r.stdout.strip()) == (0, "online")
    r = _ctl(node, "nodes")
    assert r.stdout.strip() == "solo\t2/3"
    for mid in ("201", "202"):
        r = _ctl(node, "stop", mid)
        assert r.returncode == 0 and r.stdout.startswith(f"stopped {mid}\t"), r.stderr
    r = _ctl(node, "online", "202")
    assert (r.returncode, r.stdout.strip()) == (3, "offline")
    r = _ctl(node, "stop", "202")
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr


def test_level4_client_generated_from_level4s_proto_talks_unchanged(node, level4, tmp_path):
    """The acceptance test: stubs generated from level4's own proto file (the session's, see
    conftest.py), run as a level4 user's standalone program: its own process, no atomfast."""
    import shutil

    out = tmp_path / "gen"
    shutil.copytree(level4.directory, out)
    assert "StopMarketReply" in (out / "level4_pb2_grpc.py").read_text()
    (out / "client.py").write_text(textwrap.dedent(LEVEL4_CLIENT))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(out)
    r = subprocess.run([sys.executable, str(out / "client.py"), node.nodes["solo"].address], cwd=str(out), env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["nodes"][0][0] == "solo" and got["nodes"][0][2] == 3
    assert got["start"] == ["StopMarketReply", 42, "ETH", "solo"]
    assert got["duplicate"][0] == "ALREADY_EXISTS"
    assert got["online"] is True
    assert [42, "KRAKEN", "ETH", "CHF", "SPOT"] in got["markets"]
    assert got["stop"] == ["StopMarketReply", 42, "KRAKEN", "solo"]
    assert got["online_after"] is False


def _self_signed(tmp_path):
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return cert, key


def test_shared_token_and_tls(kafka_bootstrap, node, level4, tmp_path):
    """With a token and TLS: plaintext calls fail, calls without the token (or with a wrong
    one) are refused, ctl with --tls-ca and the token works."""
    import grpc

    pb = level4.pb

    cert, key = _self_signed(tmp_path)
    token = uuid.uuid4().hex
    env = serve_env(kafka_bootstrap, node.prefix, {"ATOMFAST_RPC_TOKEN": token})
    guarded = ServeProcess("guarded", env, "--cluster", "guarded", "--max-feeds", "1", "--tls-cert", cert,
                           "--tls-key", key, *node.endpoint_args(), log_dir=str(tmp_path))
    try:
        plain = level4.stub(guarded.address)
        with pytest.raises(grpc.RpcError) as err:
            plain.ListNodes(pb.ListNodesRequest(), timeout=5, metadata=[("authorization", f"Bearer {token}")])
        assert _code(err.value) == "UNAVAILABLE"
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(guarded.address, creds) as channel:
            stub = level4.rpc.ControlStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.ListNodes(pb.ListNodesRequest(), timeout=10)
            assert _code(err.value) == "UNAUTHENTICATED"
            with pytest.raises(grpc.RpcError) as err:
                stub.ListNodes(pb.ListNodesRequest(), timeout=10, metadata=[("authorization", "Bearer wrong")])
            assert _code(err.value) == "UNAUTHENTICATED"
            nodes = stub.ListNodes(pb.ListNodesRequest(), timeout=10, metadata=[("authorization", f"Bearer {token}")])
            assert [n.name for n in nodes.nodes] == ["guarded"]
        r = subprocess.run([sys.executable, "-m", "atomfast.cli", "ctl", "--server", guarded.address, "--tls-ca", str(cert),
                            "nodes"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert (r.returncode, r.stdout.strip()) == (0, "guarded\t0/1"), r.stderr
        env.pop("ATOMFAST_RPC_TOKEN")
        r = subprocess.run([sys.executable, "-m", "atomfast.cli", "ctl", "--server", guarded.address, "--tls-ca", str(cert),
                            "nodes"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "UNAUTHENTICATED" in r.stderr
    finally:
        guarded.close()


def test_serve_refuses_wide_listening_without_token_and_tls():
    r = subprocess.run([sys.executable, "-m", "atomfast.cli", "serve", "--host", "0.0.0.0", "--port", "0"], cwd=ROOT,
                       env=serve_env("127.0.0.1:9", "x."), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "give a token" in r.stderr, r.stderr
