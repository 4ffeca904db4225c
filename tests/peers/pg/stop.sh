#!/bin/bash
# stop.sh [PORT] [--wipe]: fast shutdown of the cluster on PORT (default 19430); --wipe also deletes its
# state, so the next start makes a new cluster.
set -uo pipefail
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
take_lock
cd "$RUN" 2>/dev/null || cd /
if running; then "${AS[@]}" "$BIN/pg_ctl" -D "$RUN/data" -m fast -w stop >/dev/null; fi
for a in "$@"; do [ "$a" = --wipe ] && rm -rf "$RUN"; done
echo "pg: stopped (port $PORT)" >&2
