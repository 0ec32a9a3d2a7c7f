"""The writer that tests/reliability/test_crash.py kills: tagged batches in transactions.

Run as ``python crash_child.py '<json spec>'``. The process imports doqu and
the engine's driver once, then reads one JSON command per line on stdin and
forks a writer for it (so each of the many kills costs a fork, not a Python
start-up). The writer opens its own storage and saves batches forever, each
in one ``transaction()``; every record carries its batch id, the batch size
and its index in the batch. Progress goes to stdout as single ``os.write``
lines (atomic on a pipe, no buffering to lose):

    P <pid>            a writer started (written by the parent)
    B <batch> <size>   the writer is about to begin this batch's transaction
    C <batch>          the batch's transaction has committed
    X <pid> <status>   the writer is gone (written by the parent after waitpid)

The test SIGKILLs the writer at a random moment, reopens the storage and
checks that every committed batch is complete and no other batch is partly
visible.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import sys
from typing import Any


def _say(text: str) -> None:
    os.write(1, (text + "\n").encode())


def write_batches(spec: dict[str, Any], command: dict[str, Any]) -> None:
    from doqu import Document, get_db

    rng = random.Random(command["seed"])
    db = get_db(spec["settings"])
    batch = command["first_batch"]
    while True:
        size = rng.randint(1, spec["max_batch"])
        pad = "p" * rng.randint(0, spec["max_pad"])
        _say(f"B {batch} {size}")
        if rng.random() < 0.5:
            # save_many: one bulk write inside the transaction, keys generated
            with db.transaction():
                db.save_many([Document(batch=batch, size=size, i=i, pad=pad) for i in range(size)])
        else:
            # a loop of single saves (each its own nested block), application keys
            with db.transaction():
                for i in range(size):
                    db.save(None, {"batch": batch, "size": size, "i": i, "pad": pad},
                            primary_key=f"b{batch}-{i}")
        _say(f"C {batch}")
        batch += 1


def main() -> None:
    spec = json.loads(sys.argv[1])
    import doqu.config

    doqu.config.load_backend(spec["settings"]["backend"])
    for module in spec.get("preload", ()):
        importlib.import_module(module)
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the writer: never returns into the loop
            code = 0
            try:
                write_batches(spec, command)
            except BaseException as exc:  # pragma: no cover - reported to the test
                _say(f"E {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
                code = 1
            finally:
                os._exit(code)
        _say(f"P {pid}")
        _, status = os.waitpid(pid, 0)
        _say(f"X {pid} {status}")


if __name__ == "__main__":
    main()
