#!/usr/bin/env bash
# Brings the whole system up on this machine: set-up (installs what is missing), then the Temporal dev
# server with its Web UI, a worker and the API, each as a background process with its log in
# .vmflow/logs. Prints the URLs. `scripts/up.sh stop` stops them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$VMFLOW_ROOT"
run="$VMFLOW_STATE/run"; logs="$VMFLOW_STATE/logs"
mkdir -p "$run" "$logs"

running() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }
stop_all() {
  for p in api worker temporal; do
    if running "$p"; then log "stopping $p"; kill -- -"$(cat "$run/$p.pid")" 2>/dev/null || kill "$(cat "$run/$p.pid")"; fi
    rm -f "$run/$p.pid"
  done
}
start() { # name, command...
  local name=$1; shift
  if running "$name"; then log "$name already running (pid $(cat "$run/$name.pid"))"; return; fi
  setsid "$@" >"$logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$run/$name.pid"
}
healthy() { curl -fsS "$1" >/dev/null 2>&1; }

if [ "${1:-}" = stop ]; then stop_all; exit 0; fi

bash scripts/setup.sh
export TEMPORAL_ADDRESS="127.0.0.1:${TEMPORAL_PORT:-7233}" PORT="${PORT:-3000}"
start temporal bash scripts/temporal.sh
wait_for 60 healthy "http://127.0.0.1:${TEMPORAL_UI_PORT:-8233}" || die "Temporal did not come up: see $logs/temporal.log"
start worker npx --no-install tsx src/worker/main.ts
start api npx --no-install tsx src/api/main.ts
wait_for 60 healthy "http://127.0.0.1:$PORT/healthz" || die "API did not come up: see $logs/api.log"
wait_for 60 grep -q 'worker ready' "$logs/worker.log" || die "worker did not come up: see $logs/worker.log"
grep -h WARNING "$logs/api.log" "$logs/worker.log" | sort -u >&2 || true
# The project's guest image (built by set-up) as an image and a template a newcomer can create VMs from.
guest="$(bash scripts/image/build.sh)"
node scripts/register-guest-image.mjs "$guest" || die "could not register the guest image (see $logs/api.log)"

cat <<MSG

vmflow is up.
  Temporal Web UI   http://127.0.0.1:${TEMPORAL_UI_PORT:-8233}
  Temporal gRPC     $TEMPORAL_ADDRESS
  API               http://127.0.0.1:$PORT   (health: /healthz)
  Logs              $logs/{temporal,worker,api}.log
  Stop              bash scripts/up.sh stop
  A VM that boots   template debian-12-small (the project's Debian 12 image): POST /api/machines with
                    its templateId, a departmentId, "start": true, "username", "password" and/or
                    "sshKeys" (docs/guests.md)
MSG
if [ -z "${ADMIN_EMAIL:-}" ] || [ -z "${ADMIN_PASSWORD:-}" ]; then
  # The same development-only defaults as src/config.ts (DEV_ADMIN); never used with NODE_ENV=production.
  cat <<MSG
  Admin (DEVELOPMENT ONLY: set ADMIN_EMAIL/ADMIN_PASSWORD for anything else)
                    admin@vmflow.local / vmflow-dev-admin-password
  Log in            curl -s http://127.0.0.1:$PORT/api/auth/login -H 'content-type: application/json' \\
                      -d '{"email":"admin@vmflow.local","password":"vmflow-dev-admin-password"}'
MSG
fi
