"""Queries: the condition tree, its Python evaluator and the lazy query object."""

from doqu.query.base import BaseQueryAdapter
from doqu.query.conditions import OPERATORS, And, Leaf, Not, Or, parse_lookup

__all__ = ["BaseQueryAdapter", "OPERATORS", "And", "Leaf", "Not", "Or", "parse_lookup"]
