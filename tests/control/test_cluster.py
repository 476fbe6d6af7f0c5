"""The cluster on a real broker: several `atomfast serve` processes on loopback, each with its own
HOSTNAME and gRPC port, markets served by `atomfast simulate` replaying the recorded Kraken
captures (spot book: KRAKEN.ws.50.0; futures: KRAKEN_FUTURES.ws.1.0), both with --loop.

- failover: three nodes, nine markets started through the gRPC API, kill -9 of one node: every
  market of the dead node produces again on the other two (first Kafka record of its key after
  the kill) within FAILOVER_BOUND, its move is on the status topic, all nine are online and
  ListNodes shows two nodes.
- capacity: a market that no node can take is reported (status ``unplaced``), kept in the
  desired set, and placed when a node with room joins.

The harness (``ServeProcess``, ``ClusterHarness``, ``measure_failover``) is the test kit's
(``atomfast.testing``), shared with tests/control/test_control.py and bench/bench_failover.py; the
gRPC client is level4's own, compiled from its proto file (tests/control/conftest.py).
"""
from __future__ import annotations

import time
import uuid

import pytest

from atomfast.testing import (
    MARKETS,
    ClusterHarness,
    first_records_after,
    measure_failover,
    statuses,
    wait_for,
)

pytestmark = pytest.mark.kafka

SESSION_TIMEOUT = 6.0  # s: the broker's default group.min.session.timeout.ms
HEARTBEAT = 1.0  # s: serve's default heartbeat.interval.ms
#: the dead node expires after the session timeout (counted from its last heartbeat), the
#: survivors hear of it at their next heartbeat, then each moved market connects and gets its
#: snapshot (~1 s for the recorded Kraken spot book). Measured 6.6-8.3 s over 10 runs
#: (bench/bench_failover.py); 5 s of room for a busy 2-core machine.
FAILOVER_BOUND = SESSION_TIMEOUT + HEARTBEAT + 5.0


# --- the tests ---------------------------------------------------------------------------------

@pytest.fixture
def harness(kafka_bootstrap, tmp_path):
    with ClusterHarness(kafka_bootstrap, log_dir=str(tmp_path)) as h:
        yield h


def test_failover_three_nodes_nine_markets_kill_one(harness, level4):
    pb, start_markets, all_online = level4.pb, level4.start_markets, level4.all_online
    h = harness
    for name in ("node-a", "node-b", "node-c"):
        h.start_node(name, "--session-timeout", SESSION_TIMEOUT)
    a = level4.stub(h.nodes["node-a"].address)
    wait_for(lambda: len(a.ListNodes(pb.ListNodesRequest(), timeout=10).nodes) == 3, 30, what="three nodes")
    owners = start_markets(a)
    assert set(owners.values()) == {"node-a", "node-b", "node-c"}, owners  # spread over the three
    ids = [m[0] for m in MARKETS]
    wait_for(lambda: all_online(a, ids), 60, what="nine markets online")
    listed = a.ListActiveMarkets(pb.ListMarketsRequest(), timeout=10).markets
    assert [m.id for m in listed] == ids

    # the node running the most markets dies
    victim = max(("node-a", "node-b", "node-c"), key=lambda n: sum(1 for o in owners.values() if o == n))
    survivor = next(n for n in ("node-a", "node-b", "node-c") if n != victim)
    s = level4.stub(h.nodes[survivor].address)
    result = measure_failover(h, victim)
    print(f"\nfailover: {len(result['moved'])} market(s) of {victim} producing again after "
          + ", ".join(f"{i}: {t:.2f} s" if t is not None else f"{i}: -" for i, t in result["per_market"].items()))
    assert result["moved"], f"{victim} ran no market"
    assert not result["missing"], f"markets {result['missing']} did not produce again within 60 s\n" + \
        "\n".join(h.nodes[n].log_tail(3000) for n in h.nodes if n != victim)
    assert result["seconds"] <= FAILOVER_BOUND, result

    # the cluster afterwards: two nodes, nine markets, all online on the survivors
    def two_nodes():
        nodes = s.ListNodes(pb.ListNodesRequest(), timeout=10).nodes
        return nodes if len(nodes) == 2 else None
    nodes = wait_for(two_nodes, 30, what="two nodes")
    assert {n.name for n in nodes} == {"node-a", "node-b", "node-c"} - {victim}
    assert all(n.max_active_markets == 25 for n in nodes)
    wait_for(lambda: sum(n.active_market_count for n in s.ListNodes(pb.ListNodesRequest(), timeout=10).nodes) == 9,
             20, what="nine markets on two nodes")
    wait_for(lambda: all_online(s, ids), 30, what="nine markets online again")
    assert [m.id for m in s.ListActiveMarkets(pb.ListMarketsRequest(), timeout=10).markets] == ids

    # the moves are on the status topic; each moved market reloads its book (snapshot) and its
    # spread (and, for futures, trades) carry on after it
    since = int(result["t_kill"] * 1000)
    status = statuses(h.bootstrap, h.prefix, since)
    symbols = {m[0]: m[5] for m in MARKETS}
    for mid in result["moved"]:
        moved = [r for r in status if r["symbol"] == symbols[mid] and r["status"] == "moved"]
        assert moved and f"from {victim}" in moved[0]["reason"] and "left the group" in moved[0]["reason"], \
            (mid, [r for r in status if r["symbol"] == symbols[mid]])
        assert any(r["symbol"] == symbols[mid] and r["status"] == "snapshot" for r in status), mid
    exchanges = {m[0]: m[1].lower() for m in MARKETS}
    keys = {f"{exchanges[i]}:{symbols[i]}".encode() for i in result["moved"]}
    spread = first_records_after(h.bootstrap, h.prefix, keys, since, 30.0, topics=("spread",))
    assert set(spread) == keys
    fut_keys = {k for k in keys if k.startswith(b"kraken-futures:")}
    if fut_keys:
        trades = first_records_after(h.bootstrap, h.prefix, fut_keys, since, 30.0, topics=("trades",))
        assert set(trades) == fut_keys


def test_unplaced_market_is_reported_then_placed_when_a_node_joins(harness, level4):
    pb, start_markets, all_online = level4.pb, level4.start_markets, level4.all_online
    h = harness
    h.start_node("small-a", "--max-feeds", 3, "--session-timeout", SESSION_TIMEOUT)
    h.start_node("small-b", "--max-feeds", 3, "--session-timeout", SESSION_TIMEOUT)
    a = level4.stub(h.nodes["small-a"].address)
    wait_for(lambda: len(a.ListNodes(pb.ListNodesRequest(), timeout=10).nodes) == 2, 30, what="two nodes")
    markets = MARKETS[:5]
    start_markets(a, markets)
    ids = [m[0] for m in markets]
    wait_for(lambda: all_online(a, ids), 60, what="five markets online")
    # no room left beyond 6: the sixth is accepted, the seventh refused
    start_markets(a, MARKETS[5:6])
    with pytest.raises(Exception) as err:
        start_markets(a, MARKETS[6:7])
    assert "RESOURCE_EXHAUSTED" in str(err.value.code()), err.value
    ids.append(MARKETS[5][0])

    # small-b dies: small-a has room for 3 of the 6; the other 3 are reported, not dropped
    h.nodes["small-b"].kill()
    t_kill = int(time.time() * 1000)
    nodes = wait_for(lambda: (lambda ns: ns if len(ns) == 1 else None)(a.ListNodes(pb.ListNodesRequest(), timeout=10).nodes),
                     30, what="one node")
    assert (nodes[0].name, nodes[0].max_active_markets) == ("small-a", 3)
    wait_for(lambda: a.ListNodes(pb.ListNodesRequest(), timeout=10).nodes[0].active_market_count == 3, 30,
             what="small-a full")
    assert [m.id for m in a.ListActiveMarkets(pb.ListMarketsRequest(), timeout=10).markets] == ids
    online = [i for i in ids if all_online(a, [i])]
    assert len(online) == 3, online
    unplaced = wait_for(lambda: {r["symbol"] for r in statuses(h.bootstrap, h.prefix, t_kill) if r["status"] == "unplaced"}
                        or None, 20, what="unplaced status")
    symbols = {m[0]: m[5] for m in MARKETS}
    assert unplaced == {symbols[i] for i in ids if i not in online}, (unplaced, online)

    # a node with room joins: everything runs again
    h.start_node("small-c", "--max-feeds", 3, "--session-timeout", SESSION_TIMEOUT)
    wait_for(lambda: all_online(a, ids), 60, what="six markets online on two nodes")
    counts = {n.name: n.active_market_count for n in a.ListNodes(pb.ListNodesRequest(), timeout=10).nodes}
    assert counts == {"small-a": 3, "small-c": 3}, counts


def test_the_log_decides_between_concurrent_starts_of_one_id(kafka_bootstrap):
    """Two nodes accept the same id at once: both write; the one whose record lands second sees
    the other's live record it did not know of (what StartMarket then restores and refuses)."""
    from atomfast.control.cluster import Cluster, Names
    from atomfast.control.markets import MarketSpec

    names = Names.for_cluster(f"dup-{uuid.uuid4().hex[:8]}.", "atomfast")
    conf = {"bootstrap.servers": kafka_bootstrap}
    first, second = Cluster(conf, names, "w1", slots=4), Cluster(conf, names, "w2", slots=4)
    try:
        first.start(30)
        second.start(30)
        a = MarketSpec(7, "BTC", "CHF", "kraken", "SPOT", "kraken", "BTC-CHF")
        b = MarketSpec(7, "ETH", "CHF", "kraken", "SPOT", "kraken", "ETH-CHF")
        assert first.sync() and second.sync() and 7 not in second.markets()  # both checked: id free
        o1 = first.write_market(a, 0)
        o2 = second.write_market(b, 1)
        assert o2 > o1
        assert second.wait_applied(names.markets, o2, 10) and first.wait_applied(names.markets, o2, 10)
        assert first.replaced(o1) is None  # first in the log: accepted
        loser = second.replaced(o2)
        assert loser is not None and loser.spec == a and loser.slot == 0
        o3 = second.restore_market(loser)
        assert first.wait_applied(names.markets, o3, 10)
        assert first.markets()[7].spec == a and first.markets()[7].slot == 0
        assert first.replaced(o3) is None  # a restore is not a start
        o4 = first.delete_market(7)
        assert second.wait_applied(names.markets, o4, 10) and 7 not in second.markets()
        # a move of a market stopped meanwhile does not bring it back
        o5 = second.write_market(a, 2, op="move")
        assert first.wait_applied(names.markets, o5, 10) and 7 not in first.markets()
    finally:
        first.close()
        second.close()
