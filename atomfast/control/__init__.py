"""Control plane and cluster of `atomfast serve`: level4's gRPC ``Control`` service on a cluster
that uses Kafka itself as its engine (no gossip, no consensus of our own).

- ``level4.proto`` + generated ``level4_pb2*.py``: the service (``generate.py`` regenerates them)
- ``markets.py``: level4 ``Market`` -> exchange + normalised symbol
- ``cluster.py``: the topics (desired markets, node reports, assignment slots) and the group
- ``placement.py``: which node / slot gets a market
- ``node.py``: the feeds of one node
- ``server.py``: the gRPC servicer, token interceptor and server
"""
