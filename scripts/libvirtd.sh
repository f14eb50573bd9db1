#!/usr/bin/env bash
# Starts virtlogd and libvirtd inside the network namespace "$VMFLOW_NETNS" (default: vmflow).
# Every bridge, dnsmasq and ebtables/iptables rule libvirt makes then lives in that namespace;
# the daemons' UNIX sockets stay at the usual paths, so qemu:///system reaches them.
# Idempotent: a daemon already running in the namespace is reused.
# Usage: scripts/libvirtd.sh [start|stop|status]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

in_ns() { # pid → 0 when the process runs in our namespace
  [ -n "$1" ] && [ -d "/proc/$1" ] && [ "$(ip netns identify "$1" 2>/dev/null)" = "$VMFLOW_NETNS" ]
}
pid_of() { [ -f "$1" ] && cat "$1" 2>/dev/null || true; }

status() {
  local lv lg
  lv=$(pid_of /run/libvirtd.pid); lg=$(pid_of /run/virtlogd.pid)
  in_ns "$lv" && in_ns "$lg" && virsh -q -c qemu:///system version >/dev/null 2>&1
}

# Debian's udev rule gives /dev/kvm to group kvm, mode 0660 (QEMU runs as libvirt-qemu, a member of kvm).
# Without udev (containers, this CI) it stays root-only 0600: libvirt's capability probe (as root) then
# sees KVM while QEMU cannot open it, libvirt re-probes QEMU on every call (tens of seconds per define)
# and kvm domains fail. Apply the distribution's setting.
fix_kvm_permissions() {
  [ -c /dev/kvm ] && getent group kvm >/dev/null || return 0
  if [ "$(stat -c %G:%a /dev/kvm)" != "kvm:660" ]; then
    log "setting /dev/kvm to group kvm, mode 0660 (Debian's udev default)"
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
  fi
}

start() {
  need_root
  fix_kvm_permissions
  [ -e "/run/netns/$VMFLOW_NETNS" ] || { log "creating network namespace $VMFLOW_NETNS"; ip netns add "$VMFLOW_NETNS"; }
  ip -n "$VMFLOW_NETNS" link set lo up
  if status; then log "libvirtd already running in namespace $VMFLOW_NETNS"; return 0; fi
  local lv lg
  lv=$(pid_of /run/libvirtd.pid); lg=$(pid_of /run/virtlogd.pid)
  # A daemon outside our namespace (e.g. from an earlier manual start) would put bridges on the host.
  if [ -n "$lv" ] && [ -d "/proc/$lv" ] && ! in_ns "$lv"; then
    die "a libvirtd (pid $lv) runs outside namespace $VMFLOW_NETNS; stop it first (kill $lv)"
  fi
  if ! in_ns "$lg"; then
    [ -n "$lg" ] && [ -d "/proc/$lg" ] && kill "$lg" 2>/dev/null || true
    rm -f /run/virtlogd.pid
    log "starting virtlogd in namespace $VMFLOW_NETNS"
    ip netns exec "$VMFLOW_NETNS" virtlogd -d
    wait_for 10 test -S /run/libvirt/virtlogd-sock || die "virtlogd did not come up"
  fi
  if ! in_ns "$lv"; then
    rm -f /run/libvirtd.pid
    log "starting libvirtd in namespace $VMFLOW_NETNS"
    ip netns exec "$VMFLOW_NETNS" libvirtd -d
  fi
  wait_for 30 virsh -q -c qemu:///system version || die "libvirtd did not answer on qemu:///system"
  log "libvirtd ready (namespace $VMFLOW_NETNS)"
}

stop() {
  for f in /run/libvirtd.pid /run/virtlogd.pid; do
    local p; p=$(pid_of "$f")
    if in_ns "$p"; then kill "$p"; fi
  done
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) if status; then echo running; else echo stopped; exit 1; fi ;;
  *) die "usage: $0 [start|stop|status]" ;;
esac
