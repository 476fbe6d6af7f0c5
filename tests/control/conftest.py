"""level4's own client for the control tests: ``level4.proto`` (and the ``elixirpb.proto`` it
imports), exactly as level4 ships them (../shared/fixtures/level4), compiled with grpcio-tools
(pinned by the ``test`` extra) into a tmp dir at test time. Every control test talks to
``atomfast serve`` through these stubs, as a level4 user's program does.

The generated modules are loaded into a descriptor pool of their own: level4's file and
atomfast's (``atomfast/control/level4.proto``, which the server runs) define the same
``level4.rpc`` names, and protobuf refuses two files defining one name in one pool. The
generated code itself is used unchanged (only the pool it registers into differs), and the
wire between client and server is all that is shared.
"""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from atomfast.testing import MARKETS, fixture_path


def compile_level4(out: Path) -> Path:
    """protoc (grpcio-tools) on level4's files, unchanged: level4_pb2.py, level4_pb2_grpc.py,
    elixirpb_pb2.py in ``out``."""
    try:
        from importlib.resources import files

        include = str(files("grpc_tools") / "_proto")  # google/protobuf/descriptor.proto
    except ModuleNotFoundError:
        pytest.fail("the control tests compile level4's proto with grpcio-tools: install the test extra "
                    "(pip install -e '.[test]')", pytrace=False)
    src = fixture_path("level4")
    out.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{src}", f"-I{include}", f"--python_out={out}",
                        f"--grpc_python_out={out}", "level4.proto", "elixirpb.proto"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return out


def load_level4(directory: Path):
    """(level4_pb2, level4_pb2_grpc) from ``directory``, registered in a pool of their own."""
    from google.protobuf import descriptor_pb2, descriptor_pool

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(descriptor_pb2.DESCRIPTOR.serialized_pb)  # elixirpb.proto imports it
    names = ("elixirpb_pb2", "level4_pb2", "level4_pb2_grpc")
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    default = descriptor_pool.Default
    sys.path.insert(0, str(directory))
    descriptor_pool.Default = lambda: pool  # what the generated code registers into
    try:
        modules = {n: importlib.import_module(n) for n in names}
    finally:
        descriptor_pool.Default = default
        sys.path.remove(str(directory))
        for n in names:  # level4's module names are not ours to keep
            sys.modules.pop(n, None)
        sys.modules.update(saved)
    return modules["level4_pb2"], modules["level4_pb2_grpc"]


class Level4Client:
    """level4's generated client: ``pb`` (messages), ``rpc`` (``ControlStub``), and the few calls
    the tests repeat. Channels opened by ``stub``/``channel`` are closed at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pb, self.rpc = load_level4(directory)
        self._channels: list = []

    def channel(self, address: str, credentials=None):
        import grpc

        ch = grpc.secure_channel(address, credentials) if credentials is not None else grpc.insecure_channel(address)
        self._channels.append(ch)
        return ch

    def stub(self, address: str, credentials=None):
        return self.rpc.ControlStub(self.channel(address, credentials))

    def market(self, mid, exchange="", base="", quote="", kind=""):
        return self.pb.Market(id=mid, base_symbol=base, quote_symbol=quote, exchange_name=exchange, type=kind)

    def start_markets(self, stub, markets=MARKETS) -> dict[int, str]:
        """StartMarket each (id, exchange, base, quote, type, _); market id -> the node the reply names."""
        owners = {}
        for mid, exchange, base, quote, kind, _sym in markets:
            reply = stub.StartMarket(self.pb.StartMarketRequest(market=self.market(mid, exchange, base, quote, kind)),
                                     timeout=60)
            assert reply.market.id == mid
            owners[mid] = reply.node.name
        return owners

    def online(self, stub, mid: int) -> bool:
        return stub.IsMarketOnline(self.pb.MarketOnlineRequest(market=self.pb.Market(id=mid)), timeout=10).is_online

    def all_online(self, stub, ids) -> bool:
        return all(self.online(stub, i) for i in ids)

    def close(self) -> None:
        for ch in self._channels:
            ch.close()
        self._channels.clear()


@pytest.fixture(scope="session")
def level4(tmp_path_factory):
    """level4's own client (module doc), compiled once per session."""
    client = Level4Client(compile_level4(tmp_path_factory.mktemp("level4-client")))
    try:
        yield client
    finally:
        client.close()
