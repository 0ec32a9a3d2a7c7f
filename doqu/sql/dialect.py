"""SQL fragments and the :class:`Dialect` base: what one SQL engine spells its own way.

See :mod:`doqu.sql` for the list of primitives a dialect provides. The
defaults here are plain SQL guarded by the JSON type, correct wherever the
engine's ``value(t, kind)`` yields NULL or a value of the asked kind; engines
override them to let indexes do the work (``doqu.ext.sqlite.dialect``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Mapping, Sequence

__all__ = ["Frag", "join", "Target", "Points", "Range", "Unsupported", "Dialect", "Step"]

Step = str | int  # a dict key, or an index into a JSON array


class Unsupported(Exception):
    """The engine cannot answer this exactly; the condition runs in Python instead."""


@dataclass(frozen=True)
class Frag:
    """A piece of SQL and the parameters its placeholders take, in order."""

    sql: str
    params: tuple[Any, ...] = ()

    def __add__(self, other: "Frag | str") -> "Frag":
        if isinstance(other, str):
            return Frag(self.sql + other, self.params)
        return Frag(self.sql + other.sql, self.params + other.params)

    def __radd__(self, other: str) -> "Frag":
        return Frag(other + self.sql, self.params)

    def wrap(self, before: str = "(", after: str = ")") -> "Frag":
        return Frag(before + self.sql + after, self.params)


TRUE = Frag("TRUE")
FALSE = Frag("FALSE")


def join(separator: str, frags: Iterable[Frag]) -> Frag:
    """Concatenate fragments with ``separator``; parameters follow in the same order."""
    parts = list(frags)
    return Frag(separator.join(f.sql for f in parts), tuple(p for f in parts for p in f.params))


def conj(frags: Iterable[Frag]) -> Frag:
    """``a AND b AND ...`` (TRUE when empty)."""
    parts = [f for f in frags if f is not TRUE]
    if any(f is FALSE for f in parts):
        return FALSE
    if not parts:
        return TRUE
    return parts[0] if len(parts) == 1 else join(" AND ", (p.wrap() for p in parts))


def disj(frags: Iterable[Frag]) -> Frag:
    """``a OR b OR ...`` (FALSE when empty)."""
    parts = [f for f in frags if f is not FALSE]
    if any(f is TRUE for f in parts):
        return TRUE
    if not parts:
        return FALSE
    return parts[0] if len(parts) == 1 else join(" OR ", (p.wrap() for p in parts))


@dataclass(frozen=True)
class Target:
    """The JSON value at ``steps`` inside the JSON column ``doc``; ``path`` is that path as SQL."""

    doc: str
    steps: tuple[Step, ...]
    path: Frag


@dataclass(frozen=True)
class Points:
    """Values of one ``kind`` equal to one of ``values`` (already converted for binding)."""

    kind: str  # 'number', 'string' or 'bool'
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Range:
    """Values of one ``kind`` between the bounds; ``None`` leaves a side open."""

    kind: str  # 'number' or 'string'
    low: Any = None
    low_inclusive: bool = True
    high: Any = None
    high_inclusive: bool = True

    def holds(self, value: Any) -> bool:
        """Is ``value`` (of this kind) inside the range? For deciding guards in Python."""
        if self.low is not None and (value < self.low or (value == self.low and not self.low_inclusive)):
            return False
        if self.high is not None and (value > self.high or (value == self.high and not self.high_inclusive)):
            return False
        return True

    def may_hold_prefix(self, char: str) -> bool:
        """Might a string starting with ``char`` lie inside the range? (May say yes wrongly, never no.)"""
        after = chr(ord(char) + 1)
        if self.low is not None and self.low >= after:
            return False
        if self.high is not None and (self.high < char or (self.high == char and not self.high_inclusive)):
            return False
        return True


class Dialect:
    """What differs between SQL engines; one instance per storage.

    Override the primitives listed in :mod:`doqu.sql`. Methods take
    :class:`Target` objects and return :class:`Frag` objects; a method
    raises :class:`Unsupported` for anything it cannot answer exactly.
    """

    name: ClassVar[str] = "sql"
    placeholder: ClassVar[str] = "?"
    #: doqu kind → the engine's names for JSON types (as ``kind_of`` returns them).
    kinds: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "null": ("null",), "bool": ("true", "false"), "number": ("number",),
        "string": ("string",), "list": ("array",), "dict": ("object",),
    }
    #: The documented order of kinds; absent sorts first (rank 0).
    kind_rank: ClassVar[Mapping[str, int]] = {
        "number": 1, "string": 2, "dict": 3, "list": 4, "bool": 5,
    }

    # -- names and literals ---------------------------------------------------
    def quote_ident(self, name: str) -> str:
        if not isinstance(name, str) or not name or "\x00" in name:
            raise ValueError(f"invalid SQL identifier {name!r}")
        return '"' + name.replace('"', '""') + '"'

    def quote_literal(self, text: str) -> str:
        if "\x00" in text:
            raise Unsupported("NUL in a SQL literal")
        return "'" + text.replace("'", "''") + "'"

    def param(self, value: Any) -> Frag:
        return Frag(self.placeholder, (value,))

    def params(self, values: Sequence[Any]) -> Frag:
        return Frag(", ".join([self.placeholder] * len(values)), tuple(values))

    # -- paths ------------------------------------------------------------------
    def json_path(self, steps: Sequence[Step]) -> Any:
        raise NotImplementedError

    def path(self, steps: Sequence[Step]) -> Frag:
        """The path as SQL; bound by default."""
        return self.param(self.json_path(steps))

    def target(self, doc: str, steps: Sequence[Step]) -> Target:
        steps = tuple(steps)
        return Target(doc, steps, self.path(steps))

    def child(self, t: Target, step: Step) -> Target:
        return self.target(t.doc, t.steps + (step,))

    # -- access ---------------------------------------------------------------------
    def kind_of(self, t: Target) -> Frag:
        raise NotImplementedError

    def value(self, t: Target, kind: str | None = None) -> Frag:
        raise NotImplementedError

    def json_text(self, t: Target) -> Frag:
        raise NotImplementedError

    def is_kind(self, t: Target, *kinds: str) -> Frag:
        names = [n for k in kinds for n in self.kinds[k]]
        if len(names) == 1:
            return self.kind_of(t) + f" = {self.quote_literal(names[0])}"
        return self.kind_of(t) + f" IN ({', '.join(self.quote_literal(n) for n in names)})"

    def present(self, t: Target) -> Frag:
        null = self.quote_literal(self.kinds["null"][0])
        return Frag("coalesce(") + self.kind_of(t) + f", {null}) <> {null}"

    def absent(self, t: Target) -> Frag:
        null = self.quote_literal(self.kinds["null"][0])
        return Frag("coalesce(") + self.kind_of(t) + f", {null}) = {null}"

    def list_length(self, t: Target) -> Frag:
        raise Unsupported("list length")

    def dict_size(self, t: Target) -> Frag:
        raise Unsupported("dict size")

    # -- conditions -----------------------------------------------------------------
    def match(self, t: Target, cond: Points | Range) -> Frag:
        """Kind-guarded comparison; correct wherever ``value`` of another kind is NULL."""
        if cond.kind == "bool":
            assert isinstance(cond, Points)
            names = [self.kinds["bool"][0 if v else 1] for v in dict.fromkeys(cond.values)]
            return self.kind_of(t) + f" IN ({', '.join(self.quote_literal(n) for n in names)})"
        value = self.value(t, cond.kind)
        guard = self.is_kind(t, cond.kind)
        if isinstance(cond, Points):
            if len(cond.values) == 1:
                test = value + " = " + self.param(cond.values[0])
            else:
                test = value + " IN (" + self.params(cond.values) + ")"
            return conj([guard, test])
        parts = [guard]
        if cond.low is not None:
            parts.append(value + (" >= " if cond.low_inclusive else " > ") + self.param(cond.low))
        if cond.high is not None:
            parts.append(value + (" <= " if cond.high_inclusive else " < ") + self.param(cond.high))
        return conj(parts)

    def equals_structure(self, t: Target, value: Any) -> Frag | None:
        """Equality with a list or dict operand in one expression, where the engine's JSON
        type compares structurally as :func:`doqu.query.evaluator.same` does; ``None`` (the
        default) lets the compiler spell it out element by element."""
        return None

    def list_has(self, t: Target, cond: Points) -> Frag:
        raise Unsupported("list elements")

    def substring(self, t: Target, needle: str) -> Frag:
        raise Unsupported("substring")

    def endswith(self, t: Target, suffix: str) -> Frag:
        raise Unsupported("endswith")

    def regex(self, t: Target, pattern: str, caseless: bool) -> Frag | None:
        return None

    def search(self, t: Target, text: str) -> Frag | None:
        return None

    def date_part(self, t: Target, part: str, number: int) -> Frag:
        raise Unsupported("date parts")

    # -- ordering and paging ------------------------------------------------------------
    def rank(self, t: Target) -> Frag:
        """The kind's rank in the documented order (absent 0 ... bool 5)."""
        whens = " ".join(
            f"WHEN {self.quote_literal(name)} THEN {self.kind_rank[kind]}"
            for kind in ("number", "string", "dict", "list", "bool") for name in self.kinds[kind]
        )
        return Frag("CASE ") + self.kind_of(t) + f" {whens} ELSE 0 END"

    def order_terms(self, t: Target) -> list[Frag]:
        """Terms that sort like :func:`doqu.query.evaluator.order_key`, ascending."""
        raise Unsupported("ordering")

    def limit(self, start: int, stop: int | None) -> Frag:
        if stop is None:
            return Frag("OFFSET ") + self.param(start) if start else Frag("")
        return Frag("LIMIT ") + self.param(stop - start) + " OFFSET " + self.param(start)

    # -- operands --------------------------------------------------------------------------
    def number_param(self, value: Any) -> Any:
        return value

    def string_param(self, value: str) -> str:
        if "\x00" in value:
            raise Unsupported("NUL in a string operand")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Unsupported("a string that is not valid Unicode") from None
        return value

    # -- writing (for the storages) -----------------------------------------------------------
    def upsert(self, table: str, key_column: str = "key", data_column: str = "data") -> str:
        """INSERT of (key, data) that replaces an existing record with the same key."""
        t, k, d = self.quote_ident(table), self.quote_ident(key_column), self.quote_ident(data_column)
        p = self.placeholder
        return (f"INSERT INTO {t} ({k}, {d}) VALUES ({p}, {p}) "
                f"ON CONFLICT ({k}) DO UPDATE SET {d} = excluded.{d}")
