"""Where a market goes: the live node with the most free room, the emptiest of its slots.

Pure functions over one node's view of the cluster (members from the group coordinator, the
nodes' reports, the desired markets), shared by StartMarket and by a node moving markets it has
no room for. Views differ between nodes for a moment after a change; two nodes placing at the
same time can overshoot a third's capacity by a few markets, which that node then moves on or
reports (see cluster.py): no consensus, only convergence.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from .cluster import MarketRecord, Member, NodeRecord


@dataclass
class Load:
    member: Member
    capacity: int  # MAX_DATA_FEEDS of the node (0: unknown, not yet reported)
    markets: int  # desired markets in its slots
    per_slot: dict[int, int]

    @property
    def free(self) -> int:
        return self.capacity - self.markets


def capacity_of(member: Member, records: Mapping[str, NodeRecord]) -> int:
    rec = records.get(member.name)
    if rec is None or rec.left:
        return 0
    return rec.max_feeds


def loads(members: Iterable[Member], records: Mapping[str, NodeRecord],
          table: Mapping[int, MarketRecord]) -> list[Load]:
    by_slot: dict[int, int] = {}
    for rec in table.values():
        by_slot[rec.slot] = by_slot.get(rec.slot, 0) + 1
    out = []
    for m in members:
        if not m.slots:
            continue  # joined but not assigned yet (mid-rebalance)
        per_slot = {s: by_slot.get(s, 0) for s in m.slots}
        out.append(Load(m, capacity_of(m, records), sum(per_slot.values()), per_slot))
    return out


def choose(members: Iterable[Member], records: Mapping[str, NodeRecord], table: Mapping[int, MarketRecord],
           exclude: Iterable[str] = (), extra: Mapping[str, int] | None = None) -> tuple[Member, int] | None:
    """(member, slot) for one more market, or None when no live node has room. ``exclude``:
    member ids not to consider; ``extra``: markets already promised to members (by member id)."""
    skip = set(exclude)
    best = None
    for load in loads(members, records, table):
        if load.member.member_id in skip or load.capacity <= 0:
            continue
        used = load.markets + (extra or {}).get(load.member.member_id, 0)
        free = load.capacity - used
        if free <= 0:
            continue
        rank = (used / load.capacity, -free, load.member.name, load.member.member_id)
        if best is None or rank < best[0]:
            best = (rank, load)
    if best is None:
        return None
    load = best[1]
    slot = min(load.per_slot, key=lambda s: (load.per_slot[s], s))
    return load.member, slot


def owner_of(slot: int, members: Iterable[Member]) -> Member | None:
    for m in members:
        if slot in m.slots:
            return m
    return None


def total_capacity(members: Iterable[Member], records: Mapping[str, NodeRecord]) -> tuple[int, int]:
    """(nodes, total MAX_DATA_FEEDS) of the live members with a report."""
    names = {}
    for m in members:
        names[m.name] = capacity_of(m, records)
    return len(names), sum(names.values())


__all__ = ["Load", "capacity_of", "choose", "loads", "owner_of", "total_capacity"]
