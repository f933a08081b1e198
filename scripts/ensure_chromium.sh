#!/usr/bin/env bash
# Usage: scripts/ensure_chromium.sh
#
# Makes sure Debian's Chromium is at /usr/bin/chromium for the end-to-end tests (tests/e2e),
# which drive it with Playwright. Playwright never downloads a browser of its own here.
# CI runs on a fresh machine as root, so the script installs the `chromium` package when it is
# missing; anyone else gets one line saying what to do and a non-zero exit.
set -euo pipefail

readonly CHROMIUM=/usr/bin/chromium

if [[ -x "$CHROMIUM" ]]; then
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    echo "ensure_chromium: $CHROMIUM is missing; install it with: sudo apt-get install chromium" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
[[ -x "$CHROMIUM" ]] || { echo "ensure_chromium: installing chromium did not provide $CHROMIUM" >&2; exit 1; }
