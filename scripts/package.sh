#!/usr/bin/env bash
# A Debian package of the extension for PG_CONFIG's major (Debian's 15 by default), named as
# Debian names extension packages: target/packages/postgresql-NN-column-notify_<version>-1_<arch>.deb.
# It holds the library and the SQL scripts (the earlier releases' too, for ALTER EXTENSION
# ... UPDATE) in Debian's folders for that major, and depends on postgresql-NN and on the
# libraries the library links.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PG_CONFIG="${PG_CONFIG:-/usr/bin/pg_config}"

say() { printf 'package: %s\n' "$*" >&2; }

major="$("$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')"
version="$(sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
arch="$(dpkg --print-architecture)"
name="postgresql-$major-column-notify"
work="target/deb/$name"
root="$work/root"
lib="$root/usr/lib/postgresql/$major/lib"
extension="$root/usr/share/postgresql/$major/extension"

rm -rf "$work"
mkdir -p "$work"
say "building $name $version for $("$PG_CONFIG" --version)"
cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$work/build" >"$work/build.log" 2>&1 \
    || { tail -n 30 "$work/build.log" >&2; exit 1; }
mkdir -p "$lib" "$extension" "$root/DEBIAN"
# cargo pgrx lays the files out under pg_config's own folders (a fetched server's are not
# Debian's): they go to Debian's folders of the major.
find "$work/build" -name 'pg_column_notify.so' -exec cp {} "$lib/" \;
find "$work/build" -path '*/extension/pg_column_notify*' -type f -exec cp {} "$extension/" \;
cp sql/pg_column_notify--0.[1-4].0.sql "$extension/"
chmod 644 "$lib"/* "$extension"/*

# The packages of the libraries it links, with the C library's version it needs.
library="$lib/pg_column_notify.so"
glibc="$(objdump -T "$library" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)"
depends="postgresql-$major"
for path in $(ldd "$library" | awk '/=>/ { print $3 }'); do
    package="$(dpkg -S "$path" 2>/dev/null | head -n 1 | cut -d: -f1)"
    case "$package" in
        "") say "no Debian package holds $path"; exit 1 ;;
        libc6) depends="$depends, libc6 (>= $glibc)" ;;
        *) depends="$depends, $package" ;;
    esac
done

cat >"$root/DEBIAN/control" <<CONTROL
Package: $name
Version: $version-1
Architecture: $arch
Maintainer: pg_column_notify developers <pg_column_notify@localhost>
Depends: $depends
Section: database
Priority: optional
Installed-Size: $(du -sk "$root/usr" | cut -f1)
Description: watch table columns and notify listeners when they really change
 pg_column_notify for PostgreSQL $major: one SQL call (watch_column) installs a trigger that
 sends {"id", "old", "new"} JSON through NOTIFY, a durable event log or logical WAL
 messages when a watched column changes.
CONTROL

mkdir -p target/packages
deb="target/packages/${name}_${version}-1_${arch}.deb"
dpkg-deb --build --root-owner-group "$root" "$deb" >/dev/null
say "$deb (Depends: $depends)"
echo "$deb"
