#!/usr/bin/env python3
"""Build atomfast's Docker image WITHOUT a Docker engine or an image registry (buildah, as root).

The repository's ``Dockerfile`` is written for Docker and the official images
(``python:3.11-slim``, ``rust:1-slim``). Where no engine runs and no image registry answers (this
project's development and CI machines), this tool makes local stand-ins for those two images and
builds the unchanged Dockerfile with buildah::

    python tools/image/build.py bases     # the two stand-ins (debootstrap + buildah commit), cached
    python tools/image/build.py image     # bases, then `buildah bud ... -t atomfast:test .`, cached
    python tools/image/build.py status    # what is built, and whether it is current
    python tools/image/build.py clean     # remove the stand-ins and the image

and from Python (``tests/image/test_image.py``)::

    tag = ensure_image()                  # "atomfast:test", built or reused
    run(["run", "--exchange", "kraken", ...], mounts=[...])   # `buildah run` of the image

The stand-ins, tagged with the official names in local containers-storage (/var/lib/containers):

* ``docker.io/library/python:3.11-slim``: Debian (this machine's release and configured mirror,
  ``debootstrap --variant=minbase``) with python3 (3.11 on bookworm), python3-dev (headers),
  pip, venv, ``python`` -> python3; the machine's CA bundle and pip configuration copied in (so
  pip and cargo inside the build reach the registries as the machine does); Debian's
  ``EXTERNALLY-MANAGED`` marker removed (the official image's pip installs into the system too).
* ``docker.io/library/rust:1-slim``: that, plus the machine's stable Rust toolchain (from
  ``rustc --print sysroot``, without its HTML docs) under /usr/local/rustup, the rustup proxies
  under /usr/local/cargo/bin, ``RUSTUP_HOME``/``CARGO_HOME``/``PATH`` as the official image sets.

Caching: each image carries a label with the digest of what made it (the recipe below, the
mirror and release, the toolchain version; for atomfast:test the build context as the
``.dockerignore`` filters it, the Dockerfile and this file). A current image is reused; a stale
one is rebuilt. Builds take a lock (/var/tmp/atomfast-image/lock), so concurrent test processes
build once. buildah runs with ``--isolation chroot --network host`` (no cgroups, no network
namespace needed: what this machine allows).
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = Path(os.environ.get("ATOMFAST_IMAGE_WORK", "/var/tmp/atomfast-image"))

PYTHON_BASE = "docker.io/library/python:3.11-slim"
RUST_BASE = "docker.io/library/rust:1-slim"
IMAGE = os.environ.get("ATOMFAST_IMAGE", "atomfast:test")
LABEL = "io.atomfast.recipe"

#: Debian packages of the python stand-in (what python:3.11-slim offers the Dockerfile)
PY_PACKAGES = ["python3", "python3-dev", "python3-pip", "python3-venv", "python-is-python3",
               "ca-certificates", "netbase", "tzdata"]
#: bump to rebuild the stand-ins after a change of recipe
RECIPE_VERSION = "1"
#: buildah's flags on this machine (no cgroups, no network namespaces for us)
ISOLATION = ["--isolation", "chroot"]
NETWORK = ["--network", "host"]


class ImageError(RuntimeError):
    """A tool is missing or a build step failed; the message says which and why."""


def log(msg: str) -> None:
    print(f"[image] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# prerequisites


def missing_tools() -> list[str]:
    """What this machine lacks to build (empty: it can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root (buildah and debootstrap run as root here)")
    for tool in ("buildah", "debootstrap"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            problems.append(f"{tool} is not installed (apt-get install -y buildah debootstrap)")
    return problems


def _sh(cmd: list[str], *, quiet: bool = False, check: bool = True, **kw) -> subprocess.CompletedProcess:
    if not quiet:
        log("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip().splitlines()
        raise ImageError(f"exit {proc.returncode}: {' '.join(cmd)}\n" + "\n".join(out[-60:]))
    return proc


def _debootstrap() -> str:
    return shutil.which("debootstrap") or "/usr/sbin/debootstrap"


@contextlib.contextmanager
def _lock():
    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / "lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


# ------------------------------------------------------------------------------------------------
# the machine's Debian: release, mirror, apt sources


def os_release() -> dict[str, str]:
    out = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v.strip().strip('"')
    return out


def _sources_files() -> list[Path]:
    """The machine's enabled apt source files that name Debian's own archive."""
    files = []
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file() and re.search(r"^\s*deb\s", legacy.read_text(), re.M):
        files.append(legacy)
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        for f in sorted(d.iterdir()):
            if f.is_file() and f.suffix in (".list", ".sources") and re.search(
                    r"debian-archive-keyring|/debian(-security)?/?\s", f.read_text()):
                files.append(f)
    return files


def mirror() -> str:
    """The machine's configured Debian mirror (the first ``.../debian`` URI of its sources)."""
    for f in _sources_files():
        for m in re.finditer(r"(?:^URIs:\s*|^\s*deb\s+(?:\[[^]]*\]\s*)?)(\S+)", f.read_text(), re.M):
            for uri in m.group(1).split():
                if uri.rstrip("/").endswith("/debian"):
                    return uri
    raise ImageError("no Debian mirror in /etc/apt/sources.list{,.d}: debootstrap needs one")


def _apt_conf_files() -> list[Path]:
    """apt.conf.d snippets the mirror needs (e.g. Check-Valid-Until off for a snapshot)."""
    d = Path("/etc/apt/apt.conf.d")
    return [f for f in sorted(d.iterdir()) if f.is_file() and re.search(r"Check-(Valid-Until|Date)", f.read_text())] \
        if d.is_dir() else []


def _ca_bundle() -> Path:
    for p in (os.environ.get("SSL_CERT_FILE"), os.environ.get("PIP_CERT"), "/etc/ssl/certs/ca-certificates.crt"):
        if p and Path(p).is_file():
            return Path(p)
    raise ImageError("no CA bundle on this machine (/etc/ssl/certs/ca-certificates.crt)")


def _pip_conf() -> str:
    """The machine's pip configuration as one file: /etc/pip.conf plus the PIP_* settings that
    matter inside a build (timeouts, index URLs), the CA bundle at the image's own path."""
    lines = ["[global]", "cert = /etc/ssl/certs/ca-certificates.crt"]
    for var, key in (("PIP_DEFAULT_TIMEOUT", "timeout"), ("PIP_INDEX_URL", "index-url"),
                     ("PIP_EXTRA_INDEX_URL", "extra-index-url"), ("PIP_TRUSTED_HOST", "trusted-host")):
        if os.environ.get(var):
            lines.append(f"{key} = {os.environ[var]}")
    conf = Path("/etc/pip.conf")
    if conf.is_file():
        for line in conf.read_text().splitlines():
            m = re.match(r"\s*([\w-]+)\s*=\s*(.*)", line)
            if m and m.group(1) not in ("cert", "find-links") and not any(
                    line.startswith(k + " ") for k in ("timeout", "index-url", "extra-index-url", "trusted-host")):
                lines.append(f"{m.group(1)} = {m.group(2)}")
    return "\n".join(lines) + "\n"


def rust_toolchain() -> tuple[Path, str, Path]:
    """(toolchain directory, ``rustc -V``, rustup binary) of the machine's stable Rust."""
    rustc = shutil.which("rustc") or str(Path.home() / ".cargo" / "bin" / "rustc")
    rustup = shutil.which("rustup") or str(Path.home() / ".cargo" / "bin" / "rustup")
    if not Path(rustc).exists() or not Path(rustup).exists():
        raise ImageError("no Rust toolchain (rustup, rustc) on this machine for the rust:1-slim stand-in")
    env = dict(os.environ, RUSTUP_TOOLCHAIN="stable")
    sysroot = Path(_sh([rustc, "--print", "sysroot"], quiet=True, env=env).stdout.strip()).resolve()
    version = _sh([rustc, "-V"], quiet=True, env=env).stdout.strip()
    return sysroot, version, Path(rustup).resolve()


# ------------------------------------------------------------------------------------------------
# containers-storage


def image_label(name: str) -> str | None:
    """The recipe label of a local image, None when there is no such image."""
    proc = _sh(["buildah", "inspect", "--type", "image", name], quiet=True, check=False)
    if proc.returncode != 0:
        return None
    labels = (json.loads(proc.stdout).get("OCIv1") or {}).get("config", {}).get("Labels") or {}
    return labels.get(LABEL, "")


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:32]


def _recipe_text() -> str:
    """The part of this file that makes the stand-ins (changing it rebuilds them)."""
    src = Path(__file__).read_text()
    start, end = src.index("# >>> stand-in recipe"), src.index("# <<< stand-in recipe")
    return src[start:end]


def python_recipe() -> str:
    rel = os_release()
    return _digest("python", RECIPE_VERSION, _recipe_text(), rel.get("VERSION_CODENAME", ""), mirror(),
                   " ".join(PY_PACKAGES), _ca_bundle().read_bytes(), _pip_conf())


def rust_recipe() -> str:
    _, version, _ = rust_toolchain()
    return _digest("rust", python_recipe(), version)


# >>> stand-in recipe


def _container(base: str) -> tuple[str, Path]:
    ctr = _sh(["buildah", "from", "--pull-never", base] if base != "scratch" else ["buildah", "from", "scratch"]
              ).stdout.strip().splitlines()[-1]
    mnt = Path(_sh(["buildah", "mount", ctr]).stdout.strip())
    return ctr, mnt


def _commit(ctr: str, name: str, recipe: str, config: list[str]) -> None:
    try:
        _sh(["buildah", "umount", ctr])
        _sh(["buildah", "config", *config, "--label", f"{LABEL}={recipe}", ctr])
        _sh(["buildah", "commit", "--rm", "--squash", ctr, name])
    except BaseException:
        _sh(["buildah", "rm", ctr], check=False)
        raise


def build_python_base(recipe: str) -> None:
    """docker.io/library/python:3.11-slim from Debian (debootstrap into a scratch container)."""
    t0 = time.monotonic()
    rel = os_release()
    suite = rel.get("VERSION_CODENAME") or "bookworm"
    ctr, mnt = _container("scratch")
    try:
        _sh([_debootstrap(), "--variant=minbase", "--include=" + ",".join(PY_PACKAGES), suite, str(mnt), mirror()])
        # apt inside the build sees the machine's archive (updates, security) as the host does
        (mnt / "etc/apt/sources.list").write_text("")
        for f in _sources_files():
            dest = mnt / "etc/apt" / ("sources.list" if f.name == "sources.list" else f"sources.list.d/{f.name}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
        for f in _apt_conf_files():
            shutil.copy2(f, mnt / "etc/apt/apt.conf.d" / f.name)
        # the machine's CA bundle (pip and cargo reach the registries through it) and pip's config
        shutil.copy2(_ca_bundle(), mnt / "etc/ssl/certs/ca-certificates.crt")
        (mnt / "etc/pip.conf").write_text(_pip_conf())
        # the official image's pip installs into the system interpreter
        for marker in mnt.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        # slim: no apt lists, no docs, no caches
        for junk in ("var/lib/apt/lists", "var/cache/apt/archives", "usr/share/doc", "usr/share/man",
                     "usr/share/info"):
            p = mnt / junk
            if p.is_dir():
                for child in p.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    elif child.name != "lock":
                        child.unlink()
    except BaseException:
        _sh(["buildah", "umount", ctr], check=False)
        _sh(["buildah", "rm", ctr], check=False)
        raise
    _commit(ctr, PYTHON_BASE, recipe, [
        "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--env", "LANG=C.UTF-8",
        "--env", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        "--cmd", "python3",
        "--label", "io.atomfast.stand-in-for=python:3.11-slim (Debian's python3, built here)",
    ])
    log(f"{PYTHON_BASE}: built in {time.monotonic() - t0:.0f} s")


def build_rust_base(recipe: str) -> None:
    """docker.io/library/rust:1-slim: the python stand-in plus the machine's stable toolchain."""
    t0 = time.monotonic()
    sysroot, version, rustup = rust_toolchain()
    name = sysroot.name  # stable-x86_64-unknown-linux-gnu (or a pinned version)
    ctr, mnt = _container(PYTHON_BASE)
    try:
        tc = mnt / "usr/local/rustup/toolchains" / name
        tc.parent.mkdir(parents=True)
        shutil.copytree(sysroot, tc, symlinks=True, ignore=lambda d, names: ["doc"] if d.endswith("/share") else [])
        (mnt / "usr/local/rustup/settings.toml").write_text(
            f'version = "12"\ndefault_toolchain = "{name}"\nprofile = "minimal"\n'
            'auto_self_update = "disable"\n\n[overrides]\n')
        bin_ = mnt / "usr/local/cargo/bin"
        bin_.mkdir(parents=True)
        shutil.copy2(rustup, bin_ / "rustup")
        for proxy in ("cargo", "rustc", "rustdoc", "rust-gdb", "rust-lldb", "rust-gdbgui", "cargo-fmt",
                      "rustfmt", "cargo-clippy", "clippy-driver", "rust-analyzer", "cargo-miri"):
            os.link(bin_ / "rustup", bin_ / proxy)
    except BaseException:
        _sh(["buildah", "umount", ctr], check=False)
        _sh(["buildah", "rm", ctr], check=False)
        raise
    _commit(ctr, RUST_BASE, recipe, [
        "--env", "RUSTUP_HOME=/usr/local/rustup",
        "--env", "CARGO_HOME=/usr/local/cargo",
        "--env", "PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--env", f"RUST_VERSION={version.split()[1] if len(version.split()) > 1 else version}",
        "--cmd", "bash",
        "--label", f"io.atomfast.stand-in-for=rust:1-slim ({version}, this machine's toolchain)",
    ])
    log(f"{RUST_BASE}: built in {time.monotonic() - t0:.0f} s")


# <<< stand-in recipe


def ensure_bases(force: bool = False) -> None:
    """Both stand-ins, built when missing or stale (their recipe label differs)."""
    problems = missing_tools()
    if problems:
        raise ImageError("cannot build the image here: " + "; ".join(problems))
    with _lock():
        py = python_recipe()
        if force or image_label(PYTHON_BASE) != py:
            build_python_base(py)
        else:
            log(f"{PYTHON_BASE}: current (cached)")
        rs = rust_recipe()
        if force or image_label(RUST_BASE) != rs:
            build_rust_base(rs)
        else:
            log(f"{RUST_BASE}: current (cached)")


# ------------------------------------------------------------------------------------------------
# the atomfast image


def _ignore_patterns() -> list[str]:
    f = ROOT / ".dockerignore"
    if not f.is_file():
        return []
    return [line.strip() for line in f.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _ignored(rel: str, patterns: list[str]) -> bool:
    for pat in patterns:
        pat = pat.rstrip("/")
        cands = [pat] + ([pat[3:]] if pat.startswith("**/") else [])
        for c in cands:
            if fnmatch.fnmatchcase(rel, c) or fnmatch.fnmatchcase(rel, c + "/*"):
                return True
            if pat.startswith("**/") and any(fnmatch.fnmatchcase(part, c) for part in rel.split("/")):
                return True
    return False


def context_digest() -> str:
    """Digest of what the build reads: the context (as .dockerignore filters it, approximately:
    a superset is fine), the Dockerfile, the stand-ins' recipe labels and this file."""
    pats = _ignore_patterns()
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = os.path.relpath(dirpath, ROOT)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(d for d in dirnames if not _ignored(rel_dir + d, pats))
        for name in sorted(filenames):
            rel = rel_dir + name
            if _ignored(rel, pats):
                continue
            p = Path(dirpath, name)
            h.update(rel.encode() + b"\0")
            h.update(os.readlink(p).encode() if p.is_symlink() else p.read_bytes())
            h.update(b"\0")
    h.update((ROOT / "Dockerfile").read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update((image_label(PYTHON_BASE) or "").encode() + (image_label(RUST_BASE) or "").encode())
    return h.hexdigest()[:32]


def ensure_image(tag: str = IMAGE, force: bool = False) -> str:
    """The atomfast image built from the repository's Dockerfile (reused when current)."""
    ensure_bases()
    with _lock():
        digest = context_digest()
        if not force and image_label(tag) == digest:
            log(f"{tag}: current (cached)")
            return tag
        t0 = time.monotonic()
        cmd = ["buildah", "bud", *ISOLATION, *NETWORK, "--pull-never", "--layers=false",
               "--label", f"{LABEL}={digest}", "-f", str(ROOT / "Dockerfile"), "-t", tag, str(ROOT)]
        log("$ " + " ".join(cmd))
        logfile = WORK / "build.log"
        with open(logfile, "w") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            tail = logfile.read_text(errors="replace").splitlines()[-60:]
            raise ImageError(f"buildah bud failed (exit {proc.returncode}); {logfile}:\n" + "\n".join(tail))
        log(f"{tag}: built in {time.monotonic() - t0:.0f} s (log: {logfile})")
        # buildah 1.28 leaves the working container of a stage only copied from (FROM rust:1-slim
        # AS rust) and the stages' intermediate images behind
        names = _sh(["buildah", "containers", "--format", "{{.ContainerID}} {{.ContainerName}}"],
                    check=False, quiet=True).stdout.split("\n")
        for line in names:
            parts = line.split()
            if len(parts) == 2 and re.fullmatch(r"rust-working-container(-\d+)?", parts[1]):
                _sh(["buildah", "rm", parts[0]], check=False, quiet=True)
        _sh(["buildah", "rmi", "--prune"], check=False, quiet=True)
        return tag


def run(args: list[str], *, tag: str = IMAGE, mounts: list[tuple[str, str]] = (), env: dict | None = None,
        entrypoint: bool = True, **popen) -> subprocess.Popen:
    """``buildah run`` of a new working container of ``tag`` with the image's own entrypoint,
    user and working directory (as ``docker run --network host IMAGE ARGS`` would), mounts
    read-only (source, target); ``entrypoint=False``: ``args`` is the whole command (as a
    healthcheck's ``CMD`` runs). Returns the Popen; ``cleanup(proc)`` removes the container."""
    ctr = _sh(["buildah", "from", "--pull-never", tag], quiet=True).stdout.strip().splitlines()[-1]
    info = json.loads(_sh(["buildah", "inspect", "--type", "container", ctr], quiet=True).stdout)
    cfg = info["OCIv1"]["config"]
    cmd = ["buildah", "run", *ISOLATION, *NETWORK, "--terminal=false"]
    if cfg.get("User"):
        cmd += ["--user", cfg["User"]]
    if cfg.get("WorkingDir"):
        cmd += ["--workingdir", cfg["WorkingDir"]]
    for src, dst in mounts:
        cmd += ["--volume", f"{src}:{dst}:ro"]
    for k, v in (env or {}).items():
        cmd += ["--env", f"{k}={v}"]
    cmd += [ctr, "--", *((cfg.get("Entrypoint") or []) if entrypoint else []), *args]
    proc = subprocess.Popen(cmd, **popen)
    proc.container = ctr  # type: ignore[attr-defined]
    return proc


def cleanup(proc: subprocess.Popen) -> None:
    ctr = getattr(proc, "container", None)
    if ctr:
        subprocess.run(["buildah", "rm", ctr], capture_output=True)


def status() -> dict:
    out = {"missing": missing_tools()}
    if out["missing"]:
        return out
    for name, want in ((PYTHON_BASE, python_recipe), (RUST_BASE, rust_recipe), (IMAGE, context_digest)):
        have = image_label(name)
        out[name] = "absent" if have is None else ("current" if have == want() else "stale")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("bases", "image", "status", "clean"))
    p.add_argument("--force", action="store_true", help="rebuild even when current")
    p.add_argument("--tag", default=IMAGE, help=f"the image's tag (default {IMAGE})")
    a = p.parse_args(argv)
    try:
        if a.command == "bases":
            ensure_bases(force=a.force)
        elif a.command == "image":
            if a.force:
                ensure_bases(force=True)
            print(ensure_image(a.tag, force=a.force))
        elif a.command == "status":
            print(json.dumps(status(), indent=2))
        else:
            for name in (a.tag, RUST_BASE, PYTHON_BASE):
                _sh(["buildah", "rmi", "-f", name], check=False)
    except ImageError as exc:
        print(f"tools/image/build.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
