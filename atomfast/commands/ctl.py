"""`atomfast ctl`: a small client of the Control service (`atomfast serve`, or level4 itself).

    atomfast ctl start ID EXCHANGE SYMBOL [--type SPOT|PERP|INVERSE|FUTURE|OPTION]
    atomfast ctl stop ID
    atomfast ctl list
    atomfast ctl nodes
    atomfast ctl online ID

SYMBOL is ``BASE-QUOTE`` (or ``BASE/QUOTE``); the type is inferred from a normalised symbol when
not given (``XRP-USD-PERP`` -> PERP, ``BTC-USD-PERP-INV`` -> INVERSE, ``BTC-USD-20261225`` ->
FUTURE, ``BTC-USD-20261225-100000-C`` -> OPTION, else SPOT). ``--server HOST:PORT`` (default
127.0.0.1:RPC_PORT), the token as for serve (``ATOMFAST_RPC_TOKEN`` / ``--token-file``), ``--tls``
(system roots) or ``--tls-ca FILE``. Output: one line per item, or JSON with ``--json``. A gRPC
error prints ``atomfast ctl: CODE: message`` on stderr and exits 1; ``online`` exits 0 when the
market is online and 3 when not.
"""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=None, help="HOST:PORT of a node (default 127.0.0.1:RPC_PORT)")
    p.add_argument("--token-file", default=None, help="file holding the shared token (else ATOMFAST_RPC_TOKEN)")
    p.add_argument("--tls", action="store_true", help="use TLS (system CA roots)")
    p.add_argument("--tls-ca", default=None, help="use TLS, trusting this PEM CA bundle")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default 30)")
    p.add_argument("--json", action="store_true", help="print JSON")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    s = sub.add_parser("start", help="start a market", parents=[common])
    s.add_argument("id", type=int)
    s.add_argument("exchange")
    s.add_argument("symbol", help="BASE-QUOTE, e.g. BTC-USD, XRP-USD-PERP, BTC-USD-20261225")
    s.add_argument("--type", default=None, help="SPOT, PERP, INVERSE, FUTURE, OPTION (default: from the symbol)")
    s = sub.add_parser("stop", help="stop a market", parents=[common])
    s.add_argument("id", type=int)
    sub.add_parser("list", help="list the active markets", parents=[common])
    sub.add_parser("nodes", help="list the nodes", parents=[common])
    s = sub.add_parser("online", help="is a market online (exit 0) or not (exit 3)", parents=[common])
    s.add_argument("id", type=int)


def _channel(args: argparse.Namespace, settings):
    import grpc

    target = args.server or f"127.0.0.1:{settings.rpc_port}"
    if args.tls or args.tls_ca:
        root = None
        if args.tls_ca:
            with open(args.tls_ca, "rb") as f:
                root = f.read()
        return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=root))
    return grpc.insecure_channel(target)


def _market_dict(m) -> dict:
    return {"id": m.id, "base_symbol": m.base_symbol, "quote_symbol": m.quote_symbol,
            "exchange_name": m.exchange_name, "type": m.type}


def _node_dict(n) -> dict:
    return {"name": n.name, "active_market_count": n.active_market_count, "max_active_markets": n.max_active_markets}


def _market_line(m) -> str:
    return f"{m.id}\t{m.exchange_name}\t{m.base_symbol}-{m.quote_symbol}\t{m.type}"


def main(args: argparse.Namespace) -> int:
    import grpc

    from ..config import SettingsError, load_settings
    from ..control import level4_pb2 as pb
    from ..control import level4_pb2_grpc as pb_grpc
    from ..control.markets import MarketError, split_symbol
    from .serve import UsageError, read_token

    if not args.action:
        print("atomfast ctl: give an action: start, stop, list, nodes, online", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        token = read_token(args.token_file)
    except (SettingsError, UsageError) as exc:
        print(f"atomfast ctl: {exc}", file=sys.stderr)
        return 2
    metadata = [("authorization", f"Bearer {token}")] if token else None
    out = sys.stdout
    try:
        with _channel(args, settings) as channel:
            stub = pb_grpc.ControlStub(channel)
            kw = {"timeout": args.timeout, "metadata": metadata}
            if args.action == "start":
                try:
                    base, quote, inferred = split_symbol(args.symbol)
                except MarketError as exc:
                    print(f"atomfast ctl: {exc}", file=sys.stderr)
                    return 2
                market = pb.Market(id=args.id, base_symbol=base, quote_symbol=quote, exchange_name=args.exchange,
                                   type=(args.type or inferred).upper())
                reply = stub.StartMarket(pb.StartMarketRequest(market=market), **kw)
                if args.json:
                    print(json.dumps({"market": _market_dict(reply.market), "node": _node_dict(reply.node)}), file=out)
                else:
                    print(f"started {_market_line(reply.market)} on {reply.node.name or '?'}", file=out)
            elif args.action == "stop":
                reply = stub.StopMarket(pb.StopMarketRequest(market=pb.Market(id=args.id)), **kw)
                if args.json:
                    print(json.dumps({"market": _market_dict(reply.market), "node": _node_dict(reply.node)}), file=out)
                else:
                    print(f"stopped {_market_line(reply.market)} on {reply.node.name or '?'}", file=out)
            elif args.action == "list":
                reply = stub.ListActiveMarkets(pb.ListMarketsRequest(), **kw)
                if args.json:
                    print(json.dumps([_market_dict(m) for m in reply.markets]), file=out)
                else:
                    for m in reply.markets:
                        print(_market_line(m), file=out)
            elif args.action == "nodes":
                reply = stub.ListNodes(pb.ListNodesRequest(), **kw)
                if args.json:
                    print(json.dumps([_node_dict(n) for n in reply.nodes]), file=out)
                else:
                    for n in reply.nodes:
                        print(f"{n.name}\t{n.active_market_count}/{n.max_active_markets}", file=out)
            elif args.action == "online":
                reply = stub.IsMarketOnline(pb.MarketOnlineRequest(market=pb.Market(id=args.id)), **kw)
                if args.json:
                    print(json.dumps({"id": args.id, "is_online": reply.is_online}), file=out)
                else:
                    print("online" if reply.is_online else "offline", file=out)
                return 0 if reply.is_online else 3
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        detail = exc.details() if hasattr(exc, "details") else str(exc)
        print(f"atomfast ctl: {code.name if code else 'ERROR'}: {detail}", file=sys.stderr)
        return 1
    return 0
