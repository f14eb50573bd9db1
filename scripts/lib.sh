# Shared helpers for vmflow's set-up scripts. Sourced, not run.
# Every step is idempotent: it checks what is there and does only what is missing.

VMFLOW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VMFLOW_CACHE="${VMFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmflow}"
VMFLOW_STATE="${VMFLOW_STATE:-$VMFLOW_ROOT/.vmflow}"
VMFLOW_NETNS="${VMFLOW_NETNS:-vmflow}"
TEMPORAL_CLI_VERSION="1.5.1"

log() { printf '\033[1;34m[vmflow]\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33m[vmflow] WARNING:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[vmflow] ERROR:\033[0m %s\n' "$*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "set-up must run as root (it installs packages and starts libvirtd)"; }

# Wait until a command succeeds, at most $1 seconds.
wait_for() {
  local secs=$1; shift
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.2
  done
}

# Note: never `cmd | grep -q` under pipefail: grep exits at the first match, cmd dies of SIGPIPE and
# the pipeline fails. Capture the output and match it instead.

# A stamp file per step, holding a hash of what the step depends on.
stamp_ok() { [ -f "$VMFLOW_STATE/stamps/$1" ] && [ "$(cat "$VMFLOW_STATE/stamps/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$VMFLOW_STATE/stamps"; printf '%s' "$2" >"$VMFLOW_STATE/stamps/$1"; }

# apt-get that waits for another apt or dpkg run (a second set-up, an unattended upgrade) to release its locks
# instead of failing at once: dpkg's lock through apt's own timeout, the package lists' lock by retrying while
# an apt or dpkg process runs (up to 10 minutes).
apt_get() {
  local tries=0 rc
  while true; do
    rc=0
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@" || rc=$?
    [ "$rc" -eq 0 ] && return 0
    tries=$((tries + 1))
    if [ "$tries" -ge 120 ] || ! pgrep -x 'apt-get|apt|dpkg|unattended-upgr' >/dev/null; then return "$rc"; fi
    log "apt-get: another apt or dpkg run holds its lock; waiting"
    sleep 5
  done
}
