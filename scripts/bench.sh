#!/usr/bin/env bash
# Runs the benchmarks side by side and writes bench/RESULTS.md (--quick: the 100,000-row
# trigger overhead only, printed, in under two minutes). Uses DATABASE_URL when set,
# otherwise a database of its own in the private cluster.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ -z "${DATABASE_URL:-}" ]; then
    bash scripts/cluster.sh start
    server="$(bash scripts/cluster.sh url)"
    # A new database each time, so the extension's SQL is that of the build just installed.
    psql -X -q "$server" -c "DROP DATABASE IF EXISTS pgcn_bench" -c "CREATE DATABASE pgcn_bench"
    # The private cluster offers TLS (for the connection tests); the figures are of the
    # triggers and the listener, not of encryption, as the bare connections they are set
    # beside use none.
    DATABASE_URL="${server%/*}/pgcn_bench?sslmode=disable"
    # A replication slot that nobody reads keeps every WAL segment written after it (none
    # is recycled, each new one is created and zero-filled), which would weigh on the
    # variants that write the most WAL. The private cluster's are the tests' leftovers.
    psql -X -q -tA "$server" -c "SELECT 'bench: dropping the unused slot ' || slot_name || ' of database ' || database
                                 FROM pg_replication_slots WHERE NOT active" >&2
    psql -X -q "$server" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active" >/dev/null
fi
export DATABASE_URL

cargo build -q --release -p column_notify_bench -p column_notify_listener
overhead=target/release/trigger-overhead

# The relay's benchmark publishes into a nats-server of its own (JetStream, a temporary
# store), stopped when the script ends.
start_nats() {
    local binary store port
    binary="$(bash scripts/fetch-nats.sh)"
    store="$(mktemp -d)"
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "$binary" -a 127.0.0.1 -p "$port" -js -sd "$store" >/dev/null 2>&1 &
    NATS_PID=$!
    # shellcheck disable=SC2064
    trap "kill $NATS_PID 2>/dev/null; rm -rf '$store'" EXIT
    NATS_URL="nats://127.0.0.1:$port"
    export NATS_URL
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
        sleep 0.1
    done
    echo "bench: nats-server did not start" >&2
    exit 1
}

if [ "${1:-}" = "--quick" ]; then
    exec "$overhead" --rows 100000 --runs 7
fi

start_nats
results=bench/RESULTS.md
{
    echo "# Benchmark results"
    echo
    echo "Measured by \`make bench\` on $(date -u +%Y-%m-%d): $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)), $(free -g | awk '/^Mem:/ {print $2}') GiB,"
    echo "$(psql -X -tA "$DATABASE_URL" -c 'SELECT version()' | cut -d, -f1), extension built in release mode."
    echo "A shared machine: compare the ratios within one table, not absolute times across runs."
    echo "Where the time goes, and what made the trigger cheap: [PROFILE.md](PROFILE.md)."
    echo
    echo "## Per-row trigger overhead"
    echo
    echo "One committed \`UPDATE t SET canceled = NOT canceled\` over every row of identical tables"
    echo "that differ only in their trigger (the last table: one UPDATE statement per row, in one"
    echo "transaction); variants alternate within each round; overhead per row = (median time -"
    echo "median time without trigger) / rows. The next two columns divide a row's overhead by that"
    echo "of the plpgsql trigger and of contrib tcn (below 1: cheaper). The last one divides it by"
    echo "plpgsql's round by round (both measured within seconds of each other) and gives the median"
    echo "and the range of those ratios: how much the machine's load moved them. A CHECKPOINT"
    echo "precedes each timed statement (not timed), so that the WAL segments the runs write are"
    echo "recycled as on a server in steady state; without it a new cluster creates and zero-fills"
    echo "every segment, a cost that follows each variant's WAL volume (durable and WAL watches most)."
    echo "The last row is no trigger: \`pg_notify\` of the plain watch's own payloads, one per row, in"
    echo "one transaction, less a scan of them, in the same rounds: what NOTIFY alone costs any"
    echo "trigger that sends these payloads, the floor under the plain watch's ratio."
    echo
    "$overhead" --rows 10000 --runs 11 --markdown
    "$overhead" --rows 100000 --runs 15 --markdown
    "$overhead" --rows 100000 --runs 7 --wide --markdown
    "$overhead" --rows 20000 --runs 9 --one-row-statements --markdown
    echo "## Write throughput under concurrent writers"
    echo
    echo "pgbench, each transaction one \`UPDATE SET canceled = NOT canceled WHERE id = random\` on a"
    echo "100,000-row table; ${PGCN_BENCH_ROUNDS:-3} rounds of ${PGCN_BENCH_SECONDS:-5} s per variant, the variants alternating; every variant"
    echo "first with no consumer, then ours again with their consumer running (\`column-notify listen\`"
    echo "on the same 2 cores; a WAL consumer's slot decodes the database's whole WAL). NOTIFY"
    echo "serialises the commits of notifying transactions; WAL messages do not."
    echo
    bash bench/concurrency.sh --markdown
    echo "## End to end"
    echo
    target/release/end-to-end --events 100000 --markdown
    echo "## The NATS relay"
    echo
    target/release/relay-bench --markdown
} > "$results.new"
mv "$results.new" "$results"
echo "wrote $results"
