#!/usr/bin/env bash
# Builds vmflow's in-guest agent (guest-agent/, Go, standard library only) as static binaries:
#   ${VMFLOW_CACHE:-~/.cache/vmflow}/guest-agent/<source hash>/vmflow-agent-linux-amd64
#   ${VMFLOW_CACHE:-~/.cache/vmflow}/guest-agent/<source hash>/vmflow-agent-windows-amd64.exe
#   (+ SHA256SUMS)
# The source hash covers every file of guest-agent/ that goes into a build (*.go outside testdata and
# tests, go.mod, go.sum). A second run with the same sources prints the path and returns at once. The
# last line on stdout is the Linux binary's path; everything else goes to stderr.
#
# Usage: scripts/guest-agent/build.sh [--force]      (npm run agent:build; no root needed)
# Env:   VMFLOW_CACHE; GOCACHE defaults to $VMFLOW_CACHE/go-build when HOME has none.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/../lib.sh"

FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

SRC="$VMFLOW_ROOT/guest-agent"
command -v go >/dev/null || die "go is not on PATH (Debian: golang-go, or /usr/local/go/bin)"
[ -n "${GOCACHE:-}" ] || [ -d "${HOME:-/nonexistent}" ] || export GOCACHE="$VMFLOW_CACHE/go-build"
# Everything the build depends on, in a stable order; tests and fixtures are left out.
source_hash() {
  (
    cd "$SRC"
    find . -type f \( -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum \) \
      ! -path '*/testdata/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    go env GOVERSION
  ) | sha256sum | cut -c1-16
}

HASH="$(source_hash)"
OUT="$VMFLOW_CACHE/guest-agent/$HASH"
LINUX="$OUT/vmflow-agent-linux-amd64"
WINDOWS="$OUT/vmflow-agent-windows-amd64.exe"

if [ $FORCE = 0 ] && [ -x "$LINUX" ] && [ -f "$WINDOWS" ] && [ -f "$OUT/SHA256SUMS" ]; then
  log "guest agent already built (sources $HASH)"
  printf '%s\n' "$LINUX"
  exit 0
fi

mkdir -p "$VMFLOW_CACHE/guest-agent"
TMP="$(mktemp -d "$VMFLOW_CACHE/guest-agent/.build-$HASH.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
t0=$SECONDS
# -trimpath and no build id: the same sources and Go version give the same bytes on any machine.
build() {
  (cd "$SRC" && CGO_ENABLED=0 GOOS="$1" GOARCH=amd64 GOFLAGS=-mod=readonly \
    go build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o "$2" ./cmd/vmflow-agent)
}
build linux "$TMP/vmflow-agent-linux-amd64"
build windows "$TMP/vmflow-agent-windows-amd64.exe"
(cd "$TMP" && sha256sum vmflow-agent-linux-amd64 vmflow-agent-windows-amd64.exe >SHA256SUMS)
chmod 755 "$TMP"
rm -rf "$OUT"
mv "$TMP" "$OUT"
trap - EXIT
log "built the guest agent (sources $HASH, $(go env GOVERSION)) in $((SECONDS - t0)) s: linux $(stat -c %s "$LINUX") bytes, windows $(stat -c %s "$WINDOWS") bytes"
printf '%s\n' "$LINUX"
