#!/usr/bin/env bash
# Runs a command with DATABASE_URL set: the caller's server when DATABASE_URL is already
# set, otherwise the private cluster, started if needed (and then PGCN_RESTART_CMD tells
# tests how to restart it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ -z "${DATABASE_URL:-}" ]; then
    bash "$ROOT/scripts/cluster.sh" start
    DATABASE_URL="$(bash "$ROOT/scripts/cluster.sh" url)"
    export DATABASE_URL
    export PGCN_RESTART_CMD="bash $ROOT/scripts/cluster.sh restart"
fi
exec "$@"
