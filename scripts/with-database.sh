#!/usr/bin/env bash
# Runs a command with DATABASE_URL set: the caller's server when DATABASE_URL is already
# set, otherwise the private cluster, started if needed (and then PGCN_RESTART_CMD tells
# tests how to restart it). PG_CONFIG's programs (pg_dump, psql) come first in PATH, so
# they match the server's major.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_CONFIG="${PG_CONFIG:-/usr/bin/pg_config}"
PATH="$("$PG_CONFIG" --bindir):$PATH"
export PATH

if [ -z "${DATABASE_URL:-}" ]; then
    bash "$ROOT/scripts/cluster.sh" start
    DATABASE_URL="$(bash "$ROOT/scripts/cluster.sh" url)"
    export DATABASE_URL
    export PGCN_RESTART_CMD="env PG_CONFIG=$PG_CONFIG bash $ROOT/scripts/cluster.sh restart"
fi
exec "$@"
