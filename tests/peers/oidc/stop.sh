#!/bin/bash
# tests/peers/oidc/stop.sh NAME [--wipe]     stops instance NAME (its issuer then refuses connections);
#                                            --wipe also deletes its run dir (keys, log)
# tests/peers/oidc/stop.sh --all [--wipe]    the same for every instance in $GH_PEERS_RUN/oidc
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/common.sh"

usage() { echo "usage: $0 NAME [--wipe] | $0 --all [--wipe]" >&2; exit 2; }
target= wipe=0
for a in "$@"; do
  case $a in
    --wipe) wipe=1 ;;
    --all|[!-]*) [ -z "$target" ] || usage; target=$a ;;
    *) usage ;;
  esac
done
[ -n "$target" ] || usage

# stop_one NAME (in a subshell: it takes that instance's lock and keeps it until the subshell ends)
stop_one() (
  set_instance "$1"
  take_lock
  if pid=$(server_pid); then
    kill_server "$pid"
    echo "oidc: stopped instance $NAME (pid $pid)" >&2
  else
    echo "oidc: instance $NAME was not running" >&2
  fi
  rm -f "$PIDFILE"
  if [ "$wipe" = 1 ] && [ -d "$RUN" ]; then
    case $RUN in
      /?*/oidc/?*) rm -rf "$RUN"; echo "oidc: deleted $RUN" >&2 ;;
      *) echo "oidc: refusing to delete odd run dir '$RUN'" >&2; exit 1 ;;
    esac
  fi
)

if [ "$target" = --all ]; then
  for d in "$OIDC_RUN"/*/; do
    [ -d "$d" ] || continue
    d=${d%/}
    stop_one "${d##*/}"
  done
else
  stop_one "$target"
fi
