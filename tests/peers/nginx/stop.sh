#!/bin/bash
# tests/peers/nginx/stop.sh NAME [--wipe]     stops instance NAME: nginx (master and workers; its port then
#                                             refuses connections) and its app; --wipe also deletes its
#                                             run dir (config, logs)
# tests/peers/nginx/stop.sh --all [--wipe]    the same for every instance in $GH_PEERS_RUN/nginx
# Never touches gatehoused or whatever listens on the auth socket.
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
  if pid=$(nginx_pid); then
    kill_nginx "$pid"
    echo "nginx: stopped nginx of $NAME (master pid $pid)" >&2
  else
    echo "nginx: nginx of $NAME was not running" >&2
  fi
  rm -f "$NGINX_PIDFILE"
  if pid=$(app_pid); then
    kill_pid "$pid" app
    echo "nginx: stopped the app of $NAME (pid $pid)" >&2
  fi
  rm -f "$APP_PIDFILE" "$APP_SOCK"
  if [ "$wipe" = 1 ] && [ -d "$RUN" ]; then
    case $RUN in
      /?*/nginx/?*) rm -rf "$RUN"; echo "nginx: deleted $RUN" >&2 ;;
      *) echo "nginx: refusing to delete odd run dir '$RUN'" >&2; exit 1 ;;
    esac
  fi
)

if [ "$target" = --all ]; then
  for d in "$NGINX_RUN"/*/; do
    [ -d "$d" ] || continue
    d=${d%/}
    stop_one "${d##*/}"
  done
else
  stop_one "$target"
fi
