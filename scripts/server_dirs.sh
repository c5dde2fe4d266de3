# Sourced by the scripts that start a PostgreSQL server: where its folders may live, and
# which port it listens on; each PostgreSQL major has its own.
# As root the server runs as `postgres`, which must be able to enter every folder above its
# data; a checkout under a private home (/root, mode 700) does not allow that, so then the
# folders go to a per-checkout place under the temporary directory instead.

# server_dir NAME: prints the folder for NAME (not created).
server_dir() {
    local name="$1" target="$ROOT/target" dir
    if [ "$(id -u)" -ne 0 ]; then
        echo "$target/$name"
        return
    fi
    dir="$target"
    while [ ! -d "$dir" ]; do dir="$(dirname "$dir")"; done
    while [ "$dir" != "/" ]; do
        if ! runuser -u postgres -- test -x "$dir"; then
            local key
            key="$(printf '%s' "$ROOT" | md5sum | cut -c1-12)"
            echo "${TMPDIR:-/tmp}/pg_column_notify-$key/$name"
            return
        fi
        dir="$(dirname "$dir")"
    done
    echo "$target/$name"
}

# The server the scripts use: PG_CONFIG, Debian's PostgreSQL 15 by default.
DEFAULT_PG_CONFIG=/usr/bin/pg_config

# pg_major: the major version of $PG_CONFIG's PostgreSQL (14, 15, ...).
pg_major() {
    "${PG_CONFIG:-$DEFAULT_PG_CONFIG}" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p'
}

# server_flavor: "" for the default server, "-pg<major>" for any other, so that each major
# (and the default 15 apart from another 15) has its own folders and port.
server_flavor() {
    if [ "${PG_CONFIG:-$DEFAULT_PG_CONFIG}" = "$DEFAULT_PG_CONFIG" ]; then
        echo ""
    else
        echo "-pg$(pg_major)"
    fi
}

# server_port: the private cluster's port unless PGCN_PORT says otherwise: 28815 for the
# default server, 28900 + major for the others.
server_port() {
    if [ -n "${PGCN_PORT:-}" ]; then
        echo "$PGCN_PORT"
    elif [ -z "$(server_flavor)" ]; then
        echo 28815
    else
        echo $((28900 + $(pg_major)))
    fi
}
