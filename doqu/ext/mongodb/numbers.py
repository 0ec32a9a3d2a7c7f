"""Comparing a float with a Decimal the way doqu's evaluator does, in MongoDB.

The evaluator compares a float with a Decimal *as floats* (``0.1 ==
Decimal("0.1")``), as engines that store JSON numbers do. MongoDB compares a
double with a ``Decimal128`` by exact value. The two agree except near the
rounding of one to the other, so:

* a Decimal operand ``D`` is compared exactly with ints and decimals and as
  ``float(D)`` with doubles (no double lies strictly between ``D`` and
  ``float(D)``, so the double condition is exact);
* a float operand ``f`` is compared exactly with ints and doubles, and for a
  ``Decimal128`` field ``d`` the condition ``float(d) OP f`` becomes bounds on
  ``d``: the decimals that round to ``f`` are those between the midpoints to
  ``f``'s neighbours, a midpoint itself rounding to the neighbour with the
  even significand (Python's ``float(Decimal)`` rounds half to even). A
  midpoint needs up to ~1075 digits; ``Decimal128`` has 34, and for a 34-digit
  ``d`` the test ``d > B`` equals ``d >= B`` rounded up to 34 digits.
"""

from __future__ import annotations

import decimal
import math
import struct

__all__ = ["exact_double", "decimal_bounds", "FLOATS_MEET_DECIMALS_AS_FLOATS"]


def _evaluator_rule() -> bool:
    from doqu.query.evaluator import same

    return bool(same(0.1, decimal.Decimal("0.1")))


#: Does the evaluator compare a float with a Decimal as floats? Read from it, not
#: assumed: when it compares exactly, MongoDB's exact comparisons already agree.
FLOATS_MEET_DECIMALS_AS_FLOATS = _evaluator_rule()

#: Enough digits to hold any double, or the midpoint of two, exactly.
_EXACT = decimal.Context(prec=1200, Emin=-9999, Emax=9999)
_UP = decimal.Context(prec=34, rounding=decimal.ROUND_CEILING, Emin=-6143, Emax=6144)
_DOWN = decimal.Context(prec=34, rounding=decimal.ROUND_FLOOR, Emin=-6143, Emax=6144)

#: For ``float(d) OP f``: (bound, inclusive when f's significand is even, ... odd).
_RULES = {
    "$gt": (("hi", False, True),),
    "$gte": (("lo", True, False),),
    "$lt": (("lo", False, True),),
    "$lte": (("hi", True, False),),
    "$eq": (("lo", True, False), ("hi", True, False)),
}
_LOWER = {"$gt", "$gte"}


def exact_double(value: decimal.Decimal) -> bool:
    """Is the Decimal exactly a (finite) double, so exact and float comparisons agree?"""
    as_float = float(value)
    return math.isfinite(as_float) and decimal.Decimal(as_float) == value


def _even(value: float) -> bool:
    return struct.unpack("<q", struct.pack("<d", value))[0] & 1 == 0


def _midpoints(f: float) -> tuple[decimal.Decimal, decimal.Decimal]:
    """The rounding boundaries below and above ``f``."""
    here = decimal.Decimal(f)
    below, above = math.nextafter(f, -math.inf), math.nextafter(f, math.inf)
    if math.isinf(above):  # the largest double: its ulp is the gap below it
        above_d = _EXACT.add(here, _EXACT.subtract(here, decimal.Decimal(below)))
    else:
        above_d = decimal.Decimal(above)
    if math.isinf(below):
        below_d = _EXACT.subtract(here, _EXACT.subtract(decimal.Decimal(above), here))
    else:
        below_d = decimal.Decimal(below)
    lo = _EXACT.divide(_EXACT.add(below_d, here), 2)
    hi = _EXACT.divide(_EXACT.add(here, above_d), 2)
    return lo, hi


def decimal_bounds(op: str, f: float) -> dict[str, decimal.Decimal]:
    """Conditions on a Decimal128 ``d`` (``{'$gte': B, ...}``) equivalent to ``float(d) OP f``.

    Every bound has at most 34 significant digits.
    """
    lo, hi = _midpoints(f)
    even = _even(f)
    out: dict[str, decimal.Decimal] = {}
    for which, if_even, if_odd in _RULES[op]:
        bound = lo if which == "lo" else hi
        inclusive = if_even if even else if_odd
        above = which == "lo" if op == "$eq" else op in _LOWER  # d must be above the bound
        rounded = (_UP if above else _DOWN).plus(bound)
        if rounded != bound:  # a 34-digit d never equals the bound: round it inwards
            inclusive = True
        key = ("$gte" if inclusive else "$gt") if above else ("$lte" if inclusive else "$lt")
        out[key] = rounded
    return out
