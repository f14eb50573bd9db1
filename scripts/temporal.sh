#!/usr/bin/env bash
# Runs the Temporal dev server (pinned CLI v1.5.1) in the foreground, with its Web UI.
# Settings: TEMPORAL_PORT (7233), TEMPORAL_UI_PORT (8233), TEMPORAL_DB (.vmflow/temporal.db).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cli="$VMFLOW_ROOT/.tools/temporal"
[ -x "$cli" ] || die "Temporal CLI missing: run scripts/setup.sh"
mkdir -p "$VMFLOW_STATE"
args=(server start-dev --ip 127.0.0.1 --port "${TEMPORAL_PORT:-7233}" --namespace default
  --db-filename "${TEMPORAL_DB:-$VMFLOW_STATE/temporal.db}" --log-level warn
  # The dev server's SQLite file in WAL mode, synced at checkpoints: no fsync per workflow task. A
  # process crash loses nothing; a power cut may lose the last moments (development only).
  --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal
  # Hand workflow and activity tasks to matching at once: by default the history service reads its
  # transfer queue at most 20 times a second, so every task waited up to 50 ms (docs/performance.md).
  --dynamic-config-value history.transferProcessorMaxPollRPS=1000
  --search-attribute MachineId=Keyword --search-attribute OperationType=Keyword)
if [ "${TEMPORAL_HEADLESS:-0}" = 1 ]; then args+=(--headless); else args+=(--ui-port "${TEMPORAL_UI_PORT:-8233}"); fi
exec "$cli" "${args[@]}"
