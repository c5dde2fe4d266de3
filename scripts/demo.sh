#!/usr/bin/env bash
# make demo: the appointments example (the Rust crate receives a cancellation), then the
# same kind of notification printed by the column-notify command. Needs DATABASE_URL (set
# by scripts/with-database.sh) and both programs built.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHANNEL=appointments_canceled_changed

"$ROOT/target/debug/appointments_demo"

echo
echo "The same with the command line: column-notify listen $CHANNEL --count 1"
errors="$(mktemp)"
trap 'rm -f "$errors"' EXIT
"$ROOT/target/debug/column-notify" listen "$CHANNEL" --count 1 2>"$errors" &
listener=$!
# Cancel only once it listens (it says so on stderr).
for _ in $(seq 100); do
    grep -q 'listening on' "$errors" && break
    kill -0 "$listener" 2>/dev/null || break
    sleep 0.1
done
if ! grep -q 'listening on' "$errors"; then
    cat "$errors" >&2
    kill "$listener" 2>/dev/null || true
    exit 1
fi
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" \
    -c "INSERT INTO appointments (canceled) VALUES (false)" \
    -c "UPDATE appointments SET canceled = true, updated_at = now()
        WHERE id = (SELECT max(id) FROM appointments)"
wait "$listener"
