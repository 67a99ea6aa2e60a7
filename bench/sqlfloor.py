"""The SQL floor of ingestion on SQLite: the statements a pipeline run sent, replayed without the pipeline.

A recording run captures every statement the hub's connection executes (text
and parameters, ``BEGIN IMMEDIATE`` and ``COMMIT`` included) and writes each
transaction's statements to a file as it commits, so memory stays flat. The
replay runs the same statements, with the same parameters and commits, through
a bare ``sqlite3`` connection with the hub's pragmas on a copy of the database
taken just before the recorded ingestion. Its time is what this schema costs
for these exact rows, upserts and lookups when the pipeline's Python costs
nothing: no pipeline on this machine and schema can ingest faster.
"""
from __future__ import annotations

import pickle
import shutil
import sqlite3
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, BinaryIO

from hub import db


class _Recorder:
    def __init__(self, out: BinaryIO):
        self.out, self.active, self.pending = out, False, []
        self.statements = self.transactions = 0

    def add(self, sql: str, params: Any, many: bool = False) -> None:
        if not self.active:
            return
        self.pending.append((sql, params, many))
        if sql == "COMMIT":  # peewee commits with this exact statement
            pickle.dump(self.pending, self.out, protocol=pickle.HIGHEST_PROTOCOL)
            self.statements += len(self.pending)
            self.transactions += 1
            self.pending = []


def _connection_class(recorder: _Recorder) -> type[sqlite3.Connection]:
    class RecordingCursor(sqlite3.Cursor):
        def execute(self, sql: str, params: Any = ()) -> "RecordingCursor":
            recorder.add(sql, tuple(params))
            return super().execute(sql, params)

        def executemany(self, sql: str, seq: Any) -> "RecordingCursor":
            rows = [tuple(p) for p in seq]
            recorder.add(sql, rows, many=True)
            return super().executemany(sql, rows)

    class RecordingConnection(sqlite3.Connection):
        def cursor(self, factory: Any = RecordingCursor) -> Any:  # peewee runs everything through cursor()
            return super().cursor(factory)

    return RecordingConnection


class Recording:
    """Record what the bound SQLite database executes while :attr:`active`.

    Construct it after the schema and the starting rows exist: it closes the
    hub's connection, copies the database file to ``snapshot`` (the replay's
    starting state) and reconnects through a recording connection.
    """

    def __init__(self, log_path: Path, snapshot: Path):
        database = db.database.obj
        if not isinstance(database, db.pw.SqliteDatabase):
            raise ValueError("the SQL floor is measured on SQLite only")
        database.close()  # checkpoints the WAL: the file alone is the whole database
        shutil.copyfile(database.database, snapshot)
        self._out = open(log_path, "wb")
        self.recorder = _Recorder(self._out)
        database.connect_params["factory"] = _connection_class(self.recorder)
        database.connect()

    def __enter__(self) -> _Recorder:
        self.recorder.active = True
        return self.recorder

    def __exit__(self, *exc: Any) -> None:
        self.recorder.active = False
        self._out.close()
        database = db.database.obj
        database.close()
        database.connect_params.pop("factory", None)


def statement_kind(sql: str) -> str:
    """``INSERT behaviour``, ``UPSERT balance``, ``SELECT usage_counter``, ``COMMIT``..."""
    words = sql.split(None, 4)
    verb = words[0].upper()
    if verb == "INSERT":
        return f"{'UPSERT' if 'ON CONFLICT' in sql else 'INSERT'} {words[2].strip(chr(34))}"
    if verb == "SELECT":
        after = sql.upper().split(" FROM ", 1)
        return f"SELECT {after[1].split(None, 1)[0].strip(chr(34)).lower()}" if len(after) == 2 else "SELECT"
    if verb == "UPDATE":
        return f"UPDATE {words[1].strip(chr(34))}"
    return verb


def replay(database: Path, log_path: Path) -> dict[str, Any]:
    """Run the recorded transactions on ``database``; only the statements are timed.

    Also measured, apart: what handing each transaction's statements to another
    process would cost (``pickle.dumps`` to send, ``pickle.loads`` to receive),
    the least a separate writer process would add to the floor.
    """
    con = sqlite3.connect(database, isolation_level=None)
    for name, value in db.SQLITE_PRAGMAS.items():  # the hub's own connections' pragmas
        con.execute(f"PRAGMA {name} = {value}")
    cur = con.cursor()
    by_kind: dict[str, float] = defaultdict(float)
    send = receive = 0.0
    statements = transactions = 0
    clock = time.perf_counter
    with open(log_path, "rb") as log:
        while True:
            try:
                chunk = pickle.load(log)  # not timed: the pipeline never reads a log
            except EOFError:
                break
            t0 = clock()
            data = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
            t1 = clock()
            chunk = pickle.loads(data)
            send, receive = send + t1 - t0, receive + clock() - t1
            del data
            for sql, params, many in chunk:
                start = clock()
                if many:
                    cur.executemany(sql, params)
                else:
                    cur.execute(sql, params)
                    if cur.description is not None:
                        cur.fetchall()
                by_kind[statement_kind(sql)] += clock() - start
            statements += len(chunk)
            transactions += 1
    con.close()
    return {"seconds": sum(by_kind.values()), "statements": statements, "transactions": transactions,
            "by_kind": dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
            "pickle_dumps_s": send, "pickle_loads_s": receive}
