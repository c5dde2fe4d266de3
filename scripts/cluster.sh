#!/usr/bin/env bash
# The project's private PostgreSQL cluster, under target/: start | stop | status | url.
# It has its own data folder, port and socket folder and never touches another cluster.
# PG_CONFIG picks the server (Debian's 15 by default); each major has its own cluster and
# port (see scripts/server_dirs.sh), so clusters of different majors never meet.
# As root, the server runs as the `postgres` user (initdb refuses root); otherwise as the caller.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_CONFIG="${PG_CONFIG:-/usr/bin/pg_config}"
BINDIR="$("$PG_CONFIG" --bindir)"
# shellcheck source=scripts/server_dirs.sh
. "$ROOT/scripts/server_dirs.sh"
CLUSTER_DIR="${PGCN_CLUSTER_DIR:-$(server_dir "pgcluster$(server_flavor)")}"
PGDATA="$CLUSTER_DIR/data"
SOCKET_DIR="$CLUSTER_DIR/socket"
LOG_FILE="$CLUSTER_DIR/server.log"
PORT="$(server_port)"
SUPERUSER=postgres

say() { printf 'cluster: %s\n' "$*" >&2; }

# Runs a server-side command as the cluster's owner.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

url() {
    printf 'postgres://%s@127.0.0.1:%s/postgres\n' "$SUPERUSER" "$PORT"
}

is_running() {
    [ -f "$PGDATA/postmaster.pid" ] && as_owner "$BINDIR/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1
}

init_cluster() {
    [ -f "$PGDATA/PG_VERSION" ] && return
    say "creating a private cluster in $PGDATA"
    mkdir -p "$CLUSTER_DIR"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$CLUSTER_DIR"
        # The server user must be able to reach its folder.
        local dir="$CLUSTER_DIR"
        while [ "$dir" != "/" ]; do
            dir="$(dirname "$dir")"
            if ! runuser -u postgres -- test -x "$dir"; then
                say "the postgres user cannot enter $dir; set PGCN_CLUSTER_DIR to a reachable folder"
                exit 1
            fi
        done
    fi
    as_owner "$BINDIR/initdb" -D "$PGDATA" -U "$SUPERUSER" --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$CLUSTER_DIR/initdb.log" 2>&1 \
        || { cat "$CLUSTER_DIR/initdb.log" >&2; exit 1; }
    as_owner mkdir -p "$SOCKET_DIR"
    cat <<CONF | as_owner tee -a "$PGDATA/postgresql.conf" >/dev/null
# pg_column_notify private cluster
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCKET_DIR'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
shared_preload_libraries = ''
CONF
    add_logical_decoding
}

# WAL watches (delivery => 'wal') and their consumers' replication slots; also added to a
# cluster made before they were needed.
add_logical_decoding() {
    grep -q '^wal_level = logical' "$PGDATA/postgresql.conf" && return
    cat <<CONF | as_owner tee -a "$PGDATA/postgresql.conf" >/dev/null
# WAL watches (delivery => 'wal') and their consumers' replication slots.
wal_level = logical
max_replication_slots = 32
max_wal_senders = 32
CONF
}

# TLS with a CA of the cluster's own (the server's certificate names localhost and
# 127.0.0.1; a client certificate for the role column_notify_cert; an unrelated CA), and two
# roles that authenticate: column_notify_password with a password, column_notify_cert with
# its certificate. The connection tests create the roles; everyone else keeps trust.
add_tls() {
    grep -q '^ssl = on' "$PGDATA/postgresql.conf" && return
    local tls="$CLUSTER_DIR/tls"
    as_owner mkdir -p "$tls"
    (
        cd "$tls"
        make_ca() {
            as_owner openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$2" \
                -keyout "$1.key" -out "$1.crt" 2>/dev/null
        }
        signed() {
            local name="$1" subject="$2" names="$3"
            as_owner openssl req -newkey rsa:2048 -nodes -subj "/CN=$subject" \
                -keyout "$name.key" -out "$name.csr" 2>/dev/null
            printf '%s' "$names" | as_owner tee "$name.ext" >/dev/null
            as_owner openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key \
                -CAcreateserial -days 3650 -extfile "$name.ext" -out "$name.crt" 2>/dev/null
        }
        make_ca ca "pg_column_notify test CA"
        make_ca other-ca "an unrelated CA"
        signed server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1"
        signed client column_notify_cert "extendedKeyUsage=clientAuth"
        as_owner chmod 600 ./*.key
    )
    cat <<CONF | as_owner tee -a "$PGDATA/postgresql.conf" >/dev/null
# TLS for the connection tests.
ssl = on
ssl_cert_file = '$tls/server.crt'
ssl_key_file = '$tls/server.key'
ssl_ca_file = '$tls/ca.crt'
CONF
    local hba="$PGDATA/pg_hba.conf"
    {
        printf '%s\n' "# The connection tests' roles; everyone else: trust (below)." \
            "local all column_notify_password scram-sha-256" \
            "host all column_notify_password 127.0.0.1/32 scram-sha-256" \
            "hostssl all column_notify_cert 127.0.0.1/32 cert" \
            "host all column_notify_cert 127.0.0.1/32 reject"
        cat "$hba"
    } | as_owner tee "$hba.new" >/dev/null
    as_owner mv "$hba.new" "$hba"
    if is_running; then
        as_owner "$BINDIR/pg_ctl" -D "$PGDATA" reload >/dev/null
    fi
}

start() {
    init_cluster
    add_logical_decoding
    add_tls
    if is_running; then
        return
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        say "port $PORT is taken by another server; set PGCN_PORT to a free port"
        exit 1
    fi
    # A Rust panic in the server logs its backtrace; clients must still never see one
    # (the test suite checks it with this set).
    as_owner env RUST_BACKTRACE=1 "$BINDIR/pg_ctl" -D "$PGDATA" -l "$LOG_FILE" -w -t 60 start >/dev/null \
        || { tail -n 20 "$LOG_FILE" >&2; exit 1; }
    say "started on port $PORT (log: $LOG_FILE)"
}

stop() {
    if is_running; then
        as_owner "$BINDIR/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
        say "stopped"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    restart) stop; start ;;
    status) if is_running; then echo running; else echo stopped; exit 3; fi ;;
    url) url ;;
    *) echo "usage: $0 start|stop|restart|status|url" >&2; exit 2 ;;
esac
