#!/usr/bin/env python3
"""Print every row of every table of a sqlite database as JSON: {table: [row as JSON, ...] sorted}.

verify.yml compares these dumps before a backup and after a restore, whatever the tables are.
With ``--settle SECONDS`` it first waits (at most ``--timeout``) until the database has not changed
for that long: a running service records things a little after they happen (a server's usage
session is closed at its next pass, every few seconds), and a dump taken meanwhile would differ
from the same database a moment later. It prints {"settled": bool, "tables": ...}.
"""

import argparse
import json
import sqlite3
import time


def cell(value: object) -> object:
    return {"hex": value.hex()} if isinstance(value, bytes) else value


def dump(path: str) -> dict[str, list[str]]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        # table names come from the file's own sqlite_master, quoted as identifiers
        return {name: sorted(json.dumps([cell(v) for v in row]) for row in connection.execute(
            'SELECT * FROM "{}"'.format(name.replace('"', '""')))) for name in names}  # noqa: S608
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database")
    parser.add_argument("--settle", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    started = changed = time.monotonic()
    tables = dump(args.database)
    while time.monotonic() - changed < args.settle and time.monotonic() - started < args.timeout:
        time.sleep(2)
        again = dump(args.database)
        if again != tables:
            tables, changed = again, time.monotonic()
    print(json.dumps({"settled": time.monotonic() - changed >= args.settle, "tables": tables}))


main()
