"""The control plane under bad input and load (issue 14, item 5), against a real `atomfast serve`
(on the session's broker, markets served by the simulator) and a real gRPC client:

- every call with an out-of-range or malformed field (empty or unknown exchange, unknown symbol,
  absurd ids, negative numbers, huge strings, wrong type names, missing fields, bytes that are
  no protobuf message at all) gets a gRPC status (INVALID_ARGUMENT, NOT_FOUND, ...) whose short
  message names the field; nothing changes and the server keeps serving;
- a token missing or wrong: UNAUTHENTICATED, counted, logged once per kind (then every 1000th)
  and never with the token given or expected;
- 1,000 StartMarket/StopMarket requests in a loop: every one answered, and afterwards no market,
  feed, thread or file descriptor more than before; no crash, no traceback in the log.

No timing is asserted: the loop is bounded by the calls' own timeouts.
"""
from __future__ import annotations

import os
import threading
import uuid
from typing import Any

import pytest

from atomfast.testing import ClusterHarness, ServeProcess, serve_env, wait_for

grpc = pytest.importorskip("grpc")

# The client is level4's own, compiled from its proto file (tests/control/conftest.py, ``level4``).

MAX_DETAILS = 600  # characters: a clear message, never an echo of a huge input
HUGE = "A" * 60_000  # fits in a request (64 KiB, the server's limit: see below), not in an error message


@pytest.fixture(scope="module")
def node(kafka_bootstrap, tmp_path_factory):
    with ClusterHarness(kafka_bootstrap, log_dir=str(tmp_path_factory.mktemp("serve-faults"))) as h:
        h.start_node("faulty", "--max-feeds", 4)
        yield h


pb: Any = None  # level4's generated level4_pb2 (set by _level4 below)
market_msg: Any = None  # a level4 Market from (id, exchange, base, quote, type)
STUB: Any = None  # level4.stub(address)


@pytest.fixture(autouse=True)
def _level4(level4):
    """Every call below goes through level4's own client."""
    global pb, market_msg, STUB
    pb, market_msg, STUB = level4.pb, level4.market, level4.stub


def _stub(node, name):
    return STUB(node.nodes[name].address)


def _listed(stub) -> list:
    return [(m.id, m.exchange_name, m.base_symbol, m.quote_symbol, m.type)
            for m in stub.ListActiveMarkets(pb.ListMarketsRequest(), timeout=30).markets]


def _refused(call, request, code: str, *texts: str) -> str:
    with pytest.raises(grpc.RpcError) as err:
        call(request, timeout=60)
    got = err.value
    assert got.code().name == code, (got.code(), got.details())
    details = got.details() or ""
    for text in texts:
        assert text in details, details
    assert len(details) <= MAX_DETAILS, details[:200]
    return details


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


# (the market's fields: id, exchange, base, quote, type; the status code; texts its message must hold)
BAD_MARKETS = {
    "no exchange": ((11, "", "BTC", "CHF", "SPOT"), "INVALID_ARGUMENT", "market.exchange_name is required"),
    "blank exchange": ((11, "  ", "BTC", "CHF", "SPOT"), "INVALID_ARGUMENT", "market.exchange_name"),
    "unknown exchange": ((11, "mtgox", "BTC", "USD", "SPOT"), "INVALID_ARGUMENT", "unknown exchange 'mtgox'"),
    "non-ascii exchange": ((11, "krakén", "BTC", "CHF", "SPOT"), "INVALID_ARGUMENT", "unknown exchange"),
    "no base": ((11, "kraken", "", "CHF", "SPOT"), "INVALID_ARGUMENT", "market.base_symbol is required"),
    "no quote": ((11, "kraken", "BTC", "", "SPOT"), "INVALID_ARGUMENT", "market.quote_symbol is required"),
    "no type": ((11, "kraken", "BTC", "CHF", ""), "INVALID_ARGUMENT", "market.type is required"),
    "wrong type": ((11, "kraken", "BTC", "CHF", "SWAP"), "INVALID_ARGUMENT", "unknown market type 'SWAP'"),
    "type as a number": ((11, "kraken", "BTC", "CHF", "1"), "INVALID_ARGUMENT", "market.type"),
    "zero id": ((0, "kraken", "BTC", "CHF", "SPOT"), "INVALID_ARGUMENT", "market.id", "positive"),
    "negative id": ((-7, "kraken", "BTC", "CHF", "SPOT"), "INVALID_ARGUMENT", "market.id", "-7"),
    "most negative id": ((-2**63, "kraken", "BTC", "CHF", "SPOT"), "INVALID_ARGUMENT", "market.id"),
    "control character": ((11, "kraken", "BTC\x00", "CHF", "SPOT"), "INVALID_ARGUMENT",
                          "market.base_symbol", "not an asset name"),
    "unknown symbol": ((11, "kraken", "BTC", "XYZ", "SPOT"), "INVALID_ARGUMENT", "lists no market BTC-XYZ"),
    "spot pair as perp": ((11, "kraken", "BTC", "CHF", "PERP"), "INVALID_ARGUMENT",
                          "lists no market BTC-CHF-PERP"),
    "future without expiry": ((11, "kraken-futures", "BTC", "USD", "FUTURE"), "INVALID_ARGUMENT",
                              "quote_symbol", "expiry"),
    "option without strike": ((11, "kraken-futures", "BTC", "USD-20261225", "OPTION"), "INVALID_ARGUMENT",
                              "quote_symbol", "strike"),
    "huge exchange": ((11, HUGE, "BTC", "CHF", "SPOT"), "INVALID_ARGUMENT", "market.exchange_name",
                      "too long"),
    "huge base": ((11, "kraken", HUGE, "CHF", "SPOT"), "INVALID_ARGUMENT", "market.base_symbol", "too long"),
    "huge quote": ((11, "kraken", "BTC", HUGE, "SPOT"), "INVALID_ARGUMENT", "market.quote_symbol",
                   "too long"),
    "huge type": ((11, "kraken", "BTC", "CHF", HUGE), "INVALID_ARGUMENT", "market.type", "too long"),
    "long but not huge base": ((11, "kraken", "B" * 5000, "CHF", "SPOT"), "INVALID_ARGUMENT",
                               "market.base_symbol", "too long"),
}


@pytest.mark.parametrize("case", list(BAD_MARKETS), ids=list(BAD_MARKETS))
def test_start_market_with_a_bad_field_is_refused_naming_it(node, case):
    fields, code, *texts = BAD_MARKETS[case]
    market = market_msg(*fields)
    stub = _stub(node, "faulty")
    before = _listed(stub)
    _refused(stub.StartMarket, pb.StartMarketRequest(market=market), code, *texts)
    assert _listed(stub) == before  # nothing changed
    assert node.nodes["faulty"].proc.poll() is None


def test_start_market_without_a_market(node):
    stub = _stub(node, "faulty")
    _refused(stub.StartMarket, pb.StartMarketRequest(), "INVALID_ARGUMENT", "market is required")


def test_stop_and_online_check_the_id(node):
    stub = _stub(node, "faulty")
    for mid in (0, -1, -2**63):
        _refused(stub.StopMarket, pb.StopMarketRequest(market=pb.Market(id=mid)), "INVALID_ARGUMENT", "market.id")
        _refused(stub.IsMarketOnline, pb.MarketOnlineRequest(market=pb.Market(id=mid)), "INVALID_ARGUMENT",
                 "market.id")
    _refused(stub.StopMarket, pb.StopMarketRequest(), "INVALID_ARGUMENT", "market is required")
    _refused(stub.IsMarketOnline, pb.MarketOnlineRequest(), "INVALID_ARGUMENT", "market is required")
    _refused(stub.StopMarket, pb.StopMarketRequest(market=pb.Market(id=2**63 - 1)), "NOT_FOUND",
             f"no active market with id {2**63 - 1}")
    # a well-formed id that names no market is simply not online (as level4 answers)
    assert stub.IsMarketOnline(pb.MarketOnlineRequest(market=pb.Market(id=2**63 - 1)), timeout=30).is_online is False


METHODS = ("StartMarket", "StopMarket", "ListNodes", "ListActiveMarkets", "IsMarketOnline")
REQUESTS = {"StartMarket": "StartMarketRequest", "StopMarket": "StopMarketRequest", "ListNodes": "ListNodesRequest",
            "ListActiveMarkets": "ListMarketsRequest", "IsMarketOnline": "MarketOnlineRequest"}


@pytest.mark.parametrize("method", METHODS)
def test_bytes_that_are_no_request_are_invalid_argument(node, method):
    """Garbage, truncated protobuf, a Market whose base_symbol is not UTF-8: INVALID_ARGUMENT
    naming the request type (grpcio itself would answer INTERNAL "Exception deserializing
    request!"). A request without fields skips unknown ones, as protobuf must."""
    blobs = [b"\xff\xff\xff", b"\x0a\x05\x08\x01", b"\x08"]
    if method in ("StartMarket", "StopMarket", "IsMarketOnline"):
        blobs.append(b"\x0a\x03\x12\x01\x80")
    with grpc.insecure_channel(node.nodes["faulty"].address) as channel:
        call = channel.unary_unary(f"/level4.rpc.Control/{method}")  # raw bytes in, raw bytes out
        for blob in blobs:
            details = _refused(call, blob, "INVALID_ARGUMENT", f"malformed {REQUESTS[method]}")
            assert "\ufffd" not in details
    assert node.nodes["faulty"].proc.poll() is None


def test_a_request_over_the_size_limit_is_refused(node):
    stub = _stub(node, "faulty")
    m = market_msg(12, "kraken", "X" * 200_000, "CHF", "SPOT")
    _refused(stub.StartMarket, pb.StartMarketRequest(market=m), "RESOURCE_EXHAUSTED", "larger than max")
    assert stub.ListNodes(pb.ListNodesRequest(), timeout=30).nodes[0].name == "faulty"


def test_an_unknown_method_is_unimplemented(node):
    with grpc.insecure_channel(node.nodes["faulty"].address) as channel:
        _refused(channel.unary_unary("/level4.rpc.Control/DropTables"), b"", "UNIMPLEMENTED")


def test_bad_input_left_the_server_serving(node):
    """After all of the above: still one node, no market, no traceback in its log."""
    stub = _stub(node, "faulty")
    assert [(n.name, n.active_market_count) for n in stub.ListNodes(pb.ListNodesRequest(), timeout=30).nodes] == [
        ("faulty", 0)]
    assert _listed(stub) == []
    log = node.nodes["faulty"].log_tail(10**7)
    assert "Traceback" not in log, log[-3000:]


# --- the token ---------------------------------------------------------------------------------

def test_a_missing_or_wrong_token_is_unauthenticated_counted_and_logged_once(kafka_bootstrap, node, level4, tmp_path):
    token = f"tok-{uuid.uuid4().hex}"
    wrong = f"guess-{uuid.uuid4().hex}"
    env = serve_env(kafka_bootstrap, node.prefix, {"ATOMFAST_RPC_TOKEN": token})
    guarded = ServeProcess("guarded", env, "--cluster", f"tok{uuid.uuid4().hex[:6]}", "--max-feeds", "1",
                           *node.endpoint_args(), log_dir=str(tmp_path))
    try:
        with grpc.insecure_channel(guarded.address) as channel:
            stub = level4.rpc.ControlStub(channel)
            calls = [
                (stub.ListNodes, pb.ListNodesRequest()),
                (stub.StartMarket, pb.StartMarketRequest(market=market_msg(1, "kraken", "BTC", "CHF", "SPOT"))),
                (stub.StopMarket, pb.StopMarketRequest(market=pb.Market(id=1))),
            ]
            for i in range(1000):
                call, request = calls[i % len(calls)]
                _refused(lambda r, timeout: call(r, timeout=timeout), request, "UNAUTHENTICATED", "token")
                _refused(lambda r, timeout: call(r, timeout=timeout, metadata=[("authorization", f"Bearer {wrong}")]),
                         request, "UNAUTHENTICATED", "token")
            _refused(lambda r, timeout: stub.ListNodes(r, timeout=timeout, metadata=[("x-atomfast-token", wrong)]),
                     pb.ListNodesRequest(), "UNAUTHENTICATED")
            _refused(lambda r, timeout: stub.ListNodes(r, timeout=timeout, metadata=[("authorization", token)]),
                     pb.ListNodesRequest(), "UNAUTHENTICATED")  # no "Bearer "
            ok = stub.ListNodes(pb.ListNodesRequest(), timeout=30, metadata=[("authorization", f"Bearer {token}")])
            assert [n.name for n in ok.nodes] == ["guarded"]
        assert guarded.proc.poll() is None
    finally:
        guarded.close()
    log = guarded.log_path.read_text()
    assert token not in log and wrong not in log
    lines = [line for line in log.splitlines() if "unauthenticated call" in line]

    def counts(kind):
        return [line.split(" so far")[0].rsplit("(", 1)[-1] for line in lines if kind in line]

    # 1,000 calls without a token and 1,002 with a wrong one: logged once per kind, then every 1000th
    assert counts("no token") == ["1", "1000"], lines
    assert counts("wrong token") == ["1", "1000"], lines
    assert len(lines) == 4, lines


# --- load --------------------------------------------------------------------------------------

def test_a_thousand_start_stop_requests_leak_nothing(node):
    """4 clients, each starting and stopping its own market 125 times: 1,000 requests, every one
    answered OK; then the node runs no market and holds no more threads or descriptors than after
    one warm-up round."""
    name = "faulty"
    stub = _stub(node, name)
    pid = node.nodes[name].proc.pid
    ids = (21, 22, 23, 24)
    symbols = {21: ("BTC", "CHF"), 22: ("ETH", "CHF"), 23: ("ADA", "BTC"), 24: ("OMG", "USD")}

    def cycle(mid):
        base, quote = symbols[mid]
        reply = stub.StartMarket(pb.StartMarketRequest(market=market_msg(mid, "kraken", base, quote, "SPOT")),
                                 timeout=60)
        assert reply.market.id == mid and reply.node.name == name
        reply = stub.StopMarket(pb.StopMarketRequest(market=pb.Market(id=mid)), timeout=60)
        assert reply.market.id == mid

    def settled():
        nodes = stub.ListNodes(pb.ListNodesRequest(), timeout=30).nodes
        return not _listed(stub) and [(n.name, n.active_market_count) for n in nodes] == [(name, 0)]

    # warm-up: every grpc worker thread and the listing's connection exist before counting
    threads = [threading.Thread(target=cycle, args=(mid,)) for mid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(settled, 30, what="no market after the warm-up")
    fds0, threads0 = _fds(pid), _threads(pid)

    errors: list = []
    done = [0]
    lock = threading.Lock()

    def client(mid):
        for _ in range(125):
            try:
                cycle(mid)
            except Exception as exc:  # noqa: BLE001 - collected, asserted below
                errors.append(f"{mid}: {exc!r}")
                return
            with lock:
                done[0] += 2

    threads = [threading.Thread(target=client, args=(mid,)) for mid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert done[0] == 1000
    assert node.nodes[name].proc.poll() is None
    wait_for(settled, 30, what="no market after 1,000 requests")
    # feeds' sockets closed, no thread per request: a small bound above the warmed-up counts
    wait_for(lambda: _fds(pid) <= fds0 + 4, 30, what=f"descriptors back near {fds0} (now {_fds(pid)})")
    assert _threads(pid) <= threads0 + 2, (threads0, _threads(pid))
    log = node.nodes[name].log_tail(10**8)
    assert "Traceback" not in log and "feed crashed" not in log, log[-3000:]
    assert log.count(": stopped (market ") >= 500
