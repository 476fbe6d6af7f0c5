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

The lookup side (schema by id, cached, with the same auth) is ``atomfast consume``'s
:class:`~atomfast.commands.consume.SchemaRegistry`; :class:`SchemaRegistry` here adds
registration to it.
"""
from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Iterable, Mapping

from .commands.consume import RegistryError
from .commands.consume import SchemaRegistry as _LookupRegistry

__all__ = ["SchemaRegistry", "RegistryError", "subject_for", "register_schemas"]

log = logging.getLogger("atomfast.registry")

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


class SchemaRegistry(_LookupRegistry):
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
        from .avro import load_schemas

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
