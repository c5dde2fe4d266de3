"""A Python consumer of the appointments example's changes, with psycopg 3.

The payload is JSON over LISTEN/NOTIFY, so nothing but a PostgreSQL driver is needed. It
handles every payload shape the README documents: a change of its own, a batch
({"changes": [...]}), a truncated change (reload the row), an INSERT (old is null) and a
DELETE (new is null); a payload that is not a change (someone else's NOTIFY) is reported on
stderr and skipped.

Usage: DATABASE_URL=postgres://... python3 consumer.py [--channel C] [--count N]
"""

import argparse
import json
import os
import sys

import psycopg


def changes_of(payload):
    """The changes a notification carries: the elements of a batch, else the payload."""
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    if isinstance(value, dict) and list(value) == ["changes"] and isinstance(value["changes"], list):
        return value["changes"]
    return [value]


def describe(change):
    """One line for one change, the same line the Node consumer prints."""
    if not isinstance(change, dict) or "id" not in change:
        return None
    old, new = change.get("old"), change.get("new")
    key = json.dumps(change["id"])
    if change.get("truncated"):
        return f"appointment {key} changed (payload truncated: reload the row)"
    if old is None and new is not None:
        return f"appointment {key} inserted, canceled={json.dumps(new.get('canceled'))}"
    if new is None and old is not None:
        return f"appointment {key} deleted"
    return (
        f"appointment {key} canceled: "
        f"{json.dumps(old.get('canceled'))} -> {json.dumps(new.get('canceled'))}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channel", default="appointments_canceled_changed")
    parser.add_argument("--count", type=int, default=None, help="exit after N changes")
    args = parser.parse_args()

    printed = 0
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(args.channel)))
        print(f"listening on {args.channel}", file=sys.stderr, flush=True)
        for note in conn.notifies():
            changes = changes_of(note.payload)
            lines = [describe(change) for change in changes] if changes is not None else [None]
            for line in lines:
                if line is None:
                    print(f"ignored a payload that is not a change: {note.payload!r}",
                          file=sys.stderr, flush=True)
                    continue
                print(line, flush=True)
                printed += 1
                if args.count is not None and printed >= args.count:
                    return


if __name__ == "__main__":
    main()
