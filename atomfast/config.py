"""Settings: CLI flags > environment > keys/.env > config.ini > defaults.

Names are the seeds' (DESIGN.md: Settings), so their deployments carry over. Secrets are kept in
``Secret`` objects whose repr and str never show the value.
"""
from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping


class Secret:
    """A secret string that never shows itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting."""


@dataclass
class Settings:
    kafka_bootstrap_servers: str = ""
    kafka_sasl_key: str = ""
    kafka_sasl_secret: Secret = field(default_factory=lambda: Secret(""))
    kafka_sasl_mechanism: str = "PLAIN"
    kafka_topic_prefix: str = ""
    #: topics created at start: partitions and replication factor ("": the cluster's own
    #: defaults, num.partitions and default.replication.factor)
    kafka_topic_partitions: str = ""
    kafka_replication_factor: str = ""
    #: lz4 (default), zstd, none, gzip, snappy
    kafka_compression: str = ""
    #: when the broker is gone longer than the local queue holds: block (default) or spill
    kafka_buffer_policy: str = ""
    #: the Kafka layout: atomfast ("": its own topics) or level4 (level4.spread/.timesale/.status
    #: keyed by market id: atomfast/sinks/level4.py; ``atomfast serve`` only)
    kafka_topic_profile: str = ""
    #: files sink, on a full or read-only disk: bytes held in memory ("": 64 MiB; 512k, 64M,
    #: 1G) and what happens beyond them: block (default: the feed waits) or drop (counted)
    files_buffer_bytes: str = ""
    files_buffer_policy: str = ""
    schema_registry_url: str = ""
    schema_registry_api_key: str = ""
    schema_registry_api_secret: Secret = field(default_factory=lambda: Secret(""))
    hostname: str = ""
    rpc_port: int = 50051
    max_data_feeds: int = 25
    data_dir: str = "data"
    #: the exchanges ``run`` collects when ``--exchange`` names none (comma-separated)
    exchanges: str = ""
    #: exchange -> default symbols, from config.ini sections ([kraken] symbols = BTC-USD, ETH-USD)
    symbols: dict[str, list[str]] = field(default_factory=dict)
    #: exchange -> its channels, from config.ini sections ([kraken] channels = lob, trades)
    channels: dict[str, list[str]] = field(default_factory=dict)
    #: exchange -> its websocket URL replacing the exchange's ([kraken] endpoint = ws://...)
    endpoints: dict[str, str] = field(default_factory=dict)

    def symbols_for(self, exchange: str) -> list[str]:
        return list(self.symbols.get(exchange, []))

    def channels_for(self, exchange: str) -> list[str]:
        return list(self.channels.get(exchange, []))


# environment name -> Settings field (KAFKA_ENDPOINTS is level4's alias of the bootstrap servers)
ENV_NAMES = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka_bootstrap_servers",
    "KAFKA_ENDPOINTS": "kafka_bootstrap_servers",
    "KAFKA_SASL_KEY": "kafka_sasl_key",
    "KAFKA_SASL_SECRET": "kafka_sasl_secret",
    "KAFKA_SASL_MECHANISM": "kafka_sasl_mechanism",
    "KAFKA_TOPIC_PREFIX": "kafka_topic_prefix",
    "KAFKA_TOPIC_PARTITIONS": "kafka_topic_partitions",
    "KAFKA_REPLICATION_FACTOR": "kafka_replication_factor",
    "KAFKA_COMPRESSION": "kafka_compression",
    "KAFKA_BUFFER_POLICY": "kafka_buffer_policy",
    "KAFKA_TOPIC_PROFILE": "kafka_topic_profile",
    "FILES_BUFFER_BYTES": "files_buffer_bytes",
    "FILES_BUFFER_POLICY": "files_buffer_policy",
    "SCHEMA_REGISTRY_URL": "schema_registry_url",
    "SCHEMA_REGISTRY_API_KEY": "schema_registry_api_key",
    "SCHEMA_REGISTRY_API_SECRET": "schema_registry_api_secret",
    "HOSTNAME": "hostname",
    "RPC_PORT": "rpc_port",
    "MAX_DATA_FEEDS": "max_data_feeds",
    "ATOMFAST_DATA_DIR": "data_dir",
    "ATOMFAST_EXCHANGES": "exchanges",
}
_TYPES = {f.name: f.type for f in fields(Settings)}
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def read_env_file(path: str | Path) -> dict[str, str]:
    """``KEY=value`` lines (``#`` comments, optional quotes, optional ``export``)."""
    out: dict[str, str] = {}
    p = Path(path)
    if not p.is_file():
        return out
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{p} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise SettingsError(f"{p}: cannot read it ({exc.strerror})") from None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        if not sep:
            raise SettingsError(f"{p}:{n}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def _convert(name: str, raw: object, source: str):
    kind = _TYPES[name]
    if kind in ("int", int):
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise SettingsError(f"{source}: {name.upper()} must be a whole number, got {raw!r}") from None
        if value <= 0 or (name == "rpc_port" and value > 65535):
            raise SettingsError(f"{source}: {name.upper()} out of range: {value}")
        return value
    if kind in ("Secret", Secret):
        return raw if isinstance(raw, Secret) else Secret(str(raw))
    return str(raw).strip()


def load_settings(
    overrides: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    env_file: str | Path = "keys/.env",
    config_ini: str | Path | None = None,
) -> Settings:
    """Settings from all sources, highest first: ``overrides`` (CLI flags, by field name),
    environment, ``keys/.env``, the config file ([atomfast] keys by environment name; one
    section per exchange with ``symbols``), defaults (every exchange's default symbols are its
    scheme's). The config file is ``config_ini``, else ``ATOMFAST_CONFIG`` (``atomfast --config
    PATH`` sets it), else ``config.ini`` in the working directory if there is one; a file the
    user named (``ATOMFAST_CONFIG``) must exist."""
    env = os.environ if env is None else env
    settings = Settings()
    values: dict[str, object] = {}
    sources: dict[str, str] = {}

    ini = configparser.ConfigParser()
    named = env.get("ATOMFAST_CONFIG") or None if config_ini is None else None
    ini_path = Path(config_ini if config_ini is not None else named or "config.ini")
    if named is not None and not ini_path.is_file():
        raise SettingsError(f"the config file {ini_path} does not exist (--config / ATOMFAST_CONFIG)")
    if ini_path.is_file():
        try:
            ini.read(ini_path, encoding="utf-8")
        except configparser.Error as exc:
            raise SettingsError(f"{ini_path}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise SettingsError(f"{ini_path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
        for section in ini.sections():
            if section == "atomfast":
                for key, value in ini.items(section):
                    name = ENV_NAMES.get(key.upper())
                    if name is None:
                        raise SettingsError(f"{ini_path}: unknown setting {key!r} in [atomfast]")
                    values[name], sources[name] = value, str(ini_path)
            else:
                for key, table in (("symbols", settings.symbols), ("channels", settings.channels)):
                    if ini.has_option(section, key):
                        names = [s.strip() for s in ini.get(section, key).replace("\n", ",").split(",")]
                        table[section.lower()] = [s for s in names if s]
                if ini.has_option(section, "endpoint"):
                    settings.endpoints[section.lower()] = ini.get(section, "endpoint").strip()
    for layer, source in ((read_env_file(env_file), str(env_file)), (env, "environment")):
        for key, name in ENV_NAMES.items():
            if key == "KAFKA_ENDPOINTS" and layer.get("KAFKA_BOOTSTRAP_SERVERS"):
                continue  # the explicit name wins over the alias
            if key in layer and layer[key] != "":
                values[name], sources[name] = layer[key], source
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in _TYPES:
            raise SettingsError(f"unknown setting {name!r}")
        values[name], sources[name] = value, "command line"
    for name, value in values.items():
        if name in ("symbols", "channels", "endpoints"):
            continue
        setattr(settings, name, _convert(name, value, sources[name]))
    if settings.kafka_sasl_mechanism.upper() not in MECHANISMS:
        raise SettingsError(
            f"{sources.get('kafka_sasl_mechanism', 'settings')}: KAFKA_SASL_MECHANISM must be one of {', '.join(MECHANISMS)}"
        )
    settings.kafka_sasl_mechanism = settings.kafka_sasl_mechanism.upper()
    if bool(settings.kafka_sasl_key) != bool(settings.kafka_sasl_secret):
        raise SettingsError("KAFKA_SASL_KEY and KAFKA_SASL_SECRET go together: set both or neither")
    if not settings.hostname:
        import socket

        settings.hostname = socket.gethostname()
    return settings
