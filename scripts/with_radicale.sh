#!/usr/bin/env bash
# Usage: scripts/with_radicale.sh CMD [ARGS...]
#
# Runs CMD with a throwaway, real Radicale CalDAV server and stops it afterwards.
# CMD sees TEST_CALDAV_URL=http://127.0.0.1:<port>/ with TEST_CALDAV_USERNAME and
# TEST_CALDAV_PASSWORD (one htpasswd user, plain text: the server and its storage are
# deleted when CMD ends), and the script exits with CMD's exit code.
#
# If TEST_CALDAV_URL is already set (non-empty), CMD is simply exec'd, so a developer can
# point the tests at a server of their own (and set the username and password too).
#
# Radicale comes from requirements-dev.txt; RADICALE_PYTHON names the interpreter that has
# it (the Makefile passes the virtual environment's). Failing to start the server is an
# error, never a silent skip.
set -euo pipefail

die() {
    echo "with_radicale: $*" >&2
    exit 1
}

if [[ $# -eq 0 ]]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

if [[ -n "${TEST_CALDAV_URL:-}" ]]; then
    exec "$@"
fi

python="${RADICALE_PYTHON:-python3}"
if ! "$python" -c 'import radicale' >/dev/null 2>&1; then
    die "$python cannot import radicale; install requirements-dev.txt or set RADICALE_PYTHON"
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/with_radicale.XXXXXXXX")"
chmod 700 "$tmp"
logfile="$tmp/server.log"
pid=""

# shellcheck disable=SC2317  # invoked indirectly, via trap
cleanup() {
    set +e
    if [[ -n "$pid" ]]; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

username="phone-agent-test"
password="$("$python" -c 'import secrets; print(secrets.token_urlsafe(18))')"
printf '%s:%s\n' "$username" "$password" >"$tmp/users"

pick_port() {
    "$python" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Answers when the server is up: any HTTP status means it is listening.
is_up() {
    "$python" - "$1" <<'EOF'
import sys
import urllib.error
import urllib.request

try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/.web/", timeout=1)
except urllib.error.HTTPError:
    pass
except OSError:
    sys.exit(1)
EOF
}

# The port is free when picked but another process may take it before Radicale binds,
# so a server that exits at once is tried again on another port.
port=""
for attempt in 1 2 3 4 5; do
    port="$(pick_port)"
    cat >"$tmp/config" <<EOF
[server]
hosts = 127.0.0.1:$port

[auth]
type = htpasswd
htpasswd_filename = $tmp/users
htpasswd_encryption = plain
delay = 0

[rights]
type = owner_only

[storage]
filesystem_folder = $tmp/collections

[web]
type = none

[logging]
level = warning
mask_passwords = True
EOF
    "$python" -m radicale --config "$tmp/config" >"$logfile" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            break
        fi
        if is_up "$port"; then
            break 2
        fi
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        die "Radicale did not answer on 127.0.0.1:$port within 10 s; log: $(tr '\n' ' ' <"$logfile")"
    fi
    wait "$pid" 2>/dev/null || true
    pid=""
    if [[ "$attempt" -lt 5 ]] && grep -qiE 'address already in use|bind' "$logfile"; then
        continue
    fi
    echo "with_radicale: Radicale exited at start (port $port); log:" >&2
    sed 's/^/  | /' "$logfile" >&2
    exit 1
done

version="$("$python" -c 'import radicale; print(radicale.VERSION)' 2>/dev/null || echo '?')"
echo "with_radicale: Radicale $version on 127.0.0.1:$port" >&2

export TEST_CALDAV_URL="http://127.0.0.1:$port/"
export TEST_CALDAV_USERNAME="$username"
export TEST_CALDAV_PASSWORD="$password"

# Not exec: the EXIT trap has to stop the server once CMD is done.
status=0
"$@" || status=$?
exit "$status"
