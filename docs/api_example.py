"""atomfast's Python API on a recorded capture, offline: callbacks per topic, typed events.

    python docs/api_example.py ../shared/fixtures/cryptofeed/KRAKEN.ws.48.0 ../shared/fixtures/cryptofeed/KRAKEN.ws.50.0
"""
import asyncio
import sys

import atomfast

# a capture: one file per recorded connection (these two: Kraken's trades and its order books)
feed = atomfast.Feed("kraken", capture=sys.argv[1:])
volume: dict[str, float] = {}
best: dict[str, atomfast.Spread] = {}
levels = 0


@feed.on("trades")
def on_trade(trade: atomfast.Trade) -> None:  # a plain function: called as the events are written
    volume[trade.symbol] = volume.get(trade.symbol, 0.0) + trade.size


@feed.on("lob")
def on_level(level: atomfast.Lob) -> None:
    global levels
    levels += 1


@feed.on("spread")
async def on_spread(spread: atomfast.Spread) -> None:  # a coroutine: awaited, in order
    best[spread.symbol] = spread


async def main() -> None:
    summary = await feed.run()  # inside your asyncio program; a plain script: feed.run_sync()
    print(f"{summary.frames} frames, {summary.events['trades']} trades, {levels} book levels, "
          f"{summary.checksum_ok} checksums ok, {summary.checksum_failed} failed ({summary.stopped})")
    for symbol in sorted(volume):
        print(f"traded {symbol}: {volume[symbol]:.8f}")
    for symbol, s in sorted(best.items()):
        print(f"{symbol}: {s.bid_size:.8f} @ {s.bid_price:g} / {s.ask_size:.8f} @ {s.ask_price:g}")


asyncio.run(main())
