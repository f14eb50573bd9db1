#!/usr/bin/env bash
# Installs and starts everything vmflow needs on a Debian 12 machine, as root. Idempotent and cached:
# each step checks what is there (package installed, stamp hash unchanged, daemon running) and does only
# what is missing, so a second run takes seconds.
#   Debian packages · npm dependencies · the native libvirt addon · Temporal CLI v1.5.1 ·
#   libvirtd + virtlogd in network namespace "vmflow" · the host's storage pool and default network ·
#   MariaDB reachable · database created and migrated.
# Usage: scripts/setup.sh            (everything)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$VMFLOW_ROOT"
need_root
t0=$SECONDS

# prometheus: only for its promtool, the tests' oracle of the /metrics format (its daemon is never started).
APT_PACKAGES=(libvirt-daemon-system libvirt-dev qemu-system-x86 qemu-utils dnsmasq-base iptables ebtables
  iproute2 libxml2-utils pkg-config python3 make g++ ca-certificates curl genisoimage prometheus)

ensure_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == *"install ok installed"* ]] || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_get update -qq
    # No package may start its service here (prometheus would listen on every interface): without systemd,
    # invoke-rc.d asks policy-rc.d, so one that says no is put in place for the install if none exists.
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
      # Interrupted before it is removed, it would keep every later package's service from starting.
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    local rc=0
    apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
    if [ -n "$made_policy" ]; then rm -f "$policy"; trap - EXIT; fi
    [ "$rc" -eq 0 ] || die "apt-get install failed (exit $rc)"
  fi
  disable_prometheus_server
}

# vmflow needs only promtool from Debian's prometheus package (tests check expositions with it): the server it
# ships must not start, now or at the next boot (it would listen on every interface). Its package enables it.
disable_prometheus_server() {
  [ -e /lib/systemd/system/prometheus.service ] || [ -e /etc/init.d/prometheus ] || return 0
  rm -f /etc/systemd/system/multi-user.target.wants/prometheus.service
  [ "$(readlink /etc/systemd/system/prometheus.service 2>/dev/null)" = /dev/null ] ||
    ln -sfn /dev/null /etc/systemd/system/prometheus.service
  if [ -e /etc/init.d/prometheus ] && command -v update-rc.d >/dev/null; then
    update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
}

ensure_node_modules() {
  command -v node >/dev/null || die "Node.js 20 is required (apt-get install nodejs npm)"
  local want; want="$(node --version)-$(sha256sum package-lock.json | cut -c1-16)"
  if [ -d node_modules ] && stamp_ok npm "$want"; then return; fi
  log "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  stamp_set npm "$want"
}

ensure_native() {
  local want; want="$(node --version)-$(cat native/binding.gyp native/src/* 2>/dev/null | sha256sum | cut -c1-16)"
  if [ -f native/build/Release/vmflow_libvirt.node ] && stamp_ok native "$want"; then return; fi
  log "building the native libvirt addon"
  # Build against the headers the nodejs package ships when they match this node (no download);
  # otherwise node-gyp fetches them (needs internet).
  local nodedir=() v; v=$(node -p 'process.versions.node')
  if [ -f /usr/include/node/node_version.h ] &&
    [ "$(awk '/define NODE_(MAJOR|MINOR|PATCH)_VERSION/ {printf "%s.", $3}' /usr/include/node/node_version.h)" = "$v." ]; then
    nodedir=(--nodedir=/usr)
  fi
  npx --no-install node-gyp rebuild --directory native "${nodedir[@]}" --loglevel=error >"$VMFLOW_STATE/native-build.log" 2>&1 ||
    { cat "$VMFLOW_STATE/native-build.log" >&2; die "native addon build failed"; }
  stamp_set native "$want"
}

# A release binary prints its version; one built by go install prints 0.0.0-DEV, so ask Go which module
# version it was built from.
temporal_ok() {
  [ -x "$1" ] || return 1
  [[ "$("$1" --version 2>/dev/null)" == *"version $TEMPORAL_CLI_VERSION "* ]] && return 0
  local go; go=$(command -v go || echo /usr/local/go/bin/go)
  [ -x "$go" ] && [[ "$("$go" version -m "$1" 2>/dev/null)" =~ mod[[:space:]]+github.com/temporalio/cli[[:space:]]+v$TEMPORAL_CLI_VERSION[[:space:]] ]]
}

# Order (DESIGN.md decision 1): $TEMPORAL_CLI, the project's tools folder, the per-user cache,
# go install from the Go module proxy, then the official release download (for users with internet).
ensure_temporal_cli() {
  local tools="$VMFLOW_ROOT/.tools" cache="$VMFLOW_CACHE/temporal-cli/$TEMPORAL_CLI_VERSION"
  mkdir -p "$tools"
  if [ -n "${TEMPORAL_CLI:-}" ]; then
    temporal_ok "$TEMPORAL_CLI" || die "TEMPORAL_CLI=$TEMPORAL_CLI is not a Temporal CLI $TEMPORAL_CLI_VERSION"
    ln -sfn "$TEMPORAL_CLI" "$tools/temporal"; return
  fi
  temporal_ok "$tools/temporal" && return
  if ! temporal_ok "$cache/temporal"; then
    mkdir -p "$cache"
    local go=""; go=$(command -v go || true); [ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
    if [ -n "$go" ]; then
      log "building Temporal CLI v$TEMPORAL_CLI_VERSION with go install (takes a few minutes, once)"
      GOBIN="$cache" CGO_ENABLED=0 "$go" install "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION" ||
        warn "go install of the Temporal CLI failed"
    fi
    if ! temporal_ok "$cache/temporal"; then
      log "downloading the Temporal CLI v$TEMPORAL_CLI_VERSION release"
      local tmp; tmp=$(mktemp -d)
      curl -fsSL "https://github.com/temporalio/cli/releases/download/v$TEMPORAL_CLI_VERSION/temporal_cli_${TEMPORAL_CLI_VERSION}_linux_amd64.tar.gz" |
        tar -xz -C "$tmp" temporal && mv "$tmp/temporal" "$cache/temporal" ||
        die "no Temporal CLI: install Go >= 1.25 or set TEMPORAL_CLI to a v$TEMPORAL_CLI_VERSION binary"
    fi
  fi
  temporal_ok "$cache/temporal" || die "Temporal CLI at $cache/temporal is not v$TEMPORAL_CLI_VERSION"
  ln -sfn "$cache/temporal" "$tools/temporal"
}

# The host's storage pool and its default isolated network, inside the namespace (static XML, no user input).
ensure_host_resources() {
  local pool="${STORAGE_POOL:-vmflow}" net="${DEFAULT_NETWORK:-vmflow-default}" dir=/var/lib/vmflow/images
  local v=(virsh -q -c "${LIBVIRT_URI:-qemu:///system}")
  if ! "${v[@]}" pool-info "$pool" >/dev/null 2>&1; then
    log "defining storage pool $pool at $dir"
    mkdir -p "$dir"
    "${v[@]}" pool-define-as "$pool" dir --target "$dir" >/dev/null
    "${v[@]}" pool-build "$pool" >/dev/null 2>&1 || true
    "${v[@]}" pool-autostart "$pool" >/dev/null
  fi
  [[ "$("${v[@]}" pool-info "$pool")" =~ State:[[:space:]]+running ]] || "${v[@]}" pool-start "$pool" >/dev/null
  if ! "${v[@]}" net-info "$net" >/dev/null 2>&1; then
    log "defining isolated network $net (10.250.0.0/24, inside namespace $VMFLOW_NETNS)"
    local f; f=$(mktemp)
    cat >"$f" <<XML
<network>
  <name>$net</name>
  <bridge name='vmflowbr0' stp='on' delay='0'/>
  <ip address='10.250.0.1' netmask='255.255.255.0'>
    <dhcp><range start='10.250.0.100' end='10.250.0.250'/></dhcp>
  </ip>
</network>
XML
    "${v[@]}" net-define "$f" >/dev/null; rm -f "$f"
    "${v[@]}" net-autostart "$net" >/dev/null
  fi
  [[ "$("${v[@]}" net-info "$net")" =~ Active:[[:space:]]+yes ]] || "${v[@]}" net-start "$net" >/dev/null
}

db_reachable() { mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; }

ensure_mariadb() {
  # Only for the local default; a remote DATABASE_URL is the operator's to provide.
  case "${DATABASE_URL:-mysql://root@127.0.0.1:3306/vmflow}" in
    *@127.0.0.1:*|*@localhost:*|*@127.0.0.1/*|*@localhost/*) ;;
    *) return ;;
  esac
  command -v mysqladmin >/dev/null || { log "installing MariaDB"; apt_get install -y -qq --no-install-recommends mariadb-server >/dev/null; }
  if ! db_reachable; then
    log "starting MariaDB"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_for 30 db_reachable || die "MariaDB did not come up on 127.0.0.1:3306"
  fi
}

redis_reachable() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

# Redis carries the event wake-ups (pub/sub only, nothing on disk). Only for the local default.
ensure_redis() {
  case "${REDIS_URL-redis://127.0.0.1:6379}" in
    redis://127.0.0.1:6379*|redis://localhost:6379*) ;;
    *) return ;;
  esac
  command -v redis-server >/dev/null || { log "installing Redis"; apt_get install -y -qq --no-install-recommends redis-server >/dev/null; }
  if ! redis_reachable; then
    log "starting Redis on 127.0.0.1:6379 (no persistence)"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/vmflow.log
    wait_for 15 redis_reachable || die "Redis did not come up on 127.0.0.1:6379"
  fi
}

# The project's guest image (scripts/image/build.sh): built offline from Debian packages into the per-user
# cache, keyed by its recipe, so a second run finds it in a second. Machines from it boot a real OS.
ensure_guest_image() {
  local img agent
  # The image carries the agent (its binary is part of the image's recipe): build it first.
  agent="$(bash scripts/guest-agent/build.sh)" || die "the guest agent did not build"
  log "guest agent: $agent"
  img="$(bash scripts/image/build.sh)" || die "the guest image did not build (see the log it names)"
  log "guest image: $img"
}

ensure_database() {
  log "migrating database ${DATABASE_URL:-mysql://root@127.0.0.1:3306/vmflow}"
  npx --no-install tsx src/entities/migrate.ts
}

mkdir -p "$VMFLOW_STATE"
case "${1:-all}" in
  native) # just what the addon build needs
    ensure_packages
    ensure_node_modules
    stamp_set native "" # force a rebuild
    ensure_native
    ;;
  all)
    ensure_packages
    ensure_node_modules
    ensure_native
    ensure_temporal_cli
    bash scripts/libvirtd.sh start
    ensure_host_resources
    ensure_mariadb
    ensure_redis
    ensure_database
    ensure_guest_image
    ;;
  *) die "usage: $0 [all|native]" ;;
esac
log "set-up done in $((SECONDS - t0)) s"
