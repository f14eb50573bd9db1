#!/usr/bin/env bash
# Proves that vmflow's guest image boots on its own and provisions from a NoCloud seed, by talking to
# the QEMU guest agent. Plain qemu-system-x86_64 (no libvirt), 1 vCPU, 768 MiB, BIOS, on a qcow2
# overlay (the cached image is never written). The only network is QEMU's user-mode network with
# restrict=on: the guest reaches nothing but QEMU's internal DHCP server, and one host-forward on
# 127.0.0.1 lets the check log in over SSH.
#
# Proves: the agent answers (time from QEMU start), cloud-init finished, OS is Debian 12, hostname is
# the provisioned one, the user exists with the password hash and SSH key, the NIC took a DHCP lease
# (guest-network-get-interfaces + dhclient's lease file), the root file system grew to the bigger
# disk, SSH login with the key works, and guest-shutdown ends QEMU within seconds.
#
# Usage: scripts/image/boot-check.sh [--accel tcg|kvm|all] [IMAGE.qcow2]
#   default --accel all: TCG always, then KVM when /dev/kvm opens. Without IMAGE, the cached image
#   from scripts/image/build.sh (built first if missing; that needs root).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/../lib.sh"

ACCEL=all
IMG=""
while [ $# -gt 0 ]; do
  case "$1" in
    --accel) ACCEL="$2"; shift 2 ;;
    -*) die "unknown option $1" ;;
    *) IMG="$1"; shift ;;
  esac
done
case "$ACCEL" in tcg | kvm | all) ;; *) die "--accel must be tcg, kvm or all" ;; esac

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"
command -v genisoimage >/dev/null || {
  need_root
  log "installing genisoimage"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends genisoimage >/dev/null
}
if [ -z "$IMG" ]; then IMG="$(bash "$HERE/build.sh")"; fi
[ -f "$IMG" ] || die "no image at $IMG"
IMG="$(readlink -f "$IMG")"

QGA=(node "$HERE/qga.mjs")
W="$(mktemp -d /tmp/vmflow-boot-check.XXXXXX)"
LOGS="$VMFLOW_STATE/boot-check"
mkdir -p "$LOGS"
QPID=""
# Stops the QEMU that a boot started (its pid is in $W/qemu.pid), only if it is still ours.
stop_qemu() {
  local pid
  pid="$(cat "$W/qemu.pid" 2>/dev/null)" || return 0
  [ -n "$pid" ] || return 0
  local cmd; cmd="$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)" || return 0
  [[ "$cmd" == *"$W/qga.sock"* ]] || return 0
  kill "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  rm -f "$W/qemu.pid"
}
cleanup() {
  local rc=$?
  set +e
  stop_qemu
  rm -rf "$W"
  [ $rc = 0 ] || warn "boot check FAILED (exit $rc); serial console logs in $LOGS"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# JSON helpers (node is a project requirement): jget JSON EXPR evaluates EXPR with `o` bound to it.
jget() { node -e 'const o=JSON.parse(process.argv[1]); const v=(0,eval)("(o)=>"+process.argv[2])(o); process.stdout.write(typeof v==="string"?v:JSON.stringify(v))' "$1" "$2"; }
ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
fail() { die "boot check ($accel): $*"; }
ok() { printf '  \033[1;32mok\033[0m %s\n' "$*" >&2; }

# The seed: what vmflow's worker will write for a cloud-init image (issue 10), on an ISO labelled cidata.
USERNAME=vmuser
GUEST_HOSTNAME=vmflow-check
MAC=52:54:00:5e:ed:01
ssh-keygen -q -t ed25519 -N '' -C vmflow-boot-check -f "$W/id_ed25519"
PUBKEY="$(cat "$W/id_ed25519.pub")"
PASSWORD="$(head -c 12 /dev/urandom | base64)"
PWHASH="$(openssl passwd -6 -stdin <<<"$PASSWORD")"
mkdir -p "$W/seed"
cat >"$W/seed/meta-data" <<EOF
instance-id: vmflow-boot-check-$(date +%s)
local-hostname: $GUEST_HOSTNAME
EOF
cat >"$W/seed/user-data" <<EOF
#cloud-config
hostname: $GUEST_HOSTNAME
preserve_hostname: false
ssh_pwauth: true
users:
  - name: $USERNAME
    gecos: vmflow boot check
    shell: /bin/bash
    groups: [sudo]
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    lock_passwd: false
    passwd: "$PWHASH"
    ssh_authorized_keys:
      - $PUBKEY
EOF
cat >"$W/seed/network-config" <<EOF
version: 2
ethernets:
  eth0:
    match:
      macaddress: "$MAC"
    set-name: eth0
    dhcp4: true
EOF
genisoimage -quiet -output "$W/seed.iso" -volid cidata -joliet -rock \
  "$W/seed/user-data" "$W/seed/meta-data" "$W/seed/network-config"

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
gexec() { # gexec SECONDS CMD ARG… → JSON {exitcode, stdout, stderr}
  "${QGA[@]}" "$W/qga.sock" exec "$@"
}
must_exec() { # like gexec, but fails the check unless exit code 0; prints stdout
  local out; out="$(gexec "$@")" || fail "guest-exec $* failed"
  [ "$(jget "$out" o.exitcode)" = 0 ] || fail "guest-exec $*: $(jget "$out" 'o.exitcode+" "+o.stderr')"
  jget "$out" o.stdout
}

# One boot, in a subshell of its own: any failure ends it, and its EXIT trap stops its QEMU.
boot_once() {
  accel=$1
  local agent_secs=900
  [ "$accel" = kvm ] && agent_secs=180
  trap stop_qemu EXIT
  # TCG: emulate a modern CPU. KVM: QEMU's default model; -cpu host fails on this nested-KVM host
  # ("failed to set MSR 0x10a", IA32_ARCH_CAPABILITIES).
  local cpu=(-cpu max)
  [ "$accel" = kvm ] && cpu=()
  log "boot check under $accel: $IMG"
  rm -f "$W/overlay.qcow2" "$W/qga.sock"
  # The overlay is 4 GiB over the 3 GiB image: cloud-init's growpart/resizefs must grow /.
  qemu-img create -q -f qcow2 -F qcow2 -b "$IMG" "$W/overlay.qcow2" 4G
  local port; port="$(free_port)"
  local serial="$LOGS/serial-$accel.log"
  local t0=$EPOCHREALTIME
  qemu-system-x86_64 -name "vmflow-boot-check-$accel" -no-user-config -nodefaults \
    -machine pc,accel="$accel" "${cpu[@]}" -smp 1 -m 768 -display none \
    -serial "file:$serial" \
    -drive "file=$W/overlay.qcow2,if=none,id=disk0,format=qcow2,discard=unmap" \
    -device virtio-blk-pci,drive=disk0,bootindex=1 \
    -drive "file=$W/seed.iso,if=none,id=cd0,format=raw,media=cdrom,readonly=on" -device ide-cd,drive=cd0 \
    -netdev "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22" \
    -device "virtio-net-pci,netdev=net0,mac=$MAC" \
    -chardev "socket,id=qga0,path=$W/qga.sock,server=on,wait=off" \
    -device virtio-serial-pci,id=vser0 \
    -device virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0 \
    >"$W/qemu.out" 2>&1 &
  QPID=$!
  echo "$QPID" >"$W/qemu.pid"
  wait_for 10 test -S "$W/qga.sock" || { cat "$W/qemu.out" >&2; fail "QEMU did not start"; }

  local deadline=$((SECONDS + agent_secs))
  until "${QGA[@]}" "$W/qga.sock" wait 5 >/dev/null 2>&1; do
    kill -0 "$QPID" 2>/dev/null || { cat "$W/qemu.out" >&2; QPID=""; fail "QEMU exited before the agent answered"; }
    [ $SECONDS -lt $deadline ] || fail "the guest agent did not answer in $agent_secs s (see $serial)"
  done
  local t_agent; t_agent="$(ms_since "$t0")"
  ok "guest agent answers guest-sync ${t_agent} s after QEMU started"

  # cloud-init may still be running its later stages; wait for it inside the guest.
  local ci; ci="$(gexec 900 /usr/bin/cloud-init status --wait --long)" || fail "cloud-init status"
  local t_ci; t_ci="$(ms_since "$t0")"
  [ "$(jget "$ci" o.exitcode)" = 0 ] || fail "cloud-init did not finish cleanly: $(jget "$ci" o.stdout)"
  local detail; detail="$(jget "$ci" 'o.stdout.match(/detail:\s*(.*)/)?.[1]??""')"
  ok "cloud-init done ${t_ci} s after QEMU started ($detail)"

  local os; os="$("${QGA[@]}" "$W/qga.sock" call guest-get-osinfo)"
  [ "$(jget "$os" o.id)" = debian ] && [ "$(jget "$os" 'o["version-id"]')" = 12 ] || fail "unexpected OS: $os"
  ok "guest-get-osinfo: $(jget "$os" 'o["pretty-name"]+", kernel "+o["kernel-release"]')"

  local hn; hn="$("${QGA[@]}" "$W/qga.sock" call guest-get-host-name)"
  [ "$(jget "$hn" 'o["host-name"]')" = "$GUEST_HOSTNAME" ] || fail "hostname is $(jget "$hn" 'o["host-name"]'), want $GUEST_HOSTNAME"
  ok "guest-get-host-name: $GUEST_HOSTNAME"

  local ifs; ifs="$("${QGA[@]}" "$W/qga.sock" call guest-network-get-interfaces)"
  local ip; ip="$(jget "$ifs" "(o.find(i=>i['hardware-address']==='$MAC')?.['ip-addresses']??[]).find(a=>a['ip-address-type']==='ipv4')?.['ip-address']??''")"
  local ifname; ifname="$(jget "$ifs" "o.find(i=>i['hardware-address']==='$MAC')?.name??''")"
  [ -n "$ip" ] || fail "no IPv4 address on the NIC $MAC: $ifs"
  ok "guest-network-get-interfaces: $ifname ($MAC) has $ip"
  local lease; lease="$(must_exec 30 /bin/cat "/var/lib/dhcp/dhclient.$ifname.leases")"
  [[ "$lease" == *"fixed-address $ip;"* ]] || fail "no DHCP lease for $ip in dhclient.$ifname.leases"
  local eni; eni="$(must_exec 30 /bin/cat /etc/network/interfaces.d/50-cloud-init)"
  [[ "$eni" == *"iface $ifname inet dhcp"* ]] || fail "cloud-init did not render DHCP for $ifname in ENI: $eni"
  local rend; rend="$(must_exec 30 /bin/grep -ho "Selected renderer '[a-z]*'" /var/log/cloud-init.log)"
  ok "DHCP lease from QEMU's DHCP server in dhclient.$ifname.leases; cloud-init: ${rend%%$'\n'*}, interfaces.d/50-cloud-init: iface $ifname inet dhcp"

  # Diagnostics only: schema warnings of the seed or the image's own cloud.cfg.d.
  local schema; schema="$(gexec 120 /usr/bin/cloud-init schema --system 2>/dev/null)" || schema='{"exitcode":-1,"stdout":"","stderr":"guest-exec failed"}'
  if [ "$(jget "$schema" o.exitcode)" != 0 ]; then
    warn "cloud-init schema --system: $(jget "$schema" '(o.stdout+o.stderr).trim().replace(/\n+/g," | ")')"
  fi

  local id; id="$(must_exec 30 /usr/bin/id "$USERNAME")"
  [[ "$id" == *"($USERNAME)"*"(sudo)"* ]] || fail "id $USERNAME: $id"
  ok "id $USERNAME: ${id%$'\n'}"
  local keys; keys="$(must_exec 30 /bin/cat "/home/$USERNAME/.ssh/authorized_keys")"
  [[ "$keys" == *"$PUBKEY"* ]] || fail "the SSH key is not in authorized_keys"
  ok "/home/$USERNAME/.ssh/authorized_keys holds the provisioned key"
  local shadow; shadow="$(must_exec 30 /usr/bin/getent shadow "$USERNAME")"
  [ "$(cut -d: -f2 <<<"$shadow")" = "$PWHASH" ] || fail "the password hash in /etc/shadow is not the provisioned one"
  ok "/etc/shadow holds the provisioned password hash"
  local df; df="$(must_exec 30 /bin/df -B1 --output=size /)"
  local rootsize; rootsize="$(tail -n1 <<<"$df" | tr -d ' ')"
  [ "$rootsize" -gt $((3500 * 1024 * 1024)) ] || fail "/ did not grow to the 4 GiB disk ($rootsize bytes)"
  ok "/ grew to $(numfmt --to=iec "$rootsize") on the 4 GiB overlay (growpart + resize2fs)"

  local sshout
  sshout="$(timeout 60 ssh -n -i "$W/id_ed25519" -p "$port" -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=20 "$USERNAME@127.0.0.1" \
    'hostname; sudo -n id -un')" || fail "SSH login with the provisioned key failed"
  [ "$sshout" = "$GUEST_HOSTNAME"$'\n'root ] || fail "unexpected SSH output: $sshout"
  ok "SSH login as $USERNAME with the provisioned key (via 127.0.0.1:$port), sudo works"

  local t_sd=$EPOCHREALTIME
  "${QGA[@]}" "$W/qga.sock" shutdown >/dev/null || fail "guest-shutdown could not be sent"
  local end=$((SECONDS + 90))
  while kill -0 "$QPID" 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "QEMU still runs 90 s after guest-shutdown"
    sleep 0.1
  done
  wait "$QPID" || true
  QPID=""; rm -f "$W/qemu.pid"
  local t_down; t_down="$(ms_since "$t_sd")"
  ok "guest-shutdown: QEMU exited ${t_down} s later"
  printf '%-4s agent %6s s   cloud-init done %6s s   shutdown %5s s\n' "$accel" "$t_agent" "$t_ci" "$t_down" >>"$W/summary"
}

kvm_opens() { [ -c /dev/kvm ] && (exec 8<>/dev/kvm) 2>/dev/null; }

# Each boot runs as a background subshell that the script waits for: set -e stays in force inside it
# (it would not in an `if` or `||` context), and a signal to this script interrupts the wait at once.
: >"$W/summary"
if [ "$ACCEL" != kvm ]; then
  (boot_once tcg) &
  wait $!
fi
if [ "$ACCEL" != tcg ]; then
  kvm_rc=0
  if kvm_opens; then
    (boot_once kvm) &
    wait $! || kvm_rc=$?
  else
    [ "$ACCEL" = kvm ] && die "/dev/kvm does not open here"
    log "/dev/kvm does not open: KVM figure skipped"
  fi
  if [ $kvm_rc != 0 ]; then
    # --accel all: TCG is the proof; a KVM that opens but cannot run the guest is reported, not fatal.
    [ "$ACCEL" = kvm ] && exit 1
    warn "/dev/kvm opens but the guest does not boot under KVM here (serial log: $LOGS/serial-kvm.log); TCG result stands"
    printf 'kvm  did not boot (see %s)\n' "$LOGS/serial-kvm.log" >>"$W/summary"
  fi
fi
log "boot check passed for $IMG"
cat "$W/summary"
