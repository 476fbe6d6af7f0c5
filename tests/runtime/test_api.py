"""The Python API (``atomfast.Feed``, ``atomfast.replay``): the README's example run verbatim, a
live feed inside an asyncio program against ``atomfast simulate`` with the counts of ``atomfast
replay``, callbacks that raise, stop and the summary, a sink beside the callbacks, the typing."""
from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import uvloop

import atomfast
from atomfast.testing import ROOT, SimProcess, child_env, fixture_path, run_cli

KRAKEN_48 = "cryptofeed/KRAKEN.ws.48.0"  # trades
KRAKEN_50 = "cryptofeed/KRAKEN.ws.50.0"  # books (checksummed)
KRAKEN_50_SYMBOLS = ["WAVES-EUR", "KSM-BTC", "ETH-CHF", "OMG-USD", "BTC-CHF", "ADA-BTC"]
EXAMPLE = ROOT / "docs" / "api_example.py"

#: what docs/api_example.py prints on KRAKEN.ws.48.0 + KRAKEN.ws.50.0 (counts: `atomfast replay`'s)
EXAMPLE_OUTPUT = """\
2530 frames, 10 trades, 6855 book levels, 2437 checksums ok, 0 failed (end of capture)
traded SC-EUR: 52944.61056448
traded XMR-USD: 4.15284339
ADA-BTC: 11947.13445094 @ 2.288e-05 / 7200.50427342 @ 2.29e-05
BTC-CHF: 0.05804973 @ 56060.3 / 0.01700000 @ 56194.2
ETH-CHF: 3.00000000 @ 2183.69 / 0.31000000 @ 2190.17
KSM-BTC: 0.21000000 @ 0.00756 / 2.18142427 @ 0.007566
OMG-USD: 200.00000000 @ 9.58607 / 200.00000000 @ 9.6048
WAVES-EUR: 651.13730823 @ 13.233 / 29.25957971 @ 13.2581
"""

#: the fields of `atomfast replay`'s summary that a run of the same capture reproduces exactly
EXACT = ("frames", "events", "checksum_ok", "checksum_failed", "gaps", "resyncs", "errors", "error_kinds")


def cli_replay(*captures: str) -> dict:
    """`atomfast replay CAPTURES --exchange kraken --sink null`: its JSON summary."""
    r = run_cli("replay", *map(fixture_path, captures), "--exchange", "kraken", "--sink", "null", timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.splitlines()[-1])


def without_receive_time(record: tuple) -> tuple:
    """A record less its ``atom_timestamp`` (this machine's receive time in a live run)."""
    d = record._asdict()  # type: ignore[attr-defined]
    d.pop("atom_timestamp")
    return tuple(d.values())


# --- (1) the README's example, verbatim ----------------------------------------------------------
def test_readme_example_runs_verbatim_on_a_capture():
    """docs/api_example.py (the README's example) as a user runs it: a subprocess from the project
    root on two recorded Kraken connections; its output exactly, and its counts those of
    `atomfast replay` of the same capture."""
    p48, p50 = fixture_path(KRAKEN_48), fixture_path(KRAKEN_50)
    r = subprocess.run([sys.executable, str(EXAMPLE), str(p48), str(p50)], cwd=ROOT, env=child_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == EXAMPLE_OUTPUT
    assert r.stderr == ""
    cli = cli_replay(KRAKEN_48, KRAKEN_50)
    assert (cli["frames"], cli["events"]["trades"], cli["events"]["lob"], cli["checksum_ok"],
            cli["checksum_failed"]) == (2530, 10, 6855, 2437, 0)


def test_readme_shows_the_example_verbatim():
    """The README's API section holds docs/api_example.py exactly, so what a user reads is what
    the test above runs."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    example = EXAMPLE.read_text()
    assert example in blocks, "README.md: the Python API section must show docs/api_example.py verbatim"


def test_example_and_api_type_check_strictly(tmp_path):
    """mypy --strict accepts the example and the API module; a callback of the wrong event type
    or an unknown topic is refused (the overloads of ``Feed.on``)."""
    if subprocess.run([sys.executable, "-m", "mypy", "--version"], capture_output=True).returncode != 0:
        pytest.skip("mypy is not installed (pip install mypy): the typing is not checked here")
    config = tmp_path / "mypy.ini"
    # follow_imports=silent: the rest of the package is read for its types, checked elsewhere; the
    # compiled modules' stubs are the native code's, not this API's
    config.write_text("[mypy]\nstrict = True\nfollow_imports = silent\ncache_dir = " + str(tmp_path / "cache")
                      + "\n[mypy-atomfast._book,atomfast._frame]\nignore_errors = True\n")
    ok = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config), "docs/api_example.py",
                         "atomfast/api.py", "atomfast/__init__.py"], cwd=ROOT, capture_output=True, text=True,
                        timeout=300)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-2000:]
    bad = tmp_path / "bad.py"
    bad.write_text(textwrap.dedent("""\
        import atomfast

        feed = atomfast.Feed("kraken", capture="x")


        @feed.on("trades")
        def wrong(level: atomfast.Lob) -> None:
            pass


        def on_trade(trade: atomfast.Trade) -> None:
            pass


        feed.on("trades", on_trade)
        feed.on("tardes", on_trade)
        reveal_type(feed.run_sync().events)
        """))
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config), str(bad)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    lines = [ln.split(":", 1)[1] for ln in r.stdout.splitlines() if ln.startswith(str(bad)) and ": note:" not in ln
             or "Revealed type" in ln]
    assert r.returncode == 1
    assert [ln.split(":")[0] for ln in lines] == ["6", "16", "17"], r.stdout[-3000:]
    assert '"_TradeF"' in lines[0] and "Callable[[Lob], None]" in lines[0]
    assert 'No overload variant of "on"' in lines[1]
    assert 'Revealed type is "dict[str, int]"' in lines[2]


# --- (2) a live feed inside an asyncio program ----------------------------------------------------
def test_live_feed_in_an_asyncio_program_counts_as_replay():
    """An asyncio program runs a live Feed against `atomfast simulate KRAKEN.ws.50.0` with async
    callbacks (and a plain one for every topic) beside its own task: the callbacks see exactly
    the events and checksums `atomfast replay` counts for the capture, the same records (less
    the receive time), and the final `stopped` status."""
    cli = cli_replay(KRAKEN_50)
    offline = atomfast.replay_capture(fixture_path(KRAKEN_50), "kraken", on={"lob": (lob_offline := []).append})
    assert {k: getattr(offline, k) for k in EXACT} == {k: cli[k] for k in EXACT}
    assert len(lob_offline) == cli["events"]["lob"] == 6855

    async def program(url: str) -> tuple[atomfast.Summary, dict]:
        feed = atomfast.Feed("kraken", endpoint=url, symbols=KRAKEN_50_SYMBOLS, channels=["lob"],
                             max_frames=cli["frames"])
        seen: dict = {"lob": [], "spread": [], "status": [], "all": Counter(), "ticks": 0}

        @feed.on("lob")
        async def on_lob(level: atomfast.Lob) -> None:
            seen["lob"].append(level)

        @feed.on("spread")
        async def on_spread(spread: atomfast.Spread) -> None:
            await asyncio.sleep(0)  # a coroutine that really yields
            seen["spread"].append(spread)

        feed.on("status", seen["status"].append)
        feed.on("*", lambda event: seen["all"].update([type(event).__name__]))

        async def ticker() -> None:  # the program's own work goes on beside the feed
            while True:
                seen["ticks"] += 1
                await asyncio.sleep(0.01)

        tick = asyncio.get_running_loop().create_task(ticker())
        summary = await feed.run()
        tick.cancel()
        assert feed.summary is summary
        return summary, seen

    with SimProcess(fixture_path(KRAKEN_50), "--pace", "fast") as sim:
        summary, seen = uvloop.run(program(sim.url))
    assert summary.stopped == "max frames" and summary.frames == cli["frames"]
    assert summary.checksum_ok == cli["checksum_ok"] == 2437 and summary.checksum_failed == 0
    assert summary.errors == 0 and summary.gaps == 0 and summary.resyncs == 0 and summary.callback_errors == 0
    assert summary.events["lob"] == len(seen["lob"]) == cli["events"]["lob"]
    assert summary.events["spread"] == len(seen["spread"]) == cli["events"]["spread"]
    assert summary.events["status"] == len(seen["status"])
    assert seen["all"] == Counter({"Lob": cli["events"]["lob"], "Spread": cli["events"]["spread"],
                                   "Status": summary.events["status"]})
    # the same records the replay produced, in the same order, only the receive time differs
    assert [without_receive_time(r) for r in seen["lob"]] == [without_receive_time(r) for r in lob_offline]
    assert all(type(r) is atomfast.Lob for r in seen["lob"])
    assert (seen["status"][-1].status, seen["status"][-1].reason) == ("stopped", "max frames")
    assert seen["ticks"] > 0


# --- (3) callbacks that raise ---------------------------------------------------------------------
def test_callback_errors_are_counted_logged_once_per_kind_and_the_feed_goes_on(caplog):
    """A callback raising on every 100th level and one raising on each trade: every error
    counted per kind, each kind logged once (with its traceback), the other callbacks still
    see every event, and the feed's own counts are untouched."""
    lob = Counter()

    def flaky(level: atomfast.Lob) -> None:
        lob["n"] += 1
        if lob["n"] % 100 == 0:
            raise ZeroDivisionError("every 100th")

    def after(level: atomfast.Lob) -> None:  # registered after the flaky one: still called
        lob["after"] += 1

    async def broken(trade: atomfast.Trade) -> None:
        raise ValueError(f"bad trade {trade.trade_id}")

    with caplog.at_level(logging.ERROR, logger="atomfast.api"):
        summary = atomfast.replay_capture([fixture_path(KRAKEN_48), fixture_path(KRAKEN_50)], "kraken",
                                  on={"lob": [flaky, after], "trades": broken})
    assert lob == {"n": 6855, "after": 6855}
    assert summary.callback_errors == 68 + 10
    assert summary.callback_error_kinds == {
        "lob callback test_callback_errors_are_counted_logged_once_per_kind_and_the_feed_goes_on.<locals>.flaky: "
        "ZeroDivisionError": 68,
        "trades callback test_callback_errors_are_counted_logged_once_per_kind_and_the_feed_goes_on.<locals>.broken: "
        "ValueError": 10,
    }
    assert summary.errors == 0 and summary.events["lob"] == 6855 and summary.events["trades"] == 10
    assert summary.checksum_ok == 2437
    records = [r for r in caplog.records if r.name == "atomfast.api"]
    assert len(records) == 2  # once per kind
    assert all(r.exc_info for r in records)
    assert "every 100th" in records[0].getMessage() + records[1].getMessage()


def test_callback_errors_in_a_live_feed():
    """The same in a live feed: an async callback that raises on every status, a sync one on
    every 1000th level; counted, and the feed runs to its end with every event delivered."""
    seen = Counter()

    async def bad_status(status: atomfast.Status) -> None:
        seen["status"] += 1
        raise RuntimeError(status.status)

    def every_1000th(level: atomfast.Lob) -> None:
        seen["lob"] += 1
        if seen["lob"] % 1000 == 0:
            raise KeyError(level.symbol)

    with SimProcess(fixture_path(KRAKEN_50), "--pace", "fast") as sim:
        feed = atomfast.Feed("kraken", endpoint=sim.url, symbols=KRAKEN_50_SYMBOLS, channels=["lob"],
                             max_frames=2481)
        feed.on("status", bad_status)
        feed.on("lob", every_1000th)
        summary = feed.run_sync()
    assert summary.stopped == "max frames" and summary.events["lob"] == seen["lob"] == 6855
    assert seen["status"] == summary.events["status"]
    assert summary.callback_error_kinds == {
        "status callback test_callback_errors_in_a_live_feed.<locals>.bad_status: RuntimeError": seen["status"],
        "lob callback test_callback_errors_in_a_live_feed.<locals>.every_1000th: KeyError": 6,
    }
    assert summary.callback_errors == seen["status"] + 6 and summary.errors == 0


# --- (4) stop and the summary ---------------------------------------------------------------------
def test_stop_from_a_callback_ends_a_replay_after_the_frame_in_hand():
    """``feed.stop()`` from a callback, in an asyncio program and in a plain script: the capture
    ends after the frame in hand; the summary says why and counts what the callbacks saw."""
    for mode in ("async", "sync"):
        feed = atomfast.Feed("kraken", capture=fixture_path(KRAKEN_50))
        levels: list[atomfast.Lob] = []

        def on_lob(level: atomfast.Lob, feed: atomfast.Feed = feed, levels: list = levels) -> None:
            levels.append(level)
            if len(levels) == 1000:
                feed.stop("enough")

        feed.on("lob", on_lob)
        summary = feed.run_sync() if mode == "sync" else asyncio.run(feed.run())
        assert summary.stopped == "enough", mode
        assert 1000 <= summary.events["lob"] == len(levels) < 6855, mode
        assert summary.frames < 2481 and summary.checksum_failed == 0, mode
        assert summary.as_dict()["events"]["lob"] == len(levels)
        # a feed runs again: the stop was that run's, the new run stops on its own
        levels.clear()
        again = feed.run_sync()
        assert again.stopped == "enough" and feed.summary is again and again.events["lob"] == len(levels), mode


def test_stop_a_live_feed_and_before_it_runs():
    """A live feed stopped from a callback closes its connections and ends with a `stopped`
    status carrying the reason; ``stop()`` before ``run`` ends the run at once; ``duration``."""
    with SimProcess(fixture_path(KRAKEN_50), "--pace", "recorded", "--loop") as sim:
        async def program() -> tuple[atomfast.Summary, list, atomfast.Summary, atomfast.Summary]:
            feed = atomfast.Feed("kraken", endpoint=sim.url, symbols=KRAKEN_50_SYMBOLS, channels=["lob"])
            statuses: list[atomfast.Status] = []

            @feed.on("status")
            def on_status(status: atomfast.Status) -> None:
                statuses.append(status)

            @feed.on("spread")
            async def on_spread(spread: atomfast.Spread) -> None:
                feed.stop("first spread")

            summary = await feed.run()
            early = atomfast.Feed("kraken", endpoint=sim.url, symbols=KRAKEN_50_SYMBOLS, channels=["lob"])
            early.stop("at once")
            stopped_early = await early.run()
            timed = await atomfast.Feed("kraken", endpoint=sim.url, symbols=["BTC-CHF"], channels=["lob"]).run(
                duration=0.5)
            return summary, statuses, stopped_early, timed

        summary, statuses, early, timed = uvloop.run(program())
    assert summary.stopped == "first spread" and summary.events["spread"] >= 1
    assert (statuses[-1].status, statuses[-1].reason) == ("stopped", "first spread")
    assert [s.status for s in statuses if not s.symbol][:1] == ["connected"]
    assert early.stopped == "at once" and early.events.get("lob", 0) == 0
    assert timed.stopped == "duration" and 0.4 < timed.seconds < 10


# --- a sink beside the callbacks, errors a user sees ------------------------------------------------
@pytest.mark.parametrize("capture, topic, fields, n", [(KRAKEN_48, "trades", ("symbol", "price", "trade_id"), 10),
                                                    (KRAKEN_50, "lob", ("symbol", "price", "size", "side"), None)])
def test_files_sink_beside_callbacks_gets_the_same_events(tmp_path, capture, topic, fields, n):
    """A callback beside the files sink sees every event the files hold, in order: the pipeline
    hands records where a callback reads them, though the files sink alone takes bytes."""
    pytest.importorskip("atomfast_avro", reason="the files sink needs the native Avro encoder (native/avro)")
    import fastavro

    seen: list = []
    summary = atomfast.replay_capture(fixture_path(capture), "kraken", on={topic: seen.append}, sink="files",
                                      data_dir=str(tmp_path))
    stored = []
    for f in sorted(tmp_path.glob(f"{topic}/*.avro")):
        with open(f, "rb") as fh:
            stored.extend(fastavro.reader(fh))
    assert len(stored) == len(seen) == summary.events[topic] > 0
    if n is not None:
        assert len(stored) == n
    assert [tuple(s[f] for f in fields) for s in stored] == [tuple(getattr(e, f) for f in fields) for e in seen]


def test_errors_a_user_sees(tmp_path):
    feed = atomfast.Feed("kraken", capture=fixture_path(KRAKEN_50))
    with pytest.raises(ValueError, match="unknown topic 'tardes'"):
        feed.on("tardes", print)  # type: ignore[call-overload]
    with pytest.raises(atomfast.UsageError, match="unknown exchange 'krakn'"):
        atomfast.Feed("krakn", endpoint="ws://127.0.0.1:9").run_sync()
    with pytest.raises(atomfast.CaptureError, match="not binance's"):
        atomfast.replay_capture(fixture_path(KRAKEN_50), "binance")
    with pytest.raises(ValueError, match="duration: a capture is replayed to its end"):
        atomfast.Feed("kraken", capture=fixture_path(KRAKEN_50), duration=1)
    with pytest.raises(RuntimeError, match="await feed.run"):
        async def inside() -> None:
            feed.run_sync()
        asyncio.run(inside())


def test_a_cancelled_replay_ends_quietly(caplog):
    """``await feed.run()`` of a capture cancelled (``asyncio.wait_for``) while an async callback
    is behind: the worker stops after the frame in hand (its summary says "cancelled"), no error is
    counted or logged."""
    feed = atomfast.Feed("kraken", capture=fixture_path(KRAKEN_50))
    seen: list[atomfast.Lob] = []

    @feed.on("lob")
    async def slow(level: atomfast.Lob) -> None:
        seen.append(level)
        await asyncio.sleep(0.001)

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(feed.run(), 0.2)

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    metrics = feed.metrics
    assert metrics is not None and metrics.frames < 2481 and metrics.errors.total == 0
    assert 0 < len(seen) < 6855
    assert feed.summary is not None and feed.summary.stopped == "cancelled"  # the worker's summary
    assert not [r for r in caplog.records if r.name.startswith("atomfast")]
