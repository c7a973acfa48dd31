#!/usr/bin/env bash
# Test set-up, run by test.sh before the build: Debian packages that some tests use for real. Idempotent (installs only
# what is missing); each block belongs to one area, so keep blocks separate.
set -uo pipefail

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: missing $*; install them (apt-get install -y $*) as root" >&2; return 1
  fi
  if [ ! -f /tmp/.consort-apt-updated ]; then apt-get update -qq >/dev/null 2>&1 && touch /tmp/.consort-apt-updated; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 || { echo "setup: apt-get install $* failed" >&2; return 1; }
}

# --- Chromium and a font: reports (report.html) are loaded and screenshotted in a real headless browser ---
if ! command -v chromium >/dev/null 2>&1 || [ ! -d /usr/share/fonts/truetype/dejavu ]; then
  apt_install chromium fonts-dejavu-core
fi
