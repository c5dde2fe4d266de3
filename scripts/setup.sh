#!/usr/bin/env bash
# Installs what building and testing pg_column_notify needs; does nothing when all is there.
# Idempotent: Debian packages, cargo-pgrx at the version Cargo.toml pins, `cargo pgrx init`
# for PG_CONFIG (Debian's 15 by default; `make PG=NN` passes the project's server of NN).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_CONFIG="${PG_CONFIG:-/usr/bin/pg_config}"
PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-contrib libclang-dev clang sudo)

say() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing_packages() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
    done
}

install_packages() {
    local missing
    missing="$(missing_packages)"
    if [ -z "$missing" ]; then
        return
    fi
    say "installing Debian packages: $(echo "$missing" | tr '\n' ' ')"
    as_root apt-get update -qq
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
}

pinned_pgrx_version() {
    sed -n 's/^pgrx *= *"=\([0-9.]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n1
}

install_cargo_pgrx() {
    local want have
    want="$(pinned_pgrx_version)"
    if [ -z "$want" ]; then
        say "cannot read the pinned pgrx version from Cargo.toml"
        exit 1
    fi
    have="$(cargo pgrx --version 2>/dev/null | awk '{print $2}' || true)"
    if [ "$have" = "$want" ]; then
        return
    fi
    say "installing cargo-pgrx $want (a few minutes)"
    cargo install cargo-pgrx --version "$want" --locked
}

# cargo-pgrx must know PG_CONFIG under its major (`cargo pgrx test pgNN` uses it). `cargo pgrx
# init` rewrites the whole config, so it is given every server already registered too.
init_pgrx() {
    local home="${PGRX_HOME:-$HOME/.pgrx}" config major
    config="$home/config.toml"
    major="$("$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')"
    if [ -z "$major" ]; then
        say "$PG_CONFIG --version does not name a PostgreSQL major"
        exit 1
    fi
    if [ -f "$config" ] && grep -q "^pg$major *= *\"$PG_CONFIG\"" "$config"; then
        return
    fi
    local args=("--pg$major=$PG_CONFIG") label path
    if [ -f "$config" ]; then
        while read -r label path; do
            [ "$label" = "pg$major" ] || args+=("--$label=$path")
        done < <(sed -n 's/^\(pg[0-9]*\) *= *"\(.*\)"$/\1 \2/p' "$config")
    fi
    say "registering $PG_CONFIG with cargo pgrx as pg$major (in $home)"
    mkdir -p "$home"
    cargo pgrx init "${args[@]}" >/dev/null
}

# The consumers in other languages that the test suite runs (examples/python, examples/node).
install_example_dependencies() {
    if ! python3 -c 'import psycopg' 2>/dev/null; then
        say "installing psycopg 3 for examples/python"
        python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
            'psycopg[binary]>=3.1'
    fi
    if [ ! -d "$ROOT/examples/node/node_modules/pg" ]; then
        say "installing pg from npm for examples/node"
        (cd "$ROOT/examples/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
}

install_packages
install_cargo_pgrx
init_pgrx
install_example_dependencies
