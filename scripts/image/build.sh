#!/usr/bin/env bash
# Builds vmflow's own guest image: a small Debian 12 (bookworm) cloud-style disk that boots on its own
# (MBR + extlinux inside the image, BIOS firmware), with cloud-init (NoCloud), qemu-guest-agent,
# openssh-server, ifupdown/DHCP networking and vmflow's own guest agent (guest-agent/, built first by
# scripts/guest-agent/build.sh; installed as /usr/local/sbin/vmflow-agent with vmflow-agent.service).
# Built offline from the machine's Debian mirror with mmdebstrap; no other download.
#
# Output (cached, keyed by the recipe hash over this script, packages.txt and the agent binary):
#   ${VMFLOW_CACHE:-~/.cache/vmflow}/images/<recipe>/debian-12-vmflow.qcow2  (+ .sha256, manifest.json,
#   packages.lst, build.log)
# A second run with the same recipe prints the path and returns at once. The last line on stdout is
# the image path; everything else goes to stderr.
#
# Usage: scripts/image/build.sh [--force]    (as root; npm run image:build)
# Env:   VMFLOW_CACHE, VMFLOW_DEBIAN_MIRROR (default http://deb.debian.org/debian),
#        VMFLOW_DEBIAN_SECURITY (default http://deb.debian.org/debian-security),
#        VMFLOW_IMAGE_SIZE (virtual size, default 3G; part of the recipe)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/../lib.sh"
need_root

FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

SUITE=bookworm
MIRROR="${VMFLOW_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${VMFLOW_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
VSIZE="${VMFLOW_IMAGE_SIZE:-3G}"
IMAGE_NAME=debian-12-vmflow
PART_START_MIB=1
ROOT_LABEL=vmflow-root

mapfile -t PACKAGES < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$HERE/packages.txt")

# vmflow's guest agent: a static Linux binary from the agent's own cached build. Its build is
# reproducible (-trimpath, no build id), so its sha256 changes exactly when what goes into the Linux
# binary changes (its sources, go.mod/go.sum or the Go version).
AGENT_BIN="$(bash "$HERE/../guest-agent/build.sh")" || die "the guest agent did not build"
AGENT_SHA="$(sha256sum "$AGENT_BIN" | cut -d' ' -f1)"

# The recipe: everything that decides what goes into the image. Mirrors are not part of it (any
# mirror of the same suite gives the same recipe); the package versions a build got are in its
# manifest.
recipe_hash() {
  {
    printf 'suite=%s\nvsize=%s\n' "$SUITE" "$VSIZE"
    sha256sum "$HERE/build.sh" "$HERE/packages.txt" | awk '{print $1}'
    printf 'agent=%s\n' "$AGENT_SHA"
  } | sha256sum | cut -c1-16
}

RECIPE="$(recipe_hash)"
IMAGES="$VMFLOW_CACHE/images"
OUT="$IMAGES/$RECIPE"
QCOW="$OUT/$IMAGE_NAME.qcow2"

already_built() { [ -f "$OUT/manifest.json" ] && [ -f "$QCOW" ] && [ -f "$QCOW.sha256" ]; }

if [ $FORCE = 0 ] && already_built; then
  log "image already built (recipe $RECIPE)"
  printf '%s\n' "$QCOW"
  exit 0
fi

HOST_PACKAGES=(mmdebstrap extlinux syslinux-common fdisk e2fsprogs qemu-utils util-linux)
ensure_host_packages() {
  local missing=() p
  for p in "${HOST_PACKAGES[@]}"; do
    [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == *"install ok installed"* ]] || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages for the image build: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_get update -qq
    apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}
ensure_host_packages

# One build at a time on this machine (it is shared): wait for another build, then look again.
mkdir -p "$IMAGES"
exec 9>"$IMAGES/.build.lock"
if ! flock -n 9; then
  log "another image build is running; waiting for it"
  flock 9
fi
if [ $FORCE = 0 ] && already_built; then
  log "image already built (recipe $RECIPE) by the build we waited for"
  printf '%s\n' "$QCOW"
  exit 0
fi

# Everything happens in a temporary folder beside the output (same file system, so the final move is
# atomic). The trap undoes mounts and loop devices and removes the folder on any exit.
TMP="$(mktemp -d "$IMAGES/.build-$RECIPE.XXXXXX")"
MNT="$TMP/mnt"
LOOP=""
CHILD=""
# Long steps run as a background child in a process group of its own that the script waits for: a
# signal to this script then interrupts the wait at once (bash defers traps while a foreground child
# runs), and the trap ends the whole group (mmdebstrap does not stop its apt/dpkg children when only
# it is signalled).
run() {
  setsid "$@" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  return $rc
}
cleanup() {
  local rc=$?
  set +e
  if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
    kill -TERM -- "-$CHILD" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$CHILD" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$CHILD" 2>/dev/null
    wait "$CHILD" 2>/dev/null
  fi
  if mountpoint -q "$MNT" 2>/dev/null; then umount "$MNT" || umount -l "$MNT"; fi
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
  # An interrupted mmdebstrap may leave /proc, /sys or /dev mounted in the root tree.
  local m
  while read -r m; do umount -l "$m" 2>/dev/null; done < <(findmnt -rn -o TARGET | grep -F "$TMP/" | sort -r)
  rm -rf --one-file-system "$TMP"
  [ $rc = 0 ] || warn "image build failed (exit $rc); nothing was left in $IMAGES"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t0=$SECONDS
ROOT="$TMP/rootfs"
BUILD_LOG="$TMP/build.log"
log "building $IMAGE_NAME (recipe $RECIPE) from $MIRROR $SUITE; log: $BUILD_LOG"

# 1. The root file system. Docs, man pages and translations are kept out by dpkg path filters that
#    stay in the image, so later apt installs in a guest stay small too.
include="$(IFS=,; echo "${PACKAGES[*]}")"
run mmdebstrap --variant=minbase --mode=root --include="$include" \
  --aptopt='Acquire::Languages "none"' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  "$SUITE" "$ROOT" \
  "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY $SUITE-security main" \
  >"$BUILD_LOG" 2>&1 || { tail -n 40 "$BUILD_LOG" >&2; die "mmdebstrap failed (log above)"; }
log "root file system ready after $((SECONDS - t0)) s ($(du -sh --apparent-size "$ROOT" | cut -f1))"

# 2. Configure it like a cloud image.
ROOT_UUID="$(cat /proc/sys/kernel/random/uuid)"
kernel_release="$(basename "$(readlink "$ROOT/vmlinuz" || true)")"; kernel_release="${kernel_release#vmlinuz-}"
[ -n "$kernel_release" ] && [ -f "$ROOT/boot/vmlinuz-$kernel_release" ] || die "no kernel found in the root file system"
[ -f "$ROOT/boot/initrd.img-$kernel_release" ] || die "no initramfs for $kernel_release"

printf 'UUID=%s / ext4 rw,discard,errors=remount-ro 0 1\n' "$ROOT_UUID" >"$ROOT/etc/fstab"
printf 'debian\n' >"$ROOT/etc/hostname"
cat >"$ROOT/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	debian
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
# dhclient writes it on lease; until then, empty (the build host's must not leak in).
rm -f "$ROOT/etc/resolv.conf"; : >"$ROOT/etc/resolv.conf"

# ifupdown: loopback here; cloud-init's ENI renderer writes the NICs to interfaces.d/50-cloud-init.
cat >"$ROOT/etc/network/interfaces" <<'EOF'
# Loopback only. cloud-init renders the NICs from the NoCloud network-config (or its DHCP fallback)
# into /etc/network/interfaces.d/50-cloud-init.
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback
EOF

# cloud-init: look only for a NoCloud seed (the cidata CD-ROM), never for network metadata services;
# keep the first boot short.
cat >"$ROOT/etc/cloud/cloud.cfg.d/01_vmflow.cfg" <<'EOF'
# vmflow guest image: seeds come from a NoCloud ISO (label cidata); None lets a boot without a seed
# finish instead of probing network metadata services.
datasource_list: [ NoCloud, None ]
# Debian's default would run locale-gen for en_US.UTF-8 on first boot (slow, needs the locales data);
# the image runs in C.UTF-8.
locale: false
# /etc/hosts follows the provisioned hostname (else sudo cannot resolve it).
manage_etc_hosts: true
# No DSA host key (OpenSSH 9 does not use it); each key costs seconds under TCG.
ssh_genkeytypes: [ed25519, ecdsa, rsa]
EOF

# Services that wait on or work for nothing on a fresh VM. (systemd-networkd is not installed; mask
# its wait-online anyway, so a later install cannot slow boots.)
for unit in apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer \
  systemd-networkd-wait-online.service; do
  ln -sfn /dev/null "$ROOT/etc/systemd/system/$unit"
done
# The guest agent has no [Install] section in Debian: udev starts it when its virtio port appears.
[ -f "$ROOT/lib/udev/rules.d/60-qemu-guest-agent.rules" ] || warn "qemu-guest-agent udev rule missing"

# vmflow's guest agent. udev tags its virtio port for systemd, which makes the port's device unit
# (dev-virtio\x2dports-org.vmflow.agent.0.device) exist; the service is wanted by that unit (enabled
# below, and udev's SYSTEMD_WANTS for good measure) and bound to it, so it starts when the port
# appears and stops when it is unplugged. A guest without the channel never starts it.
install -D -m 0755 "$AGENT_BIN" "$ROOT/usr/local/sbin/vmflow-agent"
cat >"$ROOT/etc/udev/rules.d/61-vmflow-agent.rules" <<'EOF'
# vmflow guest agent: start it when its virtio-serial port appears.
SUBSYSTEM=="virtio-ports", ATTR{name}=="org.vmflow.agent.0", TAG+="systemd", ENV{SYSTEMD_WANTS}+="vmflow-agent.service"
EOF
AGENT_DEVICE_UNIT='dev-virtio\x2dports-org.vmflow.agent.0.device'
cat >"$ROOT/etc/systemd/system/vmflow-agent.service" <<EOF
[Unit]
Description=vmflow guest agent (virtio-serial port org.vmflow.agent.0)
BindsTo=$AGENT_DEVICE_UNIT
After=$AGENT_DEVICE_UNIT
ConditionPathExists=/dev/virtio-ports/org.vmflow.agent.0

[Service]
ExecStart=/usr/local/sbin/vmflow-agent -log
Restart=always
RestartSec=2

[Install]
WantedBy=$AGENT_DEVICE_UNIT
EOF
mkdir -p "$ROOT/etc/systemd/system/$AGENT_DEVICE_UNIT.wants"
ln -sfn /etc/systemd/system/vmflow-agent.service "$ROOT/etc/systemd/system/$AGENT_DEVICE_UNIT.wants/vmflow-agent.service"

# Per-VM identity must not be baked in: fresh machine-id and SSH host keys on each first boot
# (cloud-init regenerates the host keys).
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id" "$ROOT"/etc/ssh/ssh_host_*
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
  "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/* "$ROOT"/tmp/* "$ROOT"/var/tmp/*

# The bootloader's configuration: /vmlinuz and /initrd.img are the symlinks Debian keeps pointing at
# the newest kernel, so a kernel upgrade in the guest keeps booting.
mkdir -p "$ROOT/boot/extlinux"
cat >"$ROOT/boot/extlinux/extlinux.conf" <<EOF
SERIAL 0 115200
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=UUID=$ROOT_UUID ro console=tty0 console=ttyS0,115200n8 net.ifnames=0
EOF

# Facts for the manifest, read from the image's own dpkg database.
ver() { dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='${Version}' "$1"; }
dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='${Package}\t${Version}\t${Architecture}\n' >"$TMP/packages.lst"
KERNEL_VER="$(ver "linux-image-$kernel_release")"
CLOUDINIT_VER="$(ver cloud-init)"
QGA_VER="$(ver qemu-guest-agent)"
OPENSSH_VER="$(ver openssh-server)"
SYSTEMD_VER="$(ver systemd)"
PKG_COUNT="$(wc -l <"$TMP/packages.lst")"

# 3. The disk: MBR, one bootable ext4 partition from 1 MiB to the end, filled from the root tree
#    without mounting (mke2fs -d). extlinux reads ext4, but not the 64bit feature: keep it off (it only
#    matters above 16 TiB).
RAW="$TMP/disk.raw"
truncate -s "$VSIZE" "$RAW"
printf 'label: dos\nstart=%dMiB, type=83, bootable\n' "$PART_START_MIB" | sfdisk --quiet "$RAW"
disk_bytes="$(stat -c %s "$RAW")"
part_bytes=$((disk_bytes - PART_START_MIB * 1024 * 1024))
run mkfs.ext4 -q -F -L "$ROOT_LABEL" -U "$ROOT_UUID" -O ^64bit -E "offset=$((PART_START_MIB * 1024 * 1024))" \
  -d "$ROOT" "$RAW" "$((part_bytes / 1024))k" >>"$BUILD_LOG" 2>&1 ||
  { tail -n 20 "$BUILD_LOG" >&2; die "mkfs.ext4 failed"; }

# 4. The bootloader inside the image: extlinux's boot record into the partition, syslinux's MBR code
#    into the first 440 bytes (it boots the partition flagged bootable).
LOOP="$(losetup --find --show --offset "$((PART_START_MIB * 1024 * 1024))" --sizelimit "$part_bytes" "$RAW")"
e2fsck -fn "$LOOP" >>"$BUILD_LOG" 2>&1 || { tail -n 20 "$BUILD_LOG" >&2; die "the new file system does not check clean"; }
mkdir -p "$MNT"
mount "$LOOP" "$MNT"
extlinux --install "$MNT/boot/extlinux" >>"$BUILD_LOG" 2>&1 || { tail -n 20 "$BUILD_LOG" >&2; die "extlinux --install failed"; }
umount "$MNT"
losetup -d "$LOOP"; LOOP=""
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$RAW" bs=440 count=1 conv=notrunc status=none

# 5. Compressed qcow2, checksum, manifest; then move the finished folder into place in one rename.
STAGE="$TMP/out"
mkdir -p "$STAGE"
run qemu-img convert -q -c -f raw -O qcow2 -o compat=1.1 "$RAW" "$STAGE/$IMAGE_NAME.qcow2"
rm -f "$RAW"
SHA="$(sha256sum "$STAGE/$IMAGE_NAME.qcow2" | cut -d' ' -f1)"
printf '%s  %s\n' "$SHA" "$IMAGE_NAME.qcow2" >"$STAGE/$IMAGE_NAME.qcow2.sha256"
SIZE="$(stat -c %s "$STAGE/$IMAGE_NAME.qcow2")"
cat >"$STAGE/manifest.json" <<EOF
{
  "name": "$IMAGE_NAME",
  "recipe": "$RECIPE",
  "osFamily": "linux",
  "distribution": "debian",
  "release": "12",
  "suite": "$SUITE",
  "format": "qcow2",
  "firmware": "bios",
  "bootloader": "extlinux",
  "provisioning": "cloud-init",
  "file": "$IMAGE_NAME.qcow2",
  "size": $SIZE,
  "virtualSize": $disk_bytes,
  "sha256": "$SHA",
  "rootUuid": "$ROOT_UUID",
  "kernelCmdline": "root=UUID=$ROOT_UUID ro console=tty0 console=ttyS0,115200n8 net.ifnames=0",
  "guestAgentChannel": "org.qemu.guest_agent.0",
  "vmflowAgent": { "path": "/usr/local/sbin/vmflow-agent", "channel": "org.vmflow.agent.0", "sha256": "$AGENT_SHA" },
  "packages": {
    "kernel": "linux-image-$kernel_release $KERNEL_VER",
    "cloud-init": "$CLOUDINIT_VER",
    "qemu-guest-agent": "$QGA_VER",
    "openssh-server": "$OPENSSH_VER",
    "systemd": "$SYSTEMD_VER",
    "count": $PKG_COUNT
  },
  "mirror": "$MIRROR",
  "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "buildSeconds": $((SECONDS - t0))
}
EOF
mv "$TMP/packages.lst" "$STAGE/"
cp "$BUILD_LOG" "$STAGE/build.log"

if [ -e "$OUT" ]; then
  # --force, or a half-made folder from an older script: replace it (the old one goes aside first so
  # the new one appears in one rename).
  mv "$OUT" "$TMP/old"
fi
mv "$STAGE" "$OUT"
log "built $IMAGE_NAME in $((SECONDS - t0)) s: $(numfmt --to=iec "$SIZE") qcow2, virtual $(numfmt --to=iec "$disk_bytes"), kernel $kernel_release, cloud-init $CLOUDINIT_VER"
printf '%s\n' "$QCOW"
