#!/bin/bash
# stop.sh [--wipe]: stops the shared IdP (the process group start.sh's setsid made); --wipe also deletes
# its state (rendered config, registered SPs, sessions, logs, the IdP key and certificate).
set -euo pipefail
. "$(dirname "$0")/common.sh"
take_lock
if [ -f "$PIDFILE" ]; then
  p=$(cat "$PIDFILE")
  kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  rm -f "$PIDFILE"
fi
if [ "${1:-}" = --wipe ]; then rm -rf "$RUN"; fi
echo stopped
