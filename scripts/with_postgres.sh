#!/usr/bin/env bash
# Usage: scripts/with_postgres.sh CMD [ARGS...]
#
# Runs CMD with a throwaway, real PostgreSQL server and stops it afterwards.
# CMD sees TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:<port>/phone_agent_test
# and the script exits with CMD's exit code.
#
# If TEST_POSTGRES_URL is already set (non-empty), CMD is simply exec'd, so a
# developer can point the tests at a server of their own.
#
# CI runs on a fresh machine as root, so when no server binaries are found
# the script installs Debian's `postgresql` package (root only). Failing to
# install or start the server is an error, never a silent skip: tests that
# need PostgreSQL must not quietly pass without it.
set -euo pipefail

readonly DB_NAME="phone_agent_test"

die() {
    # One clear line on stderr, then a non-zero exit (the EXIT trap, once
    # installed, still cleans up).
    echo "with_postgres: $*" >&2
    exit 1
}

if [[ $# -eq 0 ]]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

# Developer-provided server: nothing to set up or tear down.
if [[ -n "${TEST_POSTGRES_URL:-}" ]]; then
    exec "$@"
fi

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# A usable bindir must have both initdb and pg_ctl; pg_config alone can come
# from libpq-dev without any server installed.
has_server_bins() { [[ -x "$1/initdb" && -x "$1/pg_ctl" ]]; }

find_bindir() {
    local dir
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir 2>/dev/null || true)"
        if [[ -n "$dir" ]] && has_server_bins "$dir"; then
            printf '%s\n' "$dir"
            return 0
        fi
    fi
    # Debian layout: /usr/lib/postgresql/<major>/bin; prefer the newest major.
    local candidates=()
    for dir in /usr/lib/postgresql/*/bin; do
        if has_server_bins "$dir"; then
            candidates+=("$dir")
        fi
    done
    if [[ ${#candidates[@]} -gt 0 ]]; then
        printf '%s\n' "${candidates[@]}" | sort -V | tail -n 1
        return 0
    fi
    return 1
}

if ! bindir="$(find_bindir)"; then
    if ! is_root; then
        die "PostgreSQL server binaries (initdb, pg_ctl) not found; install the 'postgresql' package or set TEST_POSTGRES_URL"
    fi
    echo "with_postgres: PostgreSQL not found, installing the 'postgresql' package via apt-get" >&2
    # A fresh CI machine may have empty apt lists, hence the update first.
    # </dev/null: CI has no stdin and apt must never wait for an answer.
    if ! { apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } </dev/null; then
        die "apt-get install postgresql failed"
    fi
    bindir="$(find_bindir)" || die "postgresql installed but initdb/pg_ctl still not found"
fi

command -v python3 >/dev/null 2>&1 || die "python3 is required to pick a free TCP port"

# PostgreSQL refuses to run as root, so as root the server runs as the
# `postgres` system user (the Debian package creates it; create it otherwise).
if is_root; then
    if ! id -u postgres >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin postgres || die "could not create the 'postgres' system user"
    fi
fi

# Everything (data dir, unix socket dir, server log) lives in one temp dir so
# cleanup is a single rm -rf and parallel runs never collide.
tmp="$(mktemp -d "${TMPDIR:-/tmp}/with_postgres.XXXXXXXX")"
datadir="$tmp/data"
sockdir="$tmp/sock"
logfile="$tmp/server.log"
server_started=0

# Run a server binary as the right user. cd into the temp dir first so the
# postgres user never trips over an unreadable cwd (e.g. /root).
as_pg() {
    if is_root; then
        (cd "$tmp" && runuser -u postgres -- "$@")
    else
        (cd "$tmp" && "$@")
    fi
}

# shellcheck disable=SC2317  # invoked indirectly, via trap
cleanup() {
    # Best effort: never let a cleanup failure mask CMD's exit code.
    set +e
    if [[ "$server_started" -eq 1 ]]; then
        # immediate = no checkpoint; the data is thrown away anyway.
        as_pg "$bindir/pg_ctl" -D "$datadir" -m immediate -w stop >/dev/null 2>&1
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
# Turning signals into exit makes the EXIT trap run (and gives the usual
# 128+signal status). Bash runs these after the foreground CMD returns.
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$sockdir"
if is_root; then
    chown -R postgres: "$tmp"
fi
chmod 700 "$tmp"

# C.UTF-8 keeps upper()/lower() Unicode-aware without depending on generated
# locales; fall back to plain C where it does not exist.
locale="C"
if locale -a 2>/dev/null | grep -qix 'c\.utf-\?8'; then
    locale="C.UTF-8"
fi

# Throwaway cluster: trust auth, no fsync during initdb.
if ! as_pg "$bindir/initdb" -D "$datadir" -A trust -U postgres --no-sync -E UTF8 \
    --locale="$locale" >"$tmp/initdb.log" 2>&1; then
    echo "with_postgres: initdb failed:" >&2
    sed 's/^/  | /' "$tmp/initdb.log" >&2
    exit 1
fi

pick_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# The port is free when picked but another process (e.g. a parallel run) may
# grab it before the server binds, so retry a few times on bind failures.
port=""
for attempt in 1 2 3 4 5; do
    port="$(pick_port)"
    server_started=1
    # Durability settings off: speed matters, the data is discarded.
    if as_pg "$bindir/pg_ctl" -D "$datadir" -l "$logfile" -w -t 60 \
        -o "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -k '$sockdir' -p $port -c listen_addresses=127.0.0.1" \
        start >/dev/null 2>&1; then
        break
    fi
    if [[ "$attempt" -lt 5 ]] && grep -qiE 'could not bind|address already in use|could not create any TCP/IP sockets' "$logfile" 2>/dev/null; then
        as_pg "$bindir/pg_ctl" -D "$datadir" -m immediate -w stop >/dev/null 2>&1 || true
        server_started=0
        continue
    fi
    echo "with_postgres: PostgreSQL server failed to start (pg_ctl start on port $port); server log:" >&2
    sed 's/^/  | /' "$logfile" >&2 2>/dev/null || true
    exit 1
done

# Connect over TCP as the postgres superuser (trust auth), from any OS user.
if ! "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB_NAME" >/dev/null 2>"$tmp/createdb.log"; then
    die "createdb $DB_NAME failed: $(tr '\n' ' ' <"$tmp/createdb.log")"
fi

version="$("$bindir/postgres" --version | sed -E 's/^postgres \(PostgreSQL\) //')"
echo "with_postgres: PostgreSQL $version on 127.0.0.1:$port" >&2

export TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/$DB_NAME"

# Not exec: the EXIT trap has to stop the server once CMD is done.
status=0
"$@" || status=$?
exit "$status"
