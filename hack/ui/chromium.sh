#!/usr/bin/env bash
# Installs Debian's `chromium` for the Admin UI's browser tests (Playwright drives it through its
# executable path; Playwright never downloads a browser here). Prints the executable's path.
# Idempotent: a no-op when chromium is installed already.
set -euo pipefail

find_chromium() { command -v chromium || command -v chromium-browser || true; }

path="$(find_chromium)"
if [[ -z "$path" ]]; then
  if [[ "$(id -u)" != 0 ]]; then
    echo "chromium is not installed; run as root: apt-get install chromium" >&2
    exit 1
  fi
  echo "installing Debian's chromium (once)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=900 update -qq >&2
  apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core >&2
  path="$(find_chromium)"
fi
echo "$path"
