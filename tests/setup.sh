#!/usr/bin/env bash
# Test set-up (called by test.sh): installs the Debian packages tests need when they are missing. Idempotent.
# Each block installs one thing and may be run alone.
set -uo pipefail

# --- redis-server: the gateway's shared-state tests (tests/Consort.Server.Tests, Redis*) start it on loopback ---
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing redis-server" >&2
    (apt-get install -y -qq redis-server >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq redis-server >/dev/null 2>&1; }) \
      || echo "setup: could not install redis-server; Redis tests will fail" >&2
  else
    echo "setup: redis-server missing and cannot be installed here (needs root and apt-get); Redis tests will fail" >&2
  fi
fi
# The package starts a system service on 6379; the tests start their own on free ports, so stop it where it runs.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then systemctl stop redis-server >/dev/null 2>&1 || true; fi
