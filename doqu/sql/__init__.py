"""The SQL query compiler shared by the SQL backends (SQLite, PostgreSQL, MariaDB).

Every SQL backend stores a record as one JSON document in one row
(``key``, ``data``). :class:`~doqu.sql.compiler.Compiler` turns doqu's
condition tree, ordering and slice into SQL text plus bound parameters; what
differs between engines lives in a small :class:`~doqu.sql.dialect.Dialect`
object. Values are always bound. A JSON path is bound too, except where the
dialect inlines a path made only of identifiers (as a quoted literal), which an
engine needs to match an expression index.

Writing a dialect
-----------------
Subclass :class:`Dialect` and fill in the primitives below; each returns a
:class:`Frag` (SQL text and its parameters, in order). ``t`` is a
:class:`Target`: the JSON value at ``t.steps`` inside the document column
``t.doc``, with ``t.path`` the path as SQL (a placeholder or a literal).

=========================  ==================================================
``placeholder``            ``"?"`` (sqlite3) or ``"%s"`` (psycopg, PyMySQL).
                           With ``%s`` drivers never emit a literal ``%``.
``quote_ident(name)``      an identifier, quoted (``"x"`` or `` `x` ``)
``quote_literal(text)``    a SQL string literal
``json_path(steps)``       the engine's path value for ``steps`` (``str`` keys,
                           ``int`` list indices); raise :class:`Unsupported`
                           for a key the engine cannot address
``path(steps)``            that path as SQL: a placeholder, or an inlined
                           literal for paths an index may cover
``kinds``                  doqu kind → the engine's JSON type names
                           (``null bool number string list dict``)
``kind_of(t)``             the JSON type name of the value, NULL when absent
``value(t)``               the value as an SQL scalar (what indexes cover)
``json_text(t)``           the value as JSON text, numbers in their stored text
``present(t)``             true when the value exists and is not JSON null
``absent(t)``              its opposite (both have defaults over ``kind_of``)
``is_kind(t, *kinds)``     the value is of one of these doqu kinds (default
                           over ``kind_of`` and ``kinds``)
``match(t, cond)``         ``cond`` is :class:`Points` (equal to one of
                           these) or :class:`Range` (between bounds) over one
                           kind (``number``/``string``/``bool``); kinds never
                           cross, strings compare by code point
``equals_structure(t, v)`` optional: equality with a list/dict operand in
                           one expression (default ``None``: the compiler
                           compares kind, length and every element instead)
``list_length(t)``         elements of a JSON array
``dict_size(t)``           keys of a JSON object
``list_has(t, points)``    t is an array with an element matching ``points``
``substring(t, s)``        t is a string containing ``s`` (no wildcards!)
``endswith(t, s)``         t is a string ending with ``s``
``regex(t, p, caseless)``  Python-compatible ``re.search``; ``None`` if the
                           engine cannot (the leaf then runs in Python)
``search(t, text)``        every ``\\w+`` word of text is a word of t,
                           case-folded; ``None`` if the engine cannot
``date_part(t, part, n)``  leading ``YYYY-MM-DD`` of a string, ``part`` is
                           ``year``/``month``/``day``
``order_terms(t)``         SQL terms sorting absent < number < string < dict
                           < list < bool; ``rank(t)`` (provided) is the first
``limit(start, stop)``     the LIMIT/OFFSET clause
``number_param(v)``        the value to bind for a number (e.g. Decimal →
                           float); raise :class:`Unsupported` if inexact
``string_param(s)``        the value to bind for a string
``upsert(table)``          INSERT of (key, data) replacing an existing key,
                           for the storage (default ``ON CONFLICT``)
=========================  ==================================================

The :class:`Compiler` gives ``select``, ``count``, ``delete``, ``values``
(DISTINCT JSON texts: decode them and finish with
:func:`doqu.query.evaluator.distinct_values`), ``condition`` and ``where``
for the building blocks, and ``supports`` / ``supports_ordering`` for a
query adapter's ``_supports`` hooks. It merges order comparisons on one
field into one range, and compiles structured equality element by element.

Every leaf must compile to an expression that is true, false or NULL; NULL
counts as false, and the compiler writes negation as ``(x) IS NOT TRUE`` so
that a condition on an absent field is false and its negation true. The
reference semantics are :mod:`doqu.query.evaluator`; a dialect raises
:class:`Unsupported` rather than approximate, and the query runs that
condition in Python instead. ``doqu.ext.sqlite.dialect`` is the worked
example.
"""

from doqu.sql.compiler import Compiler, Statement
from doqu.sql.dialect import Dialect, Frag, Points, Range, Target, Unsupported, join

__all__ = ["Compiler", "Dialect", "Frag", "Points", "Range", "Statement", "Target", "Unsupported", "join"]
