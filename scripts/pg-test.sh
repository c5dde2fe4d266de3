#!/usr/bin/env bash
# Runs the extension's #[pg_test] tests in a throw-away cluster that cargo-pgrx manages.
# initdb refuses to run as root, so as root that cluster belongs to the postgres user.
# PG_CONFIG picks the server (Debian's 15 by default); cargo-pgrx must know it under its
# major (scripts/setup.sh registers it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/server_dirs.sh
. "$ROOT/scripts/server_dirs.sh"
PGDATA_DIR="$(server_dir "pgrx-test-data$(server_flavor)")"
MAJOR="$(pg_major)"

cd "$ROOT"
if [ "$(id -u)" -eq 0 ]; then
    mkdir -p "$PGDATA_DIR"
    chown postgres: "$PGDATA_DIR"
    exec cargo pgrx test "pg$MAJOR" -p pg_column_notify --runas postgres --pgdata "$PGDATA_DIR" "$@"
else
    exec cargo pgrx test "pg$MAJOR" -p pg_column_notify "$@"
fi
