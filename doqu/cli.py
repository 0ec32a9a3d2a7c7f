"""The ``doqu`` command: inspect, copy, load, dump and query any storage by URL.

    doqu inspect sqlite:///app.db                   # a Document class that fits the records
    doqu copy shelve:///old.db sqlite:///new.db     # any engine to any engine, verified
    doqu load sqlite:///app.db people.jsonl         # JSON lines, JSON, YAML or CSV
    doqu dump sqlite:///app.db --where age__gte=18  # the same formats out
    doqu query sqlite:///app.db --where name__startswith=A --order-by=-age --limit 10

Errors a person can fix (a bad URL, a missing file, a malformed line, an
unknown operator) print one line on stderr and exit with status 2; Ctrl-C
exits with 130. Progress bars (tqdm, from ``pip install 'doqu[cli]'``) are
drawn only when stderr is a terminal; ``--quiet`` silences every message
that is not the command's output. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import contextlib
import decimal
import glob
import io
import json
import keyword
import os
import sys
import tempfile
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, Sequence

from doqu.errors import DoquError, LookupProcessorDoesNotExist

if TYPE_CHECKING:
    from doqu.backend_base import BaseStorageAdapter
    from doqu.query.base import BaseQueryAdapter

__all__ = ["main", "build_parser", "parse_condition"]

#: Exit statuses.
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130
_FILE_BACKENDS = {"sqlite", "sqlite3", "shelve", "shelve_db", "tokyo-cabinet", "tokyo_cabinet"}
_CELL_WIDTH = 40


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


class Interrupted(Exception):
    """Ctrl-C, with what had been done by then."""


# -- output helpers -------------------------------------------------------------------

class Progress:
    """A progress bar on stderr, drawn only for a person watching a terminal."""

    _warned = False

    def __init__(self, enabled: bool, description: str) -> None:
        self.description = description
        self.bar: Any = None
        self.enabled = enabled and self._tqdm() is not None

    @classmethod
    def _tqdm(cls) -> Any:
        try:
            from tqdm import tqdm
        except ImportError:
            if not cls._warned:
                cls._warned = True
                print("doqu: no progress bars without tqdm: pip install 'doqu[cli]'", file=sys.stderr)
            return None
        return tqdm

    def __call__(self, done: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            try:
                width = os.get_terminal_size(sys.stderr.fileno()).columns
            except (OSError, ValueError):
                width = 0
            # a terminal that reports no width (some ptys) still gets a bar
            size: dict[str, Any] = {"dynamic_ncols": True} if width else {"ncols": 80, "nrows": 24}
            self.bar = self._tqdm()(total=total, desc=self.description, unit=" records",
                                    file=sys.stderr, leave=False, **size)
        if total is not None and self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _records(count: int) -> str:
    return f"{count} record{'' if count == 1 else 's'}"


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"doqu: {message}", file=sys.stderr)


def _progress(args: argparse.Namespace, description: str) -> Progress:
    return Progress(not args.quiet and sys.stderr.isatty(), description)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}"
    return text or type(exc).__name__


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    """stdout, or a file that appears only once it is complete."""
    if path is None or path == "-":
        if isinstance(sys.stdout, io.TextIOWrapper) and not sys.stdout.isatty():
            sys.stdout.reconfigure(encoding="utf-8")  # files are UTF-8, whatever the locale
        yield sys.stdout
        sys.stdout.flush()
        return
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".doqu-", suffix=".part", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            yield out
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# -- storages and queries ---------------------------------------------------------------

def open_db(url: str, must_exist: bool = False) -> "BaseStorageAdapter":
    """A connected storage; with ``must_exist``, a file URL must name an existing file."""
    from doqu.config import get_db, parse_url

    settings = parse_url(url)
    path = settings.get("path")
    if (must_exist and settings["backend"] in _FILE_BACKENDS and path and not os.path.exists(path)
            and not glob.glob(glob.escape(path) + ".*")):  # dbm files add suffixes
        raise CliError(f"no database at {url}: {path!r} does not exist")
    return get_db(url)


def parse_condition(text: str) -> tuple[str, Any]:
    """``field__op=value`` → (lookup, value); the value is JSON when it parses as JSON.

    ``age__gt=30`` gives 30, ``name=Ada`` gives "Ada", ``tags__in=["a","b"]`` a
    list, ``born__gte={"$date":"2000-01-01"}`` a date (tags as in files).
    """
    from doqu.fixtures import decode_value, json_loads

    lookup, sep, raw = text.partition("=")
    lookup = lookup.strip()
    if not sep or not lookup:
        raise CliError(f"condition {text!r}: expected field__operator=value, e.g. age__gt=30 or name=Ada")
    try:
        data = json_loads(raw)
    except ValueError:
        return lookup, raw
    try:
        return lookup, decode_value(data)
    except ValueError as exc:
        raise CliError(f"condition {text!r}: {exc}") from None


def _check_operator(db: "BaseStorageAdapter", lookup: str) -> None:
    """Refuse ``age__gtt=1``: a last part that is no operator must be a stored sub-field.

    Without a schema, ``a__b=1`` could mean "field a.b equals 1" or a misspelt
    operator. It is taken as a nested field only if some record has one;
    ``a__b__equals=1`` asks for the nested field regardless.
    """
    from doqu.query.conditions import OPERATORS, parse_lookup

    path, op = parse_lookup(lookup)
    if op != "equals" or len(path) < 2 or lookup.endswith("__equals"):
        return
    if db.get_query().where(**{f"{lookup}__exists": True}).first() is None:
        raise LookupProcessorDoesNotExist(
            f"unknown operator {path[-1]!r} in {lookup!r} (no record has a field "
            f"{'.'.join(path)}); known operators: {', '.join(OPERATORS)}; to match a nested field "
            f"anyway write {lookup}__equals=..."
        )


def build_query(db: "BaseStorageAdapter", args: argparse.Namespace) -> "BaseQueryAdapter":
    """The query the ``--where``, ``--where-not`` and ``--order-by`` options describe."""
    query = db.get_query()
    for text in getattr(args, "where", None) or ():
        lookup, value = parse_condition(text)
        _check_operator(db, lookup)
        query = query.where(**{lookup: value})
    for text in getattr(args, "where_not", None) or ():
        lookup, value = parse_condition(text)
        _check_operator(db, lookup)
        query = query.where_not(**{lookup: value})
    names = [name.strip() for item in getattr(args, "order_by", None) or ()
             for name in item.split(",") if name.strip()]
    if names:
        query = query.order_by(*names)
    return query


def _filtered(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "where", None) or getattr(args, "where_not", None))


# -- commands ------------------------------------------------------------------------

def cmd_inspect(args: argparse.Namespace) -> int:
    from doqu.config import parse_url
    from doqu.inspection import class_name_for, infer_schema, render_class, schema_to_json

    if args.class_name is not None and (not args.class_name.isidentifier()
                                        or keyword.iskeyword(args.class_name)):
        raise CliError(f"--class-name {args.class_name!r} is not a valid Python class name")
    with open_db(args.url, must_exist=True) as db:
        progress = _progress(args, "reading")
        try:
            schema = infer_schema(build_query(db, args), sample=args.sample, progress=progress)
        finally:
            progress.close()
    if args.format == "json":
        print(json.dumps(schema_to_json(schema, args.max_choices), indent=2, ensure_ascii=False))
        return OK
    name = args.class_name
    if name is None:
        settings = parse_url(args.url)
        base = next((str(settings[k]) for k in ("table", "collection", "prefix", "path", "database")
                     if settings.get(k)), "")
        name = class_name_for(os.path.basename(base).split(".")[0])
    try:
        print(render_class(schema, name, args.max_choices), end="")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return OK


def cmd_copy(args: argparse.Namespace) -> int:
    try:
        from doqu import copying
    except ImportError as exc:
        raise CliError(f"copying needs doqu.copying, which this installation lacks ({exc})") from None
    if args.batch < 1:
        raise CliError(f"--batch must be at least 1, got {args.batch}")
    with open_db(args.source, must_exist=True) as source, open_db(args.target) as target:
        if source.identity == target.identity:
            raise CliError("source and target are the same storage")
        query = build_query(source, args)
        selected: Any = query if _filtered(args) else source
        expected = query.count()
        before = len(target)
        done = [0]
        progress = _progress(args, "copying")

        def on_progress(count: int, total: int) -> None:
            done[0] = count
            progress(count, total)

        keep_keys = not args.no_keep_keys
        try:
            report = copying.copy(selected, target, batch_size=args.batch, keep_keys=keep_keys,
                                  progress=on_progress)
        except KeyboardInterrupt:
            progress.close()
            raise Interrupted(
                f"interrupted after copying {done[0]} of {_records(expected)}; "
                f"{target.describe_location()} keeps the records copied so far"
            ) from None
        finally:
            progress.close()
        copied = int(report.copied)
        after = len(target)
        problems = []
        if copied != expected:
            problems.append(f"copied {_records(copied)} but the source selection has {expected}")
        low, high = (before + copied, before + copied) if not keep_keys else (max(before, copied),
                                                                             before + copied)
        if not low <= after <= high:
            problems.append(f"the target holds {_records(after)}, expected "
                            f"{low if low == high else f'{low} to {high}'} "
                            f"({before} before + {copied} copied)")
        if problems:
            print(f"doqu: verification failed: {'; '.join(problems)}", file=sys.stderr)
            return FAILED
        _say(args, f"copied {_records(copied)} from {source.describe_location()} to "
                   f"{target.describe_location()}; the target holds {after} (verified)")
    return OK


def cmd_load(args: argparse.Namespace) -> int:
    from doqu.fixtures import load_records

    if args.batch < 1:
        raise CliError(f"--batch must be at least 1, got {args.batch}")
    if args.file != "-" and not os.path.exists(args.file):
        raise CliError(f"no such file: {args.file}")
    with open_db(args.url) as db:
        progress = _progress(args, "loading")
        try:
            count = load_records(db, args.file, format=args.format, key_field=args.key_field,
                                 batch_size=args.batch, progress=progress)
        except KeyboardInterrupt:
            progress.close()
            raise Interrupted("interrupted; the load was rolled back") from None
        finally:
            progress.close()
        _say(args, f"loaded {_records(count)} into {db.describe_location()}")
    return OK


def cmd_dump(args: argparse.Namespace) -> int:
    from doqu.fixtures import stored_records, write_records

    with open_db(args.url, must_exist=True) as db:
        query = build_query(db, args)
        total = query.count()
        progress = _progress(args, "dumping")
        try:
            with _output(args.output) as out:
                count = write_records(out, stored_records(query), args.format,
                                      args.key_field, progress=lambda n: progress(n, total))
        finally:
            progress.close()
        if args.output not in (None, "-"):
            _say(args, f"dumped {_records(count)} to {args.output}")
    return OK


def cmd_query(args: argparse.Namespace) -> int:
    from doqu.fixtures import stored_records, write_records

    if args.limit is not None and args.limit < 0:
        raise CliError(f"--limit must not be negative, got {args.limit}")
    with open_db(args.url, must_exist=True) as db:
        query = build_query(db, args)
        if args.limit is not None:
            query = query[:args.limit]
        if args.explain or args.count:
            if args.explain:
                print(query.explain())
            if args.count:
                print(query.count())
            return OK
        results = stored_records(query)
        with _output(None) as out:
            if args.format == "jsonl":
                write_records(out, results, "jsonl", args.key_field)
            else:
                _write_table(out, list(results), args.key_field)
    return OK


def _cell(value: Any) -> str:
    from doqu.fixtures import encode_value, exact_number, json_dumps

    if isinstance(value, str):
        text = value
    elif isinstance(value, (float, decimal.Decimal)):
        number = exact_number(value) if isinstance(value, float) else value
        text = str(number) if isinstance(number, decimal.Decimal) else repr(float(number))
    else:
        text = json_dumps(encode_value(value))
    text = text.replace("\n", "\\n").replace("\t", " ")
    return text if len(text) <= _CELL_WIDTH else text[:_CELL_WIDTH - 1] + "…"


def _write_table(out: IO[str], rows: list[tuple[str, dict[str, Any]]], key_field: str) -> None:
    columns: dict[str, None] = {key_field: None}
    for _, fields in rows:
        columns.update(dict.fromkeys(fields))
    names = list(columns)
    cells = [[_cell(key)] + ["" if fields.get(n) is None else _cell(fields[n]) for n in names[1:]]
             for key, fields in rows]
    widths = [max([len(_cell(n))] + [len(row[i]) for row in cells]) for i, n in enumerate(names)]
    out.write("  ".join(_cell(n).ljust(w) for n, w in zip(names, widths)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")
    out.write(f"({len(rows)} record{'s' if len(rows) != 1 else ''})\n")


# -- the parser ---------------------------------------------------------------------

def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _not_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from doqu import __version__
    from doqu.fixtures import FORMATS, KEY_FIELD, WRITE_FORMATS

    parser = argparse.ArgumentParser(
        prog="doqu", description="Inspect, copy, load, dump and query doqu storages by URL "
        "(sqlite:///app.db, shelve:///data.db, postgresql://user@host/db?table=docs, ...).",
        epilog="Conditions are field__operator=value (age__gte=18, name=Ada, tags__in=[\"a\",\"b\"]); "
               "values are read as JSON when they parse as JSON. See docs/cli.md.")
    parser.add_argument("--version", action="version", version=f"doqu {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or messages")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or messages")
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--where", action="append", metavar="FIELD__OP=VALUE", default=[],
                         help="keep records where this holds (repeatable: all must hold)")
    filters.add_argument("--where-not", action="append", metavar="FIELD__OP=VALUE", default=[],
                         help="drop records where this holds (repeatable)")
    key = argparse.ArgumentParser(add_help=False)
    key.add_argument("--key-field", default=KEY_FIELD, metavar="NAME",
                     help=f"the field holding each record's key in files (default {KEY_FIELD})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser("inspect", parents=[common, filters],
                            help="print a Document class inferred from the stored records",
                            description="Read the records (or a sample) and print a Document class "
                                        "whose structure and validators fit them, with statistics.")
    p.add_argument("url")
    p.add_argument("--sample", type=_positive, metavar="N", help="read only the first N records")
    p.add_argument("--class-name", metavar="NAME", help="the class name (default: from the URL)")
    p.add_argument("--format", choices=("python", "json"), default="python",
                   help="python: a class to paste (default); json: the statistics")
    p.add_argument("--max-choices", type=_not_negative, default=10, metavar="N",
                   help="largest set of values given an any_of() validator (default 10; 0: none)")
    p.set_defaults(run=cmd_inspect)

    p = commands.add_parser("copy", parents=[common, filters],
                            help="copy records between any two storages, then verify the count",
                            description="Copy records (all, or those the conditions select) from "
                                        "SOURCE to TARGET in batches, then check the target's count.")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("--batch", type=_positive, default=1000, metavar="N", help="records per batch (1000)")
    p.add_argument("--no-keep-keys", action="store_true",
                   help="give copies new keys instead of the source's keys")
    p.set_defaults(run=cmd_copy)

    p = commands.add_parser("load", parents=[common, key],
                            help="load records from a JSON, JSON lines, YAML or CSV file",
                            description="Check every record of FILE, then save them in one "
                                        "transaction (records with a key replace that record).")
    p.add_argument("url")
    p.add_argument("file", help="the file, or - for standard input (JSON lines unless --format)")
    p.add_argument("--format", choices=FORMATS, help="default: from the file's extension")
    p.add_argument("--batch", type=_positive, default=1000, metavar="N", help="records per batch (1000)")
    p.set_defaults(run=cmd_load)

    p = commands.add_parser("dump", parents=[common, filters, key],
                            help="write records as JSON lines, JSON or CSV",
                            description="Write the records (all, or those the conditions select) "
                                        "so that `doqu load` reads them back exactly.")
    p.add_argument("url")
    p.add_argument("--format", choices=WRITE_FORMATS, default="jsonl", help="default jsonl")
    p.add_argument("--order-by", action="append", metavar="FIELD", default=[],
                   help="order by fields; -field descends (comma-separated or repeated)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: standard output)")
    p.set_defaults(run=cmd_dump)

    p = commands.add_parser("query", parents=[common, filters, key],
                            help="show the records that match conditions",
                            description="Run a query and print the results, their count, or how "
                                        "the engine runs it.")
    p.add_argument("url")
    p.add_argument("--order-by", action="append", metavar="FIELD", default=[],
                   help="order by fields; -field descends (comma-separated or repeated)")
    p.add_argument("--limit", type=_not_negative, metavar="N", help="at most N records")
    p.add_argument("--count", action="store_true", help="print how many records match")
    p.add_argument("--explain", action="store_true", help="print what runs in the engine and in Python")
    p.add_argument("--format", choices=("table", "jsonl"), default="table", help="default table")
    p.set_defaults(run=cmd_query)
    return parser


def _attach_dash_values(argv: Sequence[str]) -> list[str]:
    """``--order-by -age`` → ``--order-by=-age`` (argparse would take -age for an option)."""
    out: list[str] = []
    items = list(argv)
    index = 0
    while index < len(items):
        arg = items[index]
        if arg == "--order-by" and index + 1 < len(items) and items[index + 1].startswith("-") \
                and items[index + 1] not in ("-", "--") and not items[index + 1].startswith("--"):
            out.append(f"--order-by={items[index + 1]}")
            index += 2
            continue
        out.append(arg)
        index += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(_attach_dash_values(sys.argv[1:] if argv is None else argv))
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except Interrupted as exc:
        print(f"doqu: {exc}", file=sys.stderr)
        return INTERRUPTED
    except KeyboardInterrupt:
        print("doqu: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`doqu dump ... | head`): stop quietly
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
    except (CliError, DoquError, OSError) as exc:
        print(f"doqu: error: {_one_line(exc)}", file=sys.stderr)
        return USAGE


if __name__ == "__main__":
    sys.exit(main())
