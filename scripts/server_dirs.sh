# Sourced by the scripts that start a PostgreSQL server: where its folders may live.
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
