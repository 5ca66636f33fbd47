#!/usr/bin/env bash
# Builds nats-server (the event lane's engine) from the Go module proxy, or
# reuses the cached build. Prints the binary's absolute path on its last line.
#
# Its own cache directory and key (this directory's files), so a NATS bump does
# not rebuild the Kubernetes binaries and a Kubernetes bump does not rebuild NATS.
set -euo pipefail
NATS_VERSION=v2.15.3  # github.com/nats-io/nats-server/v2, pinned in module/go.mod too
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=${VIVIFIED_CACHE:-$HOME/.cache/vivified}
key=$(cd "$here" && cat build.sh module/go.mod module/go.sum | sha256sum | cut -c1-12)
dir="$root/nats-server-$NATS_VERSION-$key"
if [[ -x "$dir/bin/nats-server" ]]; then
  echo "$dir/bin/nats-server"
  exit 0
fi
mkdir -p "$root"
exec 8>"$root/.nats-build.lock"
flock 8
if [[ ! -x "$dir/bin/nats-server" ]]; then
  tmp="$dir.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/bin"
  trap 'rm -rf "$tmp"' EXIT
  echo ">> building nats-server $NATS_VERSION ($(date +%T))" >&2
  (cd "$here/module" && CGO_ENABLED=0 go build -buildvcs=false -trimpath -ldflags "-s -w" \
    -o "$tmp/bin/nats-server" github.com/nats-io/nats-server/v2) >&2
  rm -rf "$dir"
  mv "$tmp" "$dir"
  trap - EXIT
fi
echo "$dir/bin/nats-server"
