"""``L2Book.apply_scaled_sides``: levels sent as integers already at the book's scale (Phemex's
scaled ``[priceEp, size]``), against ``apply_sides`` of their exact text (``format_ticks``, what
a venue would otherwise send it): the same flags, rows (records and Avro bytes), levels and
texts, on random messages; and what it refuses (book unchanged, nothing written)."""
from __future__ import annotations

import random

import pytest

from atomfast._book import ASK, BID, SHAPES, AvroRows, L2Book, format_ticks
from atomfast.events import Lob

EX, SYM = "phemex", "BTC-USD-PERP"


def text_of(levels, pd: int, sd: int) -> list[tuple[str, str]]:
    return [(format_ticks(p, pd), format_ticks(s, sd)) for p, s in levels]


@pytest.mark.parametrize("pd,sd", [(8, 8), (4, 0), (0, 0), (2, 18), (18, 3)])
def test_same_as_apply_sides_of_the_text(pd, sd):
    rng = random.Random(pd * 100 + sd)
    scaled, texts = L2Book(pd, sd), L2Book(pd, sd)
    for i in range(400):
        first = rng.choice((BID, ASK))
        n1, n2 = (rng.randrange(40), rng.randrange(40)) if i % 50 == 0 else (rng.randrange(3), rng.randrange(3))

        def levels(n, side):
            base = 10**6 if side == BID else 10**6 + 500
            top = 2**53 - 1 if rng.random() < 0.05 else None
            return [(top or base + rng.randrange(-400, 400), rng.choice((0, 1, 7, 10**9, rng.randrange(2**53))))
                    for _ in range(n)]

        a, b = levels(n1, first), levels(n2, 1 - first)
        a = [tuple(lv) if rng.random() < 0.5 else list(lv) for lv in a]
        rows_s, rows_t = [], []
        avro_s, avro_t = AvroRows(b"", SHAPES["lob"]), AvroRows(b"", SHAPES["lob"])
        fs = scaled.apply_scaled_sides(first, a, b, rows_s, Lob, EX, SYM, 1000 + i, 2000 + i)
        ft = texts.apply_sides(first, text_of(a, pd, sd), text_of(b, pd, sd), rows_t, Lob, EX, SYM, 1000 + i, 2000 + i)
        assert fs == ft and rows_s == rows_t
        # the same message into Avro rows (on copies of the books as they were: applied again
        # changes nothing but the rows of removals, which are the same for both)
        scaled.apply_scaled_sides(first, a, b, avro_s, Lob, EX, SYM, 1000 + i, 2000 + i)
        texts.apply_sides(first, text_of(a, pd, sd), text_of(b, pd, sd), avro_t, Lob, EX, SYM, 1000 + i, 2000 + i)
        assert avro_s.take() == avro_t.take()
        assert scaled.levels(BID) == texts.levels(BID) and scaled.levels(ASK) == texts.levels(ASK)
        assert scaled.best() == texts.best()
    scaled._validate()
    assert len(scaled) > 0


def test_refused_values_leave_the_book_unchanged():
    b = L2Book(4, 0)
    assert b.apply_scaled_sides(BID, [(100000, 5)], [[100100, 7]], [], Lob, EX, SYM, 1, 2) != 0
    before = (b.levels(BID), b.levels(ASK))
    for bad, error in [((-1, 5), ValueError), ((100, -5), ValueError), ((0, 5), ValueError),
                       ((2**53, 1), ValueError), ((1, 2**53), ValueError), ((2**63, 1), ValueError),
                       ((10**30, 1), ValueError), (("100", 5), TypeError), ((100, 5.0), TypeError),
                       ((True, 5), TypeError), ((100,), ValueError)]:
        rows = []
        with pytest.raises(error):
            b.apply_scaled_sides(ASK, [(100200, 1)], [(99990, 1), bad], rows, Lob, EX, SYM, 1, 2)
        assert rows == [] and (b.levels(BID), b.levels(ASK)) == before
    assert b.apply_scaled_sides(ASK, [(2**53 - 1, 1)], None, [], Lob, EX, SYM, 1, 2) == 0  # the largest
    assert b.levels(ASK)[-1] == (format_ticks(2**53 - 1, 4), "1")
    assert b.apply_scaled_sides(BID, None, [], [], Lob, EX, SYM, 1, 2) == 0
