"""Bounds on a Decimal128 field that say what doqu's float comparison says."""

from __future__ import annotations

import decimal
import math
import operator
import sys
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from doqu.ext.mongodb.numbers import decimal_bounds, exact_double

OPS = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le,
       "$eq": operator.eq}
TEST = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}
EXACT = decimal.Context(prec=1200, Emin=-9999, Emax=9999)


def holds(bounds: dict[str, Decimal], value: Decimal) -> bool:
    return all(TEST[op](value, bound) for op, bound in bounds.items())


FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.5, 0.1, 2.0 ** 60, 5e-324, -5e-324, sys.float_info.max,
                     -sys.float_info.max, sys.float_info.min, 1e20, 9.99]),
)


@settings(max_examples=400, deadline=None)
@given(FLOATS, st.integers(-12, 12), st.sampled_from([decimal.ROUND_HALF_EVEN, decimal.ROUND_CEILING,
                                                      decimal.ROUND_FLOOR]))
@example(1.5, 2, decimal.ROUND_HALF_EVEN)   # exactly the upper midpoint (kept: 1.5 is even)
@example(0.1, 2, decimal.ROUND_HALF_EVEN)   # the upper midpoint of an odd significand
@example(2.0 ** 60 + 256, 2, decimal.ROUND_HALF_EVEN)   # odd, midpoints exact in 34 digits
@example(2.0 ** 60 + 256, -2, decimal.ROUND_HALF_EVEN)
@example(2.0 ** 60, -2, decimal.ROUND_HALF_EVEN)        # even, at a change of binade
def test_bounds_agree_with_float_rounding(f: float, quarters: int, rounding: str) -> None:
    # a decimal near f, in steps of a quarter of the gap to f's neighbour: every
    # midpoint and both sides of it; then rounded to what a Decimal128 holds
    toward = math.inf if quarters >= 0 else -math.inf
    neighbour = math.nextafter(f, toward)
    if math.isinf(neighbour):  # past the largest double: the gap below is the same
        neighbour = math.nextafter(f, -toward)
    gap = EXACT.subtract(Decimal(neighbour), Decimal(f)).copy_abs()
    near = EXACT.add(Decimal(f), EXACT.multiply(gap, EXACT.divide(Decimal(quarters), 4)))
    stored = decimal.Context(prec=34, rounding=rounding, Emin=-6143, Emax=6144).plus(near)
    for op, compare in OPS.items():
        bounds = decimal_bounds(op, f)
        assert all(len(b.as_tuple().digits) <= 34 for b in bounds.values())
        assert holds(bounds, stored) == compare(float(stored), f), (op, f, stored, bounds)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=None))
def test_exact_double(value: Decimal) -> None:
    assert exact_double(value) == (math.isfinite(float(value)) and Decimal(float(value)) == value)
    assert exact_double(Decimal("0.5")) and exact_double(Decimal("10")) and not exact_double(Decimal("0.1"))
