#!/bin/bash
# tests/peers/oidc/rotate.sh NAME
# Replaces instance NAME's signing keys with new ones (new kids; the old keys are gone, from the JWKS too)
# and restarts it on the port it had, with the scheme it had (http, or https with the same certificate as
# before: start.sh --tls). Prints the new kids on stdout, one a line: RS256 first, then ES256.
# The instance must have been started once (start.sh NAME PORT); it runs afterwards even if it was stopped.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/common.sh"

if [ $# != 1 ]; then echo "usage: $0 NAME" >&2; exit 2; fi
set_instance "$1"
exec 3>&1 1>&2   # fd 3 = the caller's stdout, for the kids only

need_node
take_lock

PORT=$(cat "$PORTFILE" 2>/dev/null || true)
[ -n "$PORT" ] || { echo "oidc: instance $NAME was never started (start.sh $NAME PORT)" >&2; exit 1; }
check_port "$PORT"

old=$(node "$OIDC_HOME/keys.mjs" kids "$KEYS" 2>/dev/null || true)
if pid=$(server_pid); then kill_server "$pid"; fi
rm -f "$PIDFILE"
new=$(node "$OIDC_HOME/keys.mjs" new "$KEYS") || { echo "oidc: making new keys for $NAME failed" >&2; exit 1; }
while read -r k; do
  if [ -n "$k" ] && grep -qxF -- "$k" <<< "$old"; then echo "oidc: new kid $k equals an old one?!" >&2; exit 1; fi
done <<< "$new"
echo "=== $(date '+%F %T') rotate.sh: new keys:" $new >> "$LOG"

launch "$PORT"
echo "oidc: instance $NAME restarted on $(issuer_of "$PORT") with new keys (old kids:" $old")" >&2
printf '%s\n' "$new" >&3
