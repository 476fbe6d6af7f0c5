"""`atomfast serve`: a cluster node and level4's gRPC ``Control`` service.

Each node joins the cluster on Kafka (atomfast/control/cluster.py), runs the markets of the
slots the consumer group gives it (at most MAX_DATA_FEEDS), publishes their events through the
Kafka sink like ``atomfast run``, and answers the Control calls (atomfast/control/server.py).
Start as many as you like, on one machine or many, with the same Kafka and a distinct HOSTNAME.

Settings: HOSTNAME (node name), RPC_PORT (50051), KAFKA_ENDPOINTS / KAFKA_BOOTSTRAP_SERVERS,
MAX_DATA_FEEDS (25), KAFKA_TOPIC_PREFIX, and the SASL settings; flags override them.
KAFKA_TOPIC_PROFILE / ``--topic-profile level4`` publishes level4's own Kafka layout instead of
atomfast's topics (``atomfast.sinks.level4``), keyed by the ids StartMarket gives.
Security: the server listens on 127.0.0.1 unless ``--host`` says otherwise. A shared token
(``ATOMFAST_RPC_TOKEN`` in the environment or keys/.env, or ``--token-file``) makes every call
carry ``authorization: Bearer <token>``; ``--tls-cert``/``--tls-key`` serve TLS. Listening
beyond loopback without a token and TLS is refused unless ``--insecure``.

Exchanges are reached at their public endpoints; ``--endpoint EXCHANGE=ws://...`` (repeatable)
points one at a local ``atomfast simulate`` (REST derived from it) or a proxy, as
``run --endpoint`` does.

Once ready (group joined, gRPC listening) it prints ``listening HOST:PORT node NAME`` on stdout.
SIGINT/SIGTERM: stop serving, hand the markets over (leave the group: the others take them at
once), flush, exit 0.
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import sys
from pathlib import Path

log = logging.getLogger("atomfast.serve")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address for the gRPC server (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="gRPC port (default RPC_PORT, 50051; 0 picks a free one)")
    p.add_argument("--hostname", default=None, help="node name in the cluster (default HOSTNAME, else the host name)")
    p.add_argument("--max-feeds", type=int, default=None, help="markets this node runs at most (default MAX_DATA_FEEDS, 25)")
    p.add_argument("--cluster", default="atomfast",
                   help="cluster name: topics <prefix><cluster>.markets/.nodes/.assign, group <prefix><cluster>.serve")
    p.add_argument("--slots", type=int, default=None,
                   help="partitions of the assign topic when this node creates it (default 64)")
    p.add_argument("--session-timeout", type=float, default=None, metavar="SECONDS",
                   help="consumer-group session timeout: a dead node's markets restart elsewhere after this "
                        "(default 6, the broker's default minimum)")
    p.add_argument("--heartbeat", type=float, default=None, metavar="SECONDS",
                   help="group heartbeat interval (default 1; at most a third of the session timeout)")
    p.add_argument("--endpoint", action="append", default=[], metavar="EXCHANGE=URL",
                   help="websocket URL for an exchange (a local simulator: REST is derived from it); repeatable")
    p.add_argument("--rest-endpoint", action="append", default=[], metavar="EXCHANGE=URL",
                   help="REST base URL for an exchange; repeatable")
    p.add_argument("--scheme", action="append", default=[], metavar="EXCHANGE=NAME",
                   help="which of an exchange's schemes to speak (as run --scheme); repeatable")
    p.add_argument("--channels", default=None, help="channels of every market (default: each scheme's)")
    p.add_argument("--sink", choices=("kafka", "stdout", "files", "null"), default="kafka",
                   help="where market data goes (default kafka)")
    p.add_argument("--data-dir", default=None, help="files sink directory")
    p.add_argument("--topic-profile", choices=("atomfast", "level4"), default=None,
                   help="Kafka layout: atomfast's topics (default), or level4's level4.spread/.timesale/.status "
                        "keyed and partitioned by market id (default KAFKA_TOPIC_PROFILE)")
    p.add_argument("--token-file", default=None, help="file holding the shared token (else ATOMFAST_RPC_TOKEN)")
    p.add_argument("--tls-cert", default=None, help="PEM certificate chain for TLS")
    p.add_argument("--tls-key", default=None, help="PEM private key for TLS")
    p.add_argument("--insecure", action="store_true",
                   help="allow listening beyond loopback without both a token and TLS")


class UsageError(Exception):
    pass


def read_token(token_file: str | None) -> str | None:
    """The shared token: --token-file, else ATOMFAST_RPC_TOKEN (environment, then keys/.env)."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"--token-file {token_file}: {exc.strerror or exc}") from None
        if not token:
            raise UsageError(f"--token-file {token_file} is empty")
        return token
    token = os.environ.get("ATOMFAST_RPC_TOKEN", "").strip()
    if not token:
        from ..config import SettingsError, read_env_file

        try:
            token = read_env_file("keys/.env").get("ATOMFAST_RPC_TOKEN", "").strip()
        except SettingsError:
            token = ""
    return token or None


def _pairs(values: list[str], flag: str, known) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, value = v.partition("=")
        name = name.strip().lower()
        if not sep or not name or not value.strip():
            raise UsageError(f"{flag} {v!r}: expected EXCHANGE=VALUE")
        if name not in known:
            raise UsageError(f"{flag} {v!r}: unknown exchange {name!r}; known: {', '.join(sorted(known))}")
        out[name] = value.strip()
    return out


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def main(args: argparse.Namespace) -> int:
    from ..collector import quiet_picows, run_async
    from ..config import SettingsError, load_settings
    from ..exchanges import schemes
    from ..rest import check_url

    quiet_picows()
    try:
        try:
            settings = load_settings({"hostname": args.hostname, "rpc_port": args.port or None,
                                      "max_data_feeds": args.max_feeds, "data_dir": args.data_dir,
                                      "kafka_topic_profile": getattr(args, "topic_profile", None)})
            from ..sinks.level4 import topic_profile

            if topic_profile(settings) == "level4" and args.sink != "kafka":
                raise UsageError(f"--topic-profile level4 is a Kafka layout: it needs --sink kafka, not {args.sink}")
        except SettingsError as exc:
            raise UsageError(str(exc)) from None
        port = settings.rpc_port if args.port is None else args.port
        if not 0 <= port <= 65535:
            raise UsageError("--port must be 0..65535")
        known = schemes()
        endpoints = _pairs(args.endpoint, "--endpoint", known)
        rest_endpoints = _pairs(args.rest_endpoint, "--rest-endpoint", known)
        scheme_names = _pairs(args.scheme, "--scheme", known)
        for name, url in endpoints.items():
            try:
                check_url(url, ("ws", "wss"))
            except ValueError as exc:
                raise UsageError(f"--endpoint {name}: {exc}") from None
        for name, url in rest_endpoints.items():
            try:
                check_url(url, ("http", "https"))
            except ValueError as exc:
                raise UsageError(f"--rest-endpoint {name}: {exc}") from None
        token = read_token(args.token_file)
        if bool(args.tls_cert) != bool(args.tls_key):
            raise UsageError("--tls-cert and --tls-key go together")
        tls = None
        if args.tls_cert:
            try:
                tls = (Path(args.tls_cert).read_bytes(), Path(args.tls_key).read_bytes())
            except OSError as exc:
                raise UsageError(f"TLS: {exc}") from None
        if not _is_loopback(args.host) and not (token and tls) and not args.insecure:
            raise UsageError(f"--host {args.host} is reachable beyond this machine: give a token "
                             "(ATOMFAST_RPC_TOKEN or --token-file) and TLS (--tls-cert/--tls-key), or --insecure")
        if args.session_timeout is not None and args.session_timeout <= 0:
            raise UsageError("--session-timeout must be > 0")
        if args.slots is not None and not 1 <= args.slots <= 10000:
            raise UsageError("--slots must be 1..10000")
        if not settings.kafka_bootstrap_servers:
            raise UsageError("atomfast serve needs Kafka: set KAFKA_BOOTSTRAP_SERVERS (or KAFKA_ENDPOINTS)")
    except UsageError as exc:
        print(f"atomfast serve: {exc}", file=sys.stderr)
        return 2
    opts = dict(port=port, endpoints=endpoints, rest_endpoints=rest_endpoints, schemes=scheme_names, token=token,
                tls=tls)
    return run_async(_serve(settings, args, opts))


async def _serve(settings, args: argparse.Namespace, opts: dict) -> int:
    from ..control.cluster import (DEFAULT_HEARTBEAT, DEFAULT_SESSION_TIMEOUT, DEFAULT_SLOTS, Cluster, ClusterError,
                                   Names, kafka_config)
    from ..control.node import Node, Resolver
    from ..control.server import ControlService, make_server
    from ..exchanges import schemes
    from ..collector import open_sink
    from ..metrics import Metrics

    loop = asyncio.get_running_loop()
    name = settings.hostname
    metrics = Metrics()
    session = args.session_timeout or DEFAULT_SESSION_TIMEOUT
    heartbeat = args.heartbeat or min(DEFAULT_HEARTBEAT, session / 3)
    try:
        from ..sinks.level4 import make_level4_sink, topic_profile

        if topic_profile(settings) == "level4":  # the market ids come from StartMarket (control/node.py)
            sink = make_level4_sink(settings, metrics, node=name, data_dir=args.data_dir)
        else:
            sink = open_sink(args.sink, settings, metrics, data_dir=args.data_dir)
    except (ValueError, OSError) as exc:
        print(f"atomfast serve: {exc}", file=sys.stderr)
        return 2
    resolver = Resolver(opts["endpoints"], opts["rest_endpoints"], opts["schemes"], args.channels)
    names = Names.for_cluster(settings.kafka_topic_prefix, args.cluster)
    node_ref: list = []

    def relay(method: str):
        return lambda *a: getattr(node_ref[0], method)(*a) if node_ref else None

    cluster = Cluster(kafka_config(settings), names, name, slots=args.slots or DEFAULT_SLOTS,
                      session_timeout=session, heartbeat=heartbeat, on_change=relay("changed"),
                      on_assign=relay("slots_assigned"), on_revoke=relay("slots_revoked"),
                      on_lost=relay("slots_lost"))
    node = Node(name, settings.max_data_feeds, cluster, sink, metrics, resolver)
    node_ref.append(node)
    node.attach(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    server = None
    code = 0
    try:
        try:
            await loop.run_in_executor(None, cluster.start, 30.0)
        except ClusterError as exc:
            print(f"atomfast serve: {exc}", file=sys.stderr)
            return 1
        if not await loop.run_in_executor(None, cluster.wait_joined, 30.0):
            log.warning("not in the group %s after 30 s; serving anyway", names.group)
        service = ControlService(cluster, node, loop, schemes())
        try:
            server, bound = make_server(service, args.host, opts["port"], token=opts["token"],
                                        tls_cert=opts["tls"][0] if opts["tls"] else None,
                                        tls_key=opts["tls"][1] if opts["tls"] else None)
        except (OSError, RuntimeError) as exc:
            print(f"atomfast serve: cannot listen on {args.host}:{opts['port']}: {exc}", file=sys.stderr)
            code = 1
            return code
        node.rpc_address = f"{args.host}:{bound}"
        node.report(force=True)
        await loop.run_in_executor(None, cluster.flush, 5.0)
        await loop.run_in_executor(None, cluster.sync, 10.0)  # our own report readable: ListNodes shows us
        log.info("node %s: gRPC on %s:%d%s%s, cluster %s (%d slots, session timeout %.1f s), MAX_DATA_FEEDS %d",
                 name, args.host, bound, " (token)" if opts["token"] else "", " (TLS)" if opts["tls"] else "",
                 args.cluster, cluster.slots, session, settings.max_data_feeds)
        print(f"listening {args.host}:{bound} node {name}", flush=True)
        await stop.wait()
        log.info("node %s: shutting down", name)
    finally:
        if server is not None:
            server.stop(1.0)
        node.closing = True
        await loop.run_in_executor(None, cluster.leave, 15.0)  # revokes: our feeds stop first
        await node.stop_all("shutting down")
        node.final_report()
        node.close()
        await loop.run_in_executor(None, cluster.close)
        try:
            sink.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("closing the sink: %s", exc)
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass
    return code
