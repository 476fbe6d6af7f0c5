"""From scheme events to sink writes: the per-frame batch.

A scheme calls ``emit(topic, record)`` for every event of a frame (or appends to
``rows(topic)`` from a batch call such as the book's ``apply_sides``); the frame driver calls
``end_frame(recv_ns)`` after the frame. Each topic's events of the frame are encoded in ONE call
to the Rust encoder (values and ``exchange:symbol`` keys together) and handed to the sink in one
``write``: no queue, task or Future between a frame and ``producer.produce()``. Events are
counted per topic in ``metrics.events``; with ``timed`` (a live feed: ``recv_ns`` is this
machine's clock) receipt -> produce() latency goes to ``metrics.produce_latency``.

``discard()`` drops a frame's events unwritten (``atomfast process`` rebuilding state);
``close()`` writes what is left and closes the sink.

The implementation is compiled (``native/frame/_frame.pyx``): every frame of every venue passes
through it.
"""
from __future__ import annotations

from ._frame import Pipeline

__all__ = ["Pipeline"]
