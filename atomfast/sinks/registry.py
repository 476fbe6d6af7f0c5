"""Schema Registry: register atomfast's schemas once at start; values then carry their ids.

With ``SCHEMA_REGISTRY_URL`` set (and, for a hosted registry, ``SCHEMA_REGISTRY_API_KEY`` /
``SCHEMA_REGISTRY_API_SECRET``: HTTP basic auth), the Kafka sink registers every schema of
``schemas/*.avsc`` under the **topic-name subject strategy** (``<topic as named on the
broker>-value``, e.g. ``prod.trades-value``: what Confluent's serialisers use by default) and
writes values in the **Confluent wire format**: magic byte ``0``, the 4-byte big-endian schema
id, the Avro body. A standard consumer decodes them with a Schema Registry deserialiser
(``confluent_kafka.schema_registry.avro.AvroDeserializer``, Java's ``KafkaAvroDeserializer``).

Registration happens once, when the sink is made (``POST /subjects/{subject}/versions``:
registering a schema the subject already holds answers its existing id, so restarts and
several collectors agree). A registry that cannot be reached is retried for ``retry_for``
seconds; an answer that refuses the schema (409: incompatible with the subject's history, 422:
invalid, 401/403: credentials) fails at once with the registry's own message.

The server speaks the Confluent REST API: Confluent Schema Registry, Karapace, Redpanda, or
Apicurio Registry at its compatibility path (``http://host:8080/apis/ccompat/v7``): the URL
is the API's base, the paths above are appended to it.

The lookup side (schema by id, cached, with the same auth) is :class:`SchemaLookup`, which
``atomfast consume`` uses to decode Confluent-framed values; :class:`SchemaRegistry` adds
registration to it (the Kafka sink's side).
"""
from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterable, Mapping

__all__ = ["SchemaLookup", "SchemaRegistry", "RegistryError", "subject_for", "register_schemas"]

log = logging.getLogger("atomfast.registry")  # the name its log lines have always had

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def subject_for(topic: str, prefix: str = "") -> str:
    """TopicNameStrategy: the value subject of a topic (named as on the broker)."""
    return f"{prefix}{topic}-value"


def _safe_url(url: str) -> str:
    """The URL without user:password@ (never in a log line or an error)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


class RegistryError(LookupError):
    """The Schema Registry has no (Avro) schema for an id, or could not be asked."""


class SchemaLookup:
    """Schemas by id from a Confluent Schema Registry (``GET /schemas/ids/{id}``), cached.
    A failed lookup is remembered for ``retry_after`` seconds, so a burst of messages with an
    unknown id costs one request."""

    def __init__(self, url: str, api_key: str = "", api_secret: str = "", timeout: float = 10.0,
                 retry_after: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.username is not None and not api_key:
            # credentials in the URL (``https://key:secret@host``, what Confluent's clients take
            # with basic.auth.credentials.source=URL): basic auth, and the URL without them
            api_key = urllib.parse.unquote(parts.username)
            api_secret = urllib.parse.unquote(parts.password or "")
        self.url = _safe_url(url).rstrip("/")
        self.timeout = timeout
        self.retry_after = retry_after
        self._auth = None
        if api_key:
            token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
            self._auth = f"Basic {token}"
        self._cache: dict[int, dict] = {}
        self._failed: dict[int, tuple[float, str]] = {}
        self.requests = 0

    def __repr__(self) -> str:
        return f"SchemaRegistry({self.url!r})"

    def schema(self, schema_id: int) -> dict:
        """The schema (parsed JSON) with this id; RegistryError when the registry has none."""
        cached = self._cache.get(schema_id)
        if cached is not None:
            return cached
        failed = self._failed.get(schema_id)
        if failed is not None and time.monotonic() - failed[0] < self.retry_after:
            raise RegistryError(failed[1])
        request = urllib.request.Request(f"{self.url}/schemas/ids/{schema_id}",
                                         headers={"Accept": "application/vnd.schemaregistry.v1+json, application/json"})
        if self._auth:
            request.add_header("Authorization", self._auth)
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = json.loads(response.read())
            if body.get("schemaType", "AVRO") != "AVRO":
                raise RegistryError(f"schema id {schema_id} is a {body['schemaType']} schema, not Avro")
            schema = json.loads(body["schema"])
        except urllib.error.HTTPError as exc:
            reason = f"schema id {schema_id}: registry {self.url} answered HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
            reason = f"schema id {schema_id}: registry {self.url} failed: {exc}"
        except RegistryError as exc:
            reason = str(exc)
        else:
            self._cache[schema_id] = schema
            return schema
        self._failed[schema_id] = (time.monotonic(), reason)
        raise RegistryError(reason)

    __getitem__ = schema
    __call__ = schema

    def get(self, schema_id: int, default: Any = None) -> Any:
        try:
            return self.schema(schema_id)
        except RegistryError:
            return default


class SchemaRegistry(SchemaLookup):
    """A Confluent-REST Schema Registry client: lookup by id (cached) and registration."""

    def __init__(self, url: str, api_key: str = "", api_secret: str = "", timeout: float = 10.0,
                 retry_after: float = 30.0) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise RegistryError(f"SCHEMA_REGISTRY_URL must be an http(s) URL, not {_safe_url(url or '')!r}")
        super().__init__(url, api_key, api_secret, timeout, retry_after)
        self.safe_url = _safe_url(self.url)

    def __repr__(self) -> str:
        return f"SchemaRegistry({self.safe_url!r})"

    def _request(self, method: str, path: str, body: dict | None = None) -> dict | list:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Accept": f"{CONTENT_TYPE}, application/json"})
        if data is not None:
            request.add_header("Content-Type", CONTENT_TYPE)
        if self._auth:
            request.add_header("Authorization", self._auth)
        self.requests += 1
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            text = response.read()
        return json.loads(text) if text else {}

    def register(self, subject: str, schema: Mapping | str, retry_for: float = 30.0) -> int:
        """Register ``schema`` (Avro) under ``subject``; its id (the existing one if the subject
        already holds this schema). Connection failures are retried for ``retry_for`` s."""
        text = schema if isinstance(schema, str) else json.dumps(schema, separators=(",", ":"))
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
        deadline = time.monotonic() + retry_for
        delay = 0.5
        while True:
            try:
                answer = self._request("POST", path, {"schema": text, "schemaType": "AVRO"})
            except urllib.error.HTTPError as exc:
                detail = _error_text(exc)
                if exc.code >= 500 and time.monotonic() < deadline:
                    problem = f"HTTP {exc.code}: {detail}"
                else:
                    raise RegistryError(
                        f"registering {subject!r} at {self.safe_url}: HTTP {exc.code}: {detail}") from None
            except (urllib.error.URLError, OSError, ValueError) as exc:
                problem = str(getattr(exc, "reason", exc))
                if time.monotonic() >= deadline:
                    raise RegistryError(
                        f"the Schema Registry at {self.safe_url} cannot be reached "
                        f"(registering {subject!r}): {problem}") from None
            else:
                try:
                    schema_id = int(answer["id"])  # type: ignore[index]
                except (KeyError, TypeError, ValueError):
                    raise RegistryError(
                        f"registering {subject!r} at {self.safe_url}: unexpected answer {answer!r:.200}") from None
                parsed = json.loads(text)
                self._cache[schema_id] = parsed  # the lookup side needs no request for our own ids
                return schema_id
            log.warning("schema registry %s: %s; retrying in %.1fs", self.safe_url, problem, delay)
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 5.0)

    def subjects(self) -> list[str]:
        answer = self._request("GET", "/subjects")
        return list(answer) if isinstance(answer, list) else []


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
        return str(body.get("message") or body.get("detail") or body)[:300]
    except Exception:  # noqa: BLE001 - not JSON
        return exc.reason if isinstance(exc.reason, str) else str(exc)


def register_schemas(registry: SchemaRegistry, topics: Iterable[str], prefix: str = "",
                     schemas: Mapping[str, dict] | None = None, retry_for: float = 30.0) -> dict[str, int]:
    """Register each topic's schema under ``<prefix><topic>-value``; topic -> schema id."""
    if schemas is None:
        from ..avro import load_schemas

        schemas = load_schemas()
    ids: dict[str, int] = {}
    started = time.monotonic()
    for topic in topics:
        if topic not in schemas:
            raise RegistryError(f"no schema for topic {topic!r}")
        ids[topic] = registry.register(subject_for(topic, prefix), schemas[topic], retry_for)
    log.info("registered %d schemas at %s in %.2fs (subjects %s..%s)", len(ids), registry.safe_url,
             time.monotonic() - started, subject_for(next(iter(ids), "?"), prefix),
             subject_for(list(ids)[-1] if ids else "?", prefix))
    return ids
