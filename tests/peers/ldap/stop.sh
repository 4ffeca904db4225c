#!/bin/bash
# Stops gatehouse's LDAP test server.  stop.sh --wipe  also deletes its run dir ($GH_PEERS_RUN/ldap:
# database, certificates, config, logs), so the next start.sh begins from scratch.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/common.sh"

wipe=0
case ${1:-} in
  --wipe) wipe=1 ;;
  '') ;;
  *) echo "usage: $0 [--wipe]" >&2; exit 2 ;;
esac

take_lock

if pid=$(slapd_pid); then
  kill_slapd "$pid"
  echo "ldap: stopped slapd $pid" >&2
else
  echo "ldap: slapd was not running" >&2
fi
rm -f "$PIDFILE"

if [ "$wipe" = 1 ]; then
  case $RUN in
    /?*/ldap) rm -rf "$RUN"; echo "ldap: deleted $RUN" >&2 ;;
    *) echo "ldap: refusing to delete odd run dir '$RUN'" >&2; exit 1 ;;
  esac
fi
