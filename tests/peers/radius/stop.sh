#!/bin/bash
# tests/peers/radius/stop.sh NAME [--wipe]    stops FreeRADIUS instance NAME; --wipe also deletes its run dir
# tests/peers/radius/stop.sh --all [--wipe]   the same for every instance in $GH_PEERS_RUN/radius
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

stop_one() (
  set_instance "$1"
  take_lock
  if pid=$(server_pid); then
    kill_server "$pid"
    echo "radius: stopped freeradius of $NAME (pid $pid)" >&2
  else
    echo "radius: freeradius of $NAME was not running" >&2
  fi
  rm -f "$PIDFILE"
  if [ "$wipe" = 1 ] && [ -d "$RUN" ]; then
    case $RUN in
      /?*/radius/?*) rm -rf "$RUN"; echo "radius: deleted $RUN" >&2 ;;
      *) echo "radius: refusing to delete odd run dir '$RUN'" >&2; exit 1 ;;
    esac
  fi
)

if [ "$target" = --all ]; then
  for d in "$RADIUS_RUN"/*/; do
    [ -d "$d" ] || continue
    d=${d%/}
    stop_one "${d##*/}"
  done
else
  stop_one "$target"
fi
