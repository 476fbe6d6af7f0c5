#!/usr/bin/env python3
"""Apache Avro's Java reader, for checking that atomfast's object container files read in Java.

``AvroToJson.java`` reads files with ``DataFileReader`` + ``GenericDatumReader`` and prints one
JSON line per file (codec, writer schema, block count, records: see its header comment). This
module resolves Avro's jars from Maven Central through ``pom.xml`` into ``lib/`` (git-ignored,
once: ``mvn -q -B -f tools/avro-java/pom.xml dependency:copy-dependencies``), compiles the
reader into ``classes/`` with javac (again when the source or the pom changes), and runs it::

    python tools/avro-java/avro_java.py FILE.avro...     # JSON lines on stdout

    from avro_java import read_files
    [{"file": ..., "codec": "null", "schema": {...}, "blocks": 1, "records": [{...}]}] = read_files([path])

Needs Java 17+ (``java``/``javac`` on PATH or under JAVA_HOME) and, for the first run, Maven.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
SOURCE = HERE / "AvroToJson.java"
LIB = HERE / "lib"
CLASSES = HERE / "classes"
_MARKER = ".resolved-from.sha256"

__all__ = ["AvroJavaError", "avro_version", "prepare", "read_files"]


class AvroJavaError(RuntimeError):
    """Java, Maven or the reader failed; the message says why (with the tool's output)."""


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def _tool(name: str) -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / name).is_file():
        return str(Path(home) / "bin" / name)
    found = shutil.which(name)
    if found is None:
        raise AvroJavaError(f"{name} is not on PATH (and not under JAVA_HOME): the Java Avro reader needs a JDK 17+")
    return found


def _current(folder: Path, digest: str) -> bool:
    marker = folder / _MARKER
    return marker.is_file() and marker.read_text().strip() == digest


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip().splitlines()
        raise AvroJavaError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n" + "\n".join(out[-40:]))


def prepare() -> Path:
    """Resolve the jars and compile the reader where missing or stale; the classpath folder."""
    with open(HERE / ".prepare.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several test processes may start at once
        pom = _digest(POM)
        if not (_current(LIB, pom) and any(LIB.glob("avro-*.jar"))):
            mvn = shutil.which("mvn")
            if mvn is None:
                raise AvroJavaError(f"{LIB} is missing or stale and Maven (mvn) is not on PATH: install Maven 3.6+ "
                                    f"or run `mvn -B -f {POM} dependency:copy-dependencies` where it is")
            shutil.rmtree(LIB, ignore_errors=True)
            _run([mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies"], "resolving Avro's jars with Maven")
            if not any(LIB.glob("avro-*.jar")):
                raise AvroJavaError(f"Maven succeeded but {LIB} holds no avro jar")
            (LIB / _MARKER).write_text(pom + "\n")
        source = _digest(POM, SOURCE)
        if not (_current(CLASSES, source) and (CLASSES / "AvroToJson.class").is_file()):
            shutil.rmtree(CLASSES, ignore_errors=True)
            CLASSES.mkdir()
            _run([_tool("javac"), "-encoding", "UTF-8", "-d", str(CLASSES), "-cp", str(LIB / "*"), str(SOURCE)],
                 "compiling AvroToJson.java")
            (CLASSES / _MARKER).write_text(source + "\n")
    return CLASSES


def _classpath() -> str:
    return os.pathsep.join((str(prepare()), str(LIB / "*")))


def avro_version() -> str:
    """The Avro version the reader runs with (the jar Maven resolved)."""
    prepare()
    [jar] = sorted(LIB.glob("avro-[0-9]*.jar"))
    return jar.name[len("avro-"):-len(".jar")]


def read_files(paths: Iterable[str | os.PathLike[str]]) -> list[dict]:
    """Every file read by Java Avro, in order: ``{"file", "codec", "schema", "blocks", "records"}``."""
    paths = [str(p) for p in paths]
    if not paths:
        return []
    cmd = [_tool("java"), "-Xss4m", "-cp", _classpath(), "AvroToJson", *paths]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        raise AvroJavaError(f"Java Avro could not read the file(s) (exit {proc.returncode}): {' '.join(cmd)}\n"
                            + proc.stderr.decode("utf-8", "replace")[-4000:])
    lines = proc.stdout.decode("utf-8").split("\n")  # not splitlines(): U+2028 etc. are data
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != len(paths):
        raise AvroJavaError(f"expected {len(paths)} JSON lines, got {len(lines)}")
    return [json.loads(line) for line in lines]


if __name__ == "__main__":
    try:
        for doc in read_files(sys.argv[1:]):
            print(json.dumps(doc, ensure_ascii=False))
    except AvroJavaError as exc:
        sys.exit(str(exc))
