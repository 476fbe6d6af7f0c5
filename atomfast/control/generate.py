"""Regenerate the committed gRPC code from ``level4.proto``::

    pip install grpcio-tools==<the version named in level4_pb2.py's header>
    python -m atomfast.control.generate            # writes level4_pb2.py, level4_pb2_grpc.py, level4_pb2.pyi
    python -m atomfast.control.generate --check    # exit 1 if the committed files are stale

The generated files are committed (nothing is generated at install or import time); each starts
with a header naming the grpcio-tools version that wrote it, which the ``test`` extra pins (so
``--check`` compares like with like in a fresh environment, whatever newer release the index
serves). Generated code needs
a runtime at least as new as the generator (protobuf's runtime version check, grpcio's
GRPC_GENERATED_VERSION check): pyproject.toml's lower bounds follow the header.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent  # the directory holding the atomfast package
PROTO = "atomfast/control/level4.proto"
OUTPUTS = ("level4_pb2.py", "level4_pb2_grpc.py", "level4_pb2.pyi")


def header() -> str:
    from importlib.metadata import version

    # (protoc and its Python plugins come with grpcio-tools: its version alone decides the output)
    return (
        "# Generated from atomfast/control/level4.proto by grpcio-tools "
        f"{version('grpcio-tools')}: do not edit.\n"
        "# Regenerate with: python -m atomfast.control.generate\n"
    )


def generate(out_dir: Path) -> dict[str, str]:
    """Run protoc into ``out_dir``; returns file name -> text (header included)."""
    from importlib.resources import files

    from grpc_tools import protoc

    include = str(files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            PROTO,
        ]
        code = protoc.main(args)
        if code != 0:
            raise SystemExit(f"protoc failed ({code})")
        texts = {}
        for name in OUTPUTS:
            text = (Path(tmp) / "atomfast" / "control" / name).read_text()
            texts[name] = header() + text
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (out_dir / name).write_text(text)
    return texts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m atomfast.control.generate", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = p.parse_args(argv)
    if not args.check:
        generate(HERE)
        print(f"wrote {', '.join(OUTPUTS)} in {HERE}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
    stale = [n for n, t in fresh.items() if not (HERE / n).is_file() or (HERE / n).read_text() != t]
    if stale:
        print(f"stale: {', '.join(stale)} (run python -m atomfast.control.generate)", file=sys.stderr)
        return 1
    print("up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
