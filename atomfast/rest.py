"""Small async REST GET: instrument listings at start-up, book snapshots later.

``await fetch(url)`` runs a blocking ``urllib`` GET in the loop's default thread executor, so the
event loop (and the websocket hot path) never waits on it. TLS verifies against certifi's CA
bundle (``ssl_context()``, shared with the websocket feed). Errors are ``RestError`` with one
clear line: the URL and what went wrong (HTTP status and the start of the body, timeout,
connection refused, bad certificate, ...).

``await post(url, body=b"{}")`` is the same with a POST of a JSON body (``Content-Type:
application/json``) and the same errors (``RestError``, its line starting ``POST``): what a venue
asks before each connect (KuCoin's websocket token: ``Scheme.token_path``).

``rebase(url, base)`` maps an exchange URL onto an override (``--rest-endpoint``), and
``rest_base_for(ws_url)`` derives the REST base of a local simulator from its websocket URL.
"""
from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
import zlib
from functools import lru_cache

DEFAULT_TIMEOUT = 15.0
MAX_BODY = 256 * 1024 * 1024
USER_AGENT = "atomfast/0.1"


class RestError(Exception):
    """A REST request failed; ``str()`` is one line naming the method, the URL and the cause."""

    def __init__(self, url: str, message: str, status: int = 0, method: str = "GET") -> None:
        super().__init__(f"{method} {url}: {message}")
        self.url = url
        self.status = status


@lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    """A client TLS context verifying against certifi's CA bundle (system store as fallback)."""
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi is a dependency
        return ssl.create_default_context()


def check_url(url: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """``url`` if it is an absolute URL of one of ``schemes`` with a host; ValueError otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"bad URL {url!r}: expected {' or '.join(s + '://host[:port]/...' for s in schemes)}")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ValueError(f"bad URL {url!r}: invalid port") from None
    return url


def rest_base_for(ws_url: str) -> str:
    """The REST base of a websocket endpoint on the same host and port: ws -> http, wss -> https.

    Used when only ``--endpoint`` names a local simulator, which answers REST on its websocket port.
    """
    parts = urllib.parse.urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urllib.parse.urlunsplit((scheme, parts.netloc, "", "", ""))


def rebase(url: str, base: str | None, original_base: str = "") -> str:
    """``url`` (an exchange REST URL) moved onto the override ``base``.

    The override replaces scheme and host; when it has no path of its own, the original path is
    kept (``https://futures.kraken.com/derivatives/api/v3/x`` onto ``http://127.0.0.1:9`` gives
    ``http://127.0.0.1:9/derivatives/api/v3/x``). When it has a path, it replaces
    ``original_base``'s path prefix.
    """
    if not base:
        return url
    b = urllib.parse.urlsplit(base)
    u = urllib.parse.urlsplit(url)
    path = u.path
    bpath = b.path.rstrip("/")
    if bpath:
        obase = urllib.parse.urlsplit(original_base).path.rstrip("/") if original_base else ""
        if obase and path.startswith(obase):
            path = path[len(obase):]
        path = bpath + path
    return urllib.parse.urlunsplit((b.scheme, b.netloc, path, u.query, ""))


def _decode_body(url: str, body: bytes, encoding: str | None) -> bytes:
    encoding = (encoding or "").lower()
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except (OSError, zlib.error, EOFError) as exc:
        raise RestError(url, f"cannot decode {encoding} body: {exc}") from None
    return body


def fetch_sync(url: str, timeout: float = DEFAULT_TIMEOUT, headers: dict[str, str] | None = None,
               max_bytes: int = MAX_BODY, body: bytes | None = None) -> bytes:
    """GET ``url`` (with ``body``: POST it, as JSON) and return the answer's body (2xx only);
    RestError otherwise."""
    method = "GET" if body is None else "POST"
    try:
        check_url(url)
    except ValueError as exc:
        raise RestError(url, str(exc), method=method) from None
    hdrs = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate", "Accept": "*/*"}
    if body is not None:
        hdrs["Content-Type"] = "application/json"
    if headers:
        hdrs.update(headers)
    req = urllib.request.Request(url, data=body, headers=hdrs, method=method)
    ctx = ssl_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            answer = resp.read(max_bytes + 1)
            if len(answer) > max_bytes:
                raise RestError(url, f"body larger than {max_bytes} bytes", method=method)
            return _decode_body(url, answer, resp.headers.get("Content-Encoding"))
    except RestError:
        raise
    except urllib.error.HTTPError as exc:
        try:
            raw = _decode_body(url, exc.read(2000), exc.headers.get("Content-Encoding") if exc.headers else None)
            excerpt = raw[:200].decode("utf-8", "replace").strip()
        except Exception:  # noqa: BLE001 - the excerpt is a courtesy
            excerpt = ""
        msg = f"HTTP {exc.code} {exc.reason}" + (f": {excerpt}" if excerpt else "")
        raise RestError(url, msg, exc.code, method) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            msg = f"TLS certificate verification failed: {reason.verify_message}"
        elif isinstance(reason, (socket.timeout, TimeoutError)):
            msg = f"timed out after {timeout:g} s"
        elif isinstance(reason, socket.gaierror):
            msg = f"cannot resolve host: {reason.strerror or reason}"
        elif isinstance(reason, ConnectionRefusedError):
            msg = "connection refused"
        else:
            msg = str(reason)
        raise RestError(url, msg, method=method) from None
    except (socket.timeout, TimeoutError):
        raise RestError(url, f"timed out after {timeout:g} s", method=method) from None
    except (OSError, ValueError) as exc:  # ConnectionResetError, http.client errors, ...
        raise RestError(url, f"{type(exc).__name__}: {exc}", method=method) from None


async def fetch(url: str, timeout: float = DEFAULT_TIMEOUT, headers: dict[str, str] | None = None,
                max_bytes: int = MAX_BODY) -> bytes:
    """GET ``url`` without blocking the event loop; the body, or RestError."""
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(None, fetch_sync, url, timeout, headers, max_bytes)
    try:
        # the socket timeout bounds each read; this bounds the whole request
        return await asyncio.wait_for(fut, timeout * 2 + 1)
    except asyncio.TimeoutError:
        raise RestError(url, f"timed out after {timeout:g} s") from None


async def post(url: str, body: bytes = b"{}", timeout: float = DEFAULT_TIMEOUT,
               headers: dict[str, str] | None = None, max_bytes: int = MAX_BODY) -> bytes:
    """POST ``body`` (JSON) to ``url`` without blocking the event loop; the answer's body, or
    RestError (as ``fetch``)."""
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(None, fetch_sync, url, timeout, headers, max_bytes, body)
    try:
        return await asyncio.wait_for(fut, timeout * 2 + 1)
    except asyncio.TimeoutError:
        raise RestError(url, f"timed out after {timeout:g} s", method="POST") from None


__all__ = ["RestError", "check_url", "fetch", "fetch_sync", "post", "rebase", "rest_base_for", "ssl_context"]
