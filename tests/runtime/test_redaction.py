"""Credentials in outgoing messages never reach a recording or a log."""
import base64

from atomfast.capture import RecordWriter, open_capture
from atomfast.exchanges.coinbase import CoinbaseScheme
from atomfast.scheme import Scheme

SECRET = base64.b64encode(b"top-secret-hmac-key").decode()


def test_signed_coinbase_subscribe_is_redacted(monkeypatch, tmp_path):
    monkeypatch.setenv("COINBASE_API_KEY", "my-api-key-123")
    monkeypatch.setenv("COINBASE_API_SECRET", SECRET)
    monkeypatch.setenv("COINBASE_API_PASSPHRASE", "my-passphrase-456")
    scheme = CoinbaseScheme(lambda t, r: None, channels=["lob_l3"])
    [message] = scheme.subscribe_messages(CoinbaseScheme.channels["lob_l3"], ["BTC-USD"])
    assert "my-api-key-123" in message and "my-passphrase-456" in message  # what goes to the exchange
    redacted = CoinbaseScheme.redact(message)
    for secret in ("my-api-key-123", "my-passphrase-456", SECRET):
        assert secret not in redacted
    assert '"key":"***"' in redacted and '"passphrase":"***"' in redacted and '"signature":"***"' in redacted
    assert '"product_ids":["BTC-USD"]' in redacted
    # what `atomfast record` writes
    w = RecordWriter(tmp_path / "rec", "coinbase")
    w.sent(1, 0, CoinbaseScheme.redact(message))
    w.close()
    text = (tmp_path / "rec").read_text()
    assert "my-api-key-123" not in text and "my-passphrase-456" not in text
    assert [f.data for f in open_capture(tmp_path / "rec").frames()] == [redacted.encode()]


def test_schemes_without_secret_fields_pass_messages_through():
    msg = '{"event":"subscribe","pair":["XBT/USD"]}'
    assert Scheme.redact(msg) is msg
