"""Settings: CLI flags > environment > keys/.env > config.ini > defaults (DESIGN.md: Settings)."""
from __future__ import annotations


import pytest

from atomfast.config import Secret, Settings, SettingsError, load_settings
from atomfast.testing import ROOT


@pytest.fixture
def layers(tmp_path):
    """Write config.ini and keys/.env in tmp_path; returns a loader bound to those files."""
    ini = tmp_path / "config.ini"
    env_file = tmp_path / "keys" / ".env"
    env_file.parent.mkdir()

    def write(ini_text: str | None = None, env_text: str | None = None):
        if ini_text is not None:
            ini.write_text(ini_text)
        if env_text is not None:
            env_file.write_text(env_text)

    def load(overrides=None, env=None):
        return load_settings(overrides, env=env or {}, env_file=env_file, config_ini=ini)

    load.write = write
    return load


def test_defaults_without_any_source(tmp_path):
    s = load_settings(env={}, env_file=tmp_path / "none.env", config_ini=tmp_path / "none.ini")
    d = Settings()
    assert s.kafka_bootstrap_servers == ""
    assert s.rpc_port == 50051 == d.rpc_port
    assert s.max_data_feeds == 25
    assert s.kafka_sasl_mechanism == "PLAIN"
    assert s.data_dir == "data"
    assert s.symbols == {}
    assert s.hostname  # falls back to the machine's name


def test_precedence_cli_env_dotenv_ini_defaults(layers):
    layers.write(
        "[atomfast]\nRPC_PORT = 1001\nMAX_DATA_FEEDS = 11\nKAFKA_TOPIC_PREFIX = ini.\nHOSTNAME = ini-host\n",
        "RPC_PORT=1002\nMAX_DATA_FEEDS=12\nKAFKA_TOPIC_PREFIX=dotenv.\n",
    )
    env = {"RPC_PORT": "1003", "MAX_DATA_FEEDS": "13"}
    s = layers({"rpc_port": 1004}, env)
    assert s.rpc_port == 1004  # CLI
    assert s.max_data_feeds == 13  # environment
    assert s.kafka_topic_prefix == "dotenv."  # keys/.env
    assert s.hostname == "ini-host"  # config.ini
    assert s.data_dir == "data"  # default

    assert layers(None, env).rpc_port == 1003
    assert layers({"rpc_port": None}, env).rpc_port == 1003  # an unset flag does not override
    assert layers().rpc_port == 1002
    layers.write(env_text="")
    assert layers().rpc_port == 1001
    layers.write(ini_text="")
    assert layers().rpc_port == 50051


def test_empty_environment_value_does_not_override(layers):
    layers.write(env_text="KAFKA_BOOTSTRAP_SERVERS=from-dotenv:9092\n")
    assert layers(env={"KAFKA_BOOTSTRAP_SERVERS": ""}).kafka_bootstrap_servers == "from-dotenv:9092"


def test_dotenv_syntax(layers):
    layers.write(
        env_text=(
            "# comment\n\n"
            "export KAFKA_BOOTSTRAP_SERVERS = 'a:1,b:2'\n"
            'SCHEMA_REGISTRY_URL="http://registry:8081"\n'
            "KAFKA_SASL_KEY=key\n"
            "KAFKA_SASL_SECRET=s3cr3t=with=equals\n"
        )
    )
    s = layers()
    assert s.kafka_bootstrap_servers == "a:1,b:2"
    assert s.schema_registry_url == "http://registry:8081"
    assert s.kafka_sasl_key == "key"
    assert isinstance(s.kafka_sasl_secret, Secret)
    assert s.kafka_sasl_secret.get() == "s3cr3t=with=equals"


def test_kafka_endpoints_is_an_alias_of_bootstrap_servers(layers):
    assert layers(env={"KAFKA_ENDPOINTS": "l4:9092"}).kafka_bootstrap_servers == "l4:9092"
    # the explicit name wins over the alias in the same source
    both = {"KAFKA_ENDPOINTS": "l4:9092", "KAFKA_BOOTSTRAP_SERVERS": "explicit:9092"}
    assert layers(env=both).kafka_bootstrap_servers == "explicit:9092"
    # a higher source wins whichever name it uses
    layers.write(env_text="KAFKA_BOOTSTRAP_SERVERS=dotenv:9092\n")
    assert layers(env={"KAFKA_ENDPOINTS": "l4:9092"}).kafka_bootstrap_servers == "l4:9092"
    layers.write("[atomfast]\nKAFKA_ENDPOINTS = ini:9092\n", "")
    assert layers().kafka_bootstrap_servers == "ini:9092"
    assert layers({"kafka_bootstrap_servers": "cli:9092"}).kafka_bootstrap_servers == "cli:9092"


def test_symbols_per_exchange_from_config_ini(layers):
    layers.write("[kraken]\nsymbols = BTC-USD, ETH-USD,\n  SOL-USD\n\n[Binance]\nsymbols = BTC-USDT\n")
    s = layers()
    assert s.symbols_for("kraken") == ["BTC-USD", "ETH-USD", "SOL-USD"]
    assert s.symbols_for("binance") == ["BTC-USDT"]
    assert s.symbols_for("coinbase") == []


def test_sasl_mechanism_normalised_and_checked(layers):
    assert layers(env={"KAFKA_SASL_MECHANISM": "scram-sha-512"}).kafka_sasl_mechanism == "SCRAM-SHA-512"
    with pytest.raises(SettingsError) as exc:
        layers(env={"KAFKA_SASL_MECHANISM": "GSSAPI"})
    assert "KAFKA_SASL_MECHANISM" in str(exc.value)


@pytest.mark.parametrize(
    "env, name",
    [
        ({"RPC_PORT": "abc"}, "RPC_PORT"),
        ({"RPC_PORT": "70000"}, "RPC_PORT"),
        ({"RPC_PORT": "0"}, "RPC_PORT"),
        ({"MAX_DATA_FEEDS": "many"}, "MAX_DATA_FEEDS"),
        ({"MAX_DATA_FEEDS": "-1"}, "MAX_DATA_FEEDS"),
    ],
)
def test_bad_number_names_the_setting(layers, env, name):
    with pytest.raises(SettingsError) as exc:
        layers(env=env)
    message = str(exc.value)
    assert name in message
    assert "environment" in message  # and where it came from
    assert "\n" not in message  # one clear line


def test_bad_number_in_config_ini_names_the_file(layers, tmp_path):
    layers.write("[atomfast]\nRPC_PORT = abc\n")
    with pytest.raises(SettingsError) as exc:
        layers()
    assert "RPC_PORT" in str(exc.value)
    assert "config.ini" in str(exc.value)


def test_bad_number_from_command_line(layers):
    with pytest.raises(SettingsError) as exc:
        layers({"rpc_port": "x"})
    assert "RPC_PORT" in str(exc.value) and "command line" in str(exc.value)


def test_unknown_key_in_atomfast_section(layers):
    layers.write("[atomfast]\nKAFKA_BOOTSTRAP_SERVER = typo:9092\n")
    with pytest.raises(SettingsError) as exc:
        layers()
    message = str(exc.value)
    assert "kafka_bootstrap_server" in message.lower()
    assert "unknown" in message
    assert "\n" not in message


def test_unknown_override_name(layers):
    with pytest.raises(SettingsError) as exc:
        layers({"no_such_setting": 1})
    assert "no_such_setting" in str(exc.value)


def test_bad_dotenv_line(layers):
    layers.write(env_text="KAFKA_BOOTSTRAP_SERVERS=a:1\nthis line has no equals sign\n")
    with pytest.raises(SettingsError) as exc:
        layers()
    assert ".env:2" in str(exc.value)


@pytest.mark.parametrize(
    "env",
    [{"KAFKA_SASL_KEY": "key"}, {"KAFKA_SASL_SECRET": "secret"}],
)
def test_half_set_sasl(layers, env):
    with pytest.raises(SettingsError) as exc:
        layers(env=env)
    message = str(exc.value)
    assert "KAFKA_SASL_KEY" in message and "KAFKA_SASL_SECRET" in message
    assert "secret" not in message.replace("KAFKA_SASL_SECRET", "")  # the value is not shown
    assert "\n" not in message


def test_sasl_split_across_sources_is_complete(layers):
    layers.write(env_text="KAFKA_SASL_SECRET=from-dotenv\n")
    s = layers(env={"KAFKA_SASL_KEY": "key"})
    assert (s.kafka_sasl_key, s.kafka_sasl_secret.get()) == ("key", "from-dotenv")


def test_secrets_never_shown(layers):
    layers.write(env_text="KAFKA_SASL_SECRET=hunter2-kafka\nSCHEMA_REGISTRY_API_SECRET=hunter2-registry\n")
    s = layers(env={"KAFKA_SASL_KEY": "key"})
    for text in (repr(s), str(s), f"{s}", repr(s.kafka_sasl_secret), str(s.schema_registry_api_secret)):
        assert "hunter2" not in text
    assert "***" in repr(s.kafka_sasl_secret)
    assert s.kafka_sasl_secret.get() == "hunter2-kafka"
    assert s.schema_registry_api_secret.get() == "hunter2-registry"
    assert bool(s.kafka_sasl_secret) and not Secret("")
    assert Secret("a") == Secret("a") != Secret("b")


def test_secret_from_command_line_stays_secret(layers):
    s = layers({"kafka_sasl_key": "k", "kafka_sasl_secret": "from-cli-hunter2"})
    assert isinstance(s.kafka_sasl_secret, Secret)
    assert "hunter2" not in repr(s)


def test_default_paths_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / ".env").write_text("KAFKA_TOPIC_PREFIX=cwd.\n")
    (tmp_path / "config.ini").write_text("[kraken]\nsymbols = BTC-USD\n")
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={})
    assert s.kafka_topic_prefix == "cwd."
    assert s.symbols_for("kraken") == ["BTC-USD"]


# ------------------------------------------------------------------------------------------------
# settings -> sink (atomfast.sinks.make_sink)


def test_make_sink_by_name_and_default(layers, tmp_path):
    from atomfast.metrics import Metrics
    from atomfast.sinks import make_sink
    from atomfast.sinks.files import FileSink
    from atomfast.sinks.null import NullSink
    from atomfast.sinks.stdout import StdoutSink

    s = layers(env={"ATOMFAST_DATA_DIR": str(tmp_path / "lake")})
    assert isinstance(make_sink("stdout", s, Metrics()), StdoutSink)
    assert isinstance(make_sink("null", s, Metrics()), NullSink)
    default = make_sink(None, s, Metrics())  # no Kafka configured: files
    assert isinstance(default, FileSink) and default.data_dir == tmp_path / "lake"
    other = make_sink("files", s, Metrics(), data_dir=str(tmp_path / "other"))
    assert other.data_dir == tmp_path / "other"
    with pytest.raises(SettingsError) as exc:
        make_sink("kafka", s, Metrics())
    assert "KAFKA_BOOTSTRAP_SERVERS" in str(exc.value)
    with pytest.raises(SettingsError) as exc:
        make_sink("carrier-pigeon", s, Metrics())
    assert "carrier-pigeon" in str(exc.value)


def test_make_sink_imports_kafka_lazily(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from atomfast.config import load_settings\n"
        "from atomfast.sinks import make_sink\n"
        f"make_sink('files', load_settings(env={{}}, env_file='-', config_ini='-'), None, data_dir={str(tmp_path)!r})\n"
        "make_sink('stdout', load_settings(env={}, env_file='-', config_ini='-'), None)\n"
        "print('confluent_kafka' in sys.modules)\n"
    )
    root = str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.kafka
def test_make_sink_kafka_creates_every_topic(kafka_bootstrap, layers):
    import uuid

    from confluent_kafka.admin import AdminClient

    from atomfast.events import TOPICS
    from atomfast.metrics import Metrics
    from atomfast.sinks import make_sink
    from atomfast.sinks.kafka import KafkaSink

    prefix = f"test-make-sink-{uuid.uuid4().hex[:8]}."
    # KAFKA_ENDPOINTS (level4's name) is enough, and the sink is the default once it is set
    s = layers(env={"KAFKA_ENDPOINTS": kafka_bootstrap, "KAFKA_TOPIC_PREFIX": prefix})
    metrics = Metrics()
    sink = make_sink(None, s, metrics)
    try:
        assert isinstance(sink, KafkaSink) and sink.framing == "single_object"
        topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
        assert {prefix + t for t in [*TOPICS, "raw"]} <= set(topics)
        from atomfast.avro import AvroEncoder
        from atomfast.events import Status

        record = Status("kraken", "", "connected", "", 1, 2)
        sink.write("status", [record], [b"kraken:"], AvroEncoder("single_object").encode_many("status", [record]))
        assert sink.flush(30) == 0
        assert metrics.delivery_latency.total == 1  # delivery latency wired into the metrics
    finally:
        sink.close()
