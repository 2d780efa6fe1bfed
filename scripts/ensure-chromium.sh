#!/usr/bin/env bash
# Makes sure the Chromium the browser tests drive is there: Debian's `chromium` package,
# installed with apt-get when it is missing and apt-get is usable (root, or sudo without a
# password). Otherwise stops with what to install. Playwright's own browser download is
# not used: it cannot be fetched on machines without internet access.
set -euo pipefail
chromium=${1:-/usr/bin/chromium}
[ -x "$chromium" ] && exit 0

sudo=""
usable=false
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    usable=true
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    usable=true
    sudo="sudo -n"
  fi
fi

if $usable && [ "$chromium" = /usr/bin/chromium ]; then
  echo "== installing Chromium for the browser tests (apt-get install chromium)"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine has no package lists yet.
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
  [ -x "$chromium" ] && "$chromium" --version && exit 0
fi

cat >&2 <<MSG
make test runs browser tests in Chromium, and none was found at $chromium.
Install Debian's package as root:   apt-get update && apt-get install -y chromium
(or run make as a user who may use sudo), or point to another Chromium build:
  make test CHROMIUM=/path/to/chromium
MSG
exit 1
