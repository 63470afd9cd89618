"""The store's write path in process: CPU per record of the SQLite store and the PostgreSQL store (client side;
the PostgreSQL server's own CPU is measured end to end by `bench/run.py --peers postgres`).

    python bench/pg_store_bench.py                # 300 Claude Code-sized records per batch size

A record carries the bench's Claude Code request (~57 KB, its system prompt and tools shared), a 1 KB answer
and a prompt preview. Each batch is one `_transaction` + `_insert`, as the writer thread runs them; the figure is
this process's CPU time (time.process_time) per record. The PostgreSQL server is one of its own (tests/pg.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.workload import claude_code_request  # noqa: E402
from proxy.store import open_store  # noqa: E402
from proxy.store.payloads import serialize_parts  # noqa: E402
from tests.pg import Server  # noqa: E402
from tests.test_store import make  # noqa: E402

N = 300


def per_record(where: str, batch: int, items: list) -> float:
    store = open_store(where)
    conn = store._connect()
    t0 = time.process_time()
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        blobs = {h: part for _, _, parts in chunk for h, part in parts.items()}
        with store._transaction(conn):
            store._insert(conn, [(r, d) for r, d, _ in chunk], blobs)
    return 1000 * (time.process_time() - t0) / len(items)


def main() -> None:
    os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp()
    req = claude_code_request(False)
    server = Server().start()
    try:
        for batch in (1, 10, 100):
            row = []
            for backend in ("sqlite", "postgres"):
                recs = [
                    make(
                        i,
                        client_request=req,
                        response_text="word " * 200,
                        preview="fix the test in parser.py " * 8,
                    )
                    for i in range(N + 1)
                ]
                items = [(r, *serialize_parts(r, [])) for r in recs]
                where = str(Path(tempfile.mkdtemp()) / "b.db") if backend == "sqlite" else server.fresh_url()
                per_record(where, batch, items[:1])  # the schema, the shared parts, the prepared statement
                row.append(per_record(where, batch, items[1:]))
            print(
                f"batch {batch:3}: SQLite {row[0]:.3f} ms/record, PostgreSQL {row[1]:.3f} ms/record",
                flush=True,
            )
    finally:
        server.remove()


if __name__ == "__main__":
    main()
