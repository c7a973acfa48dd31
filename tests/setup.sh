#!/usr/bin/env bash
# Test set-up, run by test.sh before the build: Debian packages that some tests use for real. Idempotent (installs only
# what is missing); each block belongs to one area, so keep blocks separate.
set -uo pipefail

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: missing $*; install them (apt-get install -y $*) as root" >&2; return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 && return 0
  # The package lists may be stale or absent on a fresh machine: refresh once, then try again.
  apt-get update -qq >/dev/null 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 || { echo "setup: apt-get install $* failed" >&2; return 1; }
}

status=0

# --- redis-server: the gateway's shared-state tests (tests/Consort.Server.Tests, Redis*) start it on loopback ---
if ! command -v redis-server >/dev/null 2>&1; then
  apt_install redis-server || status=1
fi
# The package starts a system service on 6379; the tests start their own on free ports, so stop it where it runs.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then systemctl stop redis-server >/dev/null 2>&1 || true; fi

# --- Chromium and a font: reports (report.html) are loaded and screenshotted in a real headless browser ---
if ! command -v chromium >/dev/null 2>&1 || [ ! -d /usr/share/fonts/truetype/dejavu ]; then
  apt_install chromium fonts-dejavu-core || status=1
fi

exit $status
