#!/usr/bin/env bash
# The Debian package, tested as a user installs it: builds the package of Debian's 15,
# removes what `make install` put into that server, installs the package with dpkg, runs the
# appointments example on a new database of the private cluster, then removes the package
# (its files go with it) and lets the caller install the build again (`make test` does).
# Only for Debian's 15 and the private cluster: with DATABASE_URL naming another server, or
# with another PG_CONFIG, there is no local server the package could serve.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PG_CONFIG="${PG_CONFIG:-/usr/bin/pg_config}"
NAME=postgresql-15-column-notify

say() { printf 'package test: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "$PG_CONFIG" != /usr/bin/pg_config ] || [ -n "${DATABASE_URL:-}" ]; then
    say "skipped: it installs into Debian's PostgreSQL 15 and uses the private cluster"
    exit 0
fi

deb="$(bash scripts/package.sh | tail -n 1)"
libdir="$("$PG_CONFIG" --pkglibdir)"
sharedir="$("$PG_CONFIG" --sharedir)/extension"

say "removing what make install put into $libdir and $sharedir"
as_root rm -f "$libdir/pg_column_notify.so" "$sharedir"/pg_column_notify*
say "dpkg -i $deb"
as_root dpkg -i "$deb" >/dev/null
dpkg-query -W -f='${Status}\n' "$NAME" | grep -qx 'install ok installed'
for file in "$libdir/pg_column_notify.so" "$sharedir/pg_column_notify.control" \
    "$sharedir/pg_column_notify--0.1.0.sql"; do
    dpkg -S "$file" | grep -q "^$NAME:" || { say "$file is not the package's"; exit 1; }
done

bash scripts/cluster.sh start
server="$(bash scripts/cluster.sh url)"
export PGOPTIONS="-c client_min_messages=warning"
for database in pgcn_package pgcn_package_update; do
    psql -X -q -v ON_ERROR_STOP=1 "$server" -c "DROP DATABASE IF EXISTS $database" \
        -c "CREATE DATABASE $database"
done
# The earlier releases' scripts are in the package: 0.1.0 updates to this version.
updated="$(psql -X -qAt -v ON_ERROR_STOP=1 "${server%/*}/pgcn_package_update" \
    -c "CREATE EXTENSION pg_column_notify VERSION '0.1.0'" \
    -c "ALTER EXTENSION pg_column_notify UPDATE" \
    -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_column_notify'")"
say "0.1.0 updated to $updated"
export DATABASE_URL="${server%/*}/pgcn_package"
cargo build -q -p appointments_demo -p column_notify_listener
output="$(bash scripts/demo.sh)"
echo "$output" | grep -q 'Received a notification for appointment' \
    || { echo "$output" >&2; say "the example did not receive its notification"; exit 1; }
echo "$output" | grep -q '"channel":"appointments_canceled_changed"' \
    || { echo "$output" >&2; say "column-notify printed no notification"; exit 1; }
version="$(psql -X -qAt "$DATABASE_URL" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_column_notify'")"
if [ "$updated" != "$version" ]; then
    say "0.1.0 updated to $updated, not to $version"
    exit 1
fi
say "the appointments example ran on the packaged extension $version"

as_root dpkg -r "$NAME" >/dev/null
if [ -e "$libdir/pg_column_notify.so" ]; then
    say "dpkg -r left $libdir/pg_column_notify.so"
    exit 1
fi
say "removed again; make install puts the build back"
