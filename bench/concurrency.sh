#!/usr/bin/env bash
# Write throughput under concurrent writers, side by side: pgbench with 8 and 32 clients,
# each transaction one `UPDATE SET canceled = NOT canceled WHERE id = random` on a
# 100,000-row table, tables that differ only in their trigger. Each variant runs ROUNDS
# times SECONDS seconds, the variants alternating within a round; the table gives the
# median transactions per second and its ratio to the table without a trigger in the same
# rounds (and the range of those ratios over rounds).
#
# Every variant runs first with no consumer, then ours again with their consumer reading
# (`column-notify listen`, to /dev/null): a WAL watch's consumer streams from its slot, whose
# decoding of the database's whole WAL costs the server CPU, and both consumers share the
# machine with the writers.
#
# Usage: bench/concurrency.sh [--markdown]; needs DATABASE_URL (wal_level = logical), the
# extension, pgbench, and target/release/column-notify.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${PGCN_BENCH_ROUNDS:-3}"
SECONDS_EACH="${PGCN_BENCH_SECONDS:-5}"
ROWS=100000
CLI="$ROOT/target/release/column-notify"
url="${DATABASE_URL:?DATABASE_URL is not set}"
sql() { psql -X -q -v ON_ERROR_STOP=1 "$url" "$@"; }

# name|label|install (on {table})
VARIANTS="none|no trigger|
notify|pg_column_notify (NOTIFY)|SELECT watch_column('{table}', 'canceled', 'conc_notify')
batch|pg_column_notify, batch => true|SELECT watch_column('{table}', 'canceled', 'conc_batch', batch => true)
wal|pg_column_notify, delivery => 'wal'|SELECT watch_column('{table}', 'canceled', 'conc_wal', delivery => 'wal')
plpgsql|plpgsql + pg_notify|CREATE TRIGGER reference AFTER UPDATE ON {table} FOR EACH ROW WHEN (OLD.canceled IS DISTINCT FROM NEW.canceled) EXECUTE PROCEDURE bench_reference_notify()
plpgsql_wal|plpgsql + pg_logical_emit_message|CREATE TRIGGER reference AFTER UPDATE ON {table} FOR EACH ROW WHEN (OLD.canceled IS DISTINCT FROM NEW.canceled) EXECUTE PROCEDURE bench_reference_emit_message()"

scratch="$(mktemp -d)"
consumers=()
cleanup() {
    for pid in "${consumers[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    sql -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
            WHERE slot_name = 'column_notify_conc_bench' AND NOT active" >/dev/null 2>&1 || true
    rm -rf "$scratch"
}
trap cleanup EXIT

# The reference functions are trigger-overhead's; it creates them, so run it once if needed.
sql -c "CREATE EXTENSION IF NOT EXISTS pg_column_notify" >/dev/null
if ! sql -tAc "SELECT 'bench_reference_emit_message'::regproc" >/dev/null 2>&1; then
    "$ROOT/target/release/trigger-overhead" --rows 10 --runs 1 >/dev/null
fi
while IFS='|' read -r name _ install; do
    table="conc_$name"
    sql -c "DROP TABLE IF EXISTS $table" \
        -c "CREATE TABLE $table (id bigint PRIMARY KEY, canceled boolean NOT NULL, title text,
                                 inserted_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)" \
        -c "INSERT INTO $table SELECT g, false, 'appointment ' || g, now(), now()
            FROM generate_series(1, $ROWS) g" >/dev/null
    [ -n "$install" ] && sql -c "${install//\{table\}/$table}" >/dev/null
    sql -c "VACUUM ANALYZE $table"
    printf '\\set id random(1, %d)\nUPDATE %s SET canceled = NOT canceled WHERE id = :id;\n' \
        "$ROWS" "$table" >"$scratch/$name.sql"
done <<<"$VARIANTS"

tps() {
    pgbench -n -c "$2" -j 2 -T "$SECONDS_EACH" -f "$scratch/$1.sql" "$url" 2>/dev/null \
        | sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}

# rounds PHASE NAMES...: every round runs each variant once, for 8 and then 32 writers.
rounds() {
    local phase="$1"
    shift
    for writers in 8 32; do
        for round in $(seq "$ROUNDS"); do
            for name in "$@"; do
                echo "$phase $writers $round $name $(tps "$name" "$writers")" >>"$scratch/results"
            done
        done
    done
}

rounds alone none notify batch wal plpgsql plpgsql_wal
"$CLI" --database-url "$url" listen conc_notify >/dev/null 2>&1 &
consumers+=($!)
"$CLI" --database-url "$url" listen conc_wal --consumer conc_bench >/dev/null 2>&1 &
consumers+=($!)
sleep 2
rounds consumed none notify wal

python3 - "$scratch/results" "${1:-}" <<'PY' "$VARIANTS"
import statistics, sys
results, markdown, variants = sys.argv[1], sys.argv[2] == "--markdown", sys.argv[3]
labels = dict(line.split("|")[:2] for line in variants.splitlines())
tps = {}
for line in open(results):
    phase, writers, round_, name, value = line.split()
    tps.setdefault((phase, int(writers)), {}).setdefault(name, {})[int(round_)] = float(value)
phases = {"alone": "none", "consumed": "ours running"}
if markdown:
    print("| writers | trigger | consumers | median tps | ÷ no trigger: median (range over rounds) |")
    print("| --- | --- | --- | --- | --- |")
for writers in (8, 32):
    for phase, consumers in phases.items():
        runs_of = tps[(phase, writers)]
        base = runs_of["none"]
        for name, runs in runs_of.items():
            ratios = sorted(runs[r] / base[r] for r in runs)
            median = statistics.median(runs.values())
            spread = f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}–{ratios[-1]:.2f})"
            if markdown:
                print(f"| {writers} | {labels[name]} | {consumers} | {median:,.0f} | {spread} |")
            else:
                print(f"{writers:>3} writers  {labels[name]:<40} {consumers:<13} {median:>9,.0f} tps  ÷none {spread}")
if markdown:
    print()
PY
