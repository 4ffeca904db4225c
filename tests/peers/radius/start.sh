#!/bin/bash
# tests/peers/radius/start.sh NAME PORT
# Starts FreeRADIUS instance NAME with authentication on UDP 127.0.0.1:PORT (accounting on PORT+1), or finds
# it already running, and prints, on stdout and nothing else there:
#   GH_RADIUS_ADDR=127.0.0.1:PORT
#   GH_RADIUS_SECRET=radsecret       (the shared secret of client 127.0.0.1)
#   GH_RADIUS_LOG=<run dir>/radius.log
# Users: see users in this folder (README.md has the table). Progress and errors go to stderr. Exit status
# 0 only when the server answers a Status-Server.
#
# Safe to run again and from several processes at once: a flock on $GH_PEERS_RUN/radius/NAME.lock
# serialises the callers of one instance, and an instance that is up and answering is left alone. An
# instance that runs on another port than PORT is an error (stop.sh NAME first).
# State in $GH_PEERS_RUN/radius/NAME (default /tmp/gatehouse-peers/radius/NAME): raddb/radiusd.conf (as
# rendered), radiusd.pid, radius.log, stdout.log, port.
# RADIUS_DEBUG=1 runs the server with -X (a full trace of every request in radius.log; much slower).
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/common.sh"

if [ $# != 2 ]; then echo "usage: $0 NAME PORT" >&2; exit 2; fi
set_instance "$1"
check_port "$2"
PORT=$2

exec 3>&1 1>&2   # fd 3 = the caller's stdout, for the env lines only

need_tools
take_lock

if pid=$(server_pid); then
  running=$(cat "$PORTFILE" 2>/dev/null || true)
  if [ "$running" != "$PORT" ]; then
    echo "radius: instance $NAME already runs on port ${running:-?}, not $PORT; stop.sh $NAME first" >&2
    exit 1
  fi
  for _ in $(seq 1 30); do
    if answers "$PORT"; then print_env "$PORT" >&3; exit 0; fi
    sleep 0.1
  done
  echo "radius: freeradius $pid of $NAME is running but does not answer on port $PORT; restarting it" >&2
  kill_server "$pid"
fi
rm -f "$PIDFILE"
for p in "$PORT" "$((PORT + 1))"; do
  if port_taken "$p"; then
    echo "radius: UDP 127.0.0.1:$p is already in use by another process (not instance $NAME); pick another port" >&2
    exit 1
  fi
done

mkdir -p "$RUN/raddb"
# render TEMPLATE OUT NAME=VALUE...: replaces @NAME@; fails on a leftover placeholder
render() {
  local src=$1 out=$2 kv args=()
  shift 2
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$src" > "$out.tmp"
  if grep -n '@[A-Z][A-Z0-9_]*@' "$out.tmp" >&2; then
    echo "radius: placeholder left in $out (from $src)" >&2; rm -f "$out.tmp"; exit 1
  fi
  mv -f "$out.tmp" "$out"
}
render "$RADIUS_HOME/radiusd.conf.in" "$RUN/raddb/radiusd.conf" \
  "RUN=$RUN" "USERS=$RADIUS_HOME/users" "PORT=$PORT" "ACCT_PORT=$((PORT + 1))" "SECRET=$SECRET"
echo "$PORT" > "$PORTFILE"

freeradius -C -d "$RUN/raddb" >"$RUN/check.log" 2>&1 \
  || { echo "radius: the rendered configuration does not pass freeradius -C:" >&2; tail -n 15 "$RUN/check.log" >&2; exit 1; }

# In its own session (a caller's Ctrl-C or process-group kill does not reach it), in the foreground as far
# as freeradius is concerned (-f), with every inherited descriptor above 2 closed (fd 3 is the caller's
# stdout, fd 9 the lock).
if [ "${RADIUS_DEBUG:-0}" = 1 ]; then args=(-X); else args=(-f -l "$LOG"); fi
echo "=== $(date '+%F %T') start.sh: starting freeradius $NAME on 127.0.0.1:$PORT" >> "$RUN/stdout.log"
(
  for fd in /proc/self/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
  done
  exec setsid freeradius -d "$RUN/raddb" "${args[@]}"
) </dev/null >>"$RUN/stdout.log" 2>&1 &
spawned=$!
echo "$spawned" > "$PIDFILE"

up=0
for _ in $(seq 1 100); do
  if answers "$PORT"; then up=1; break; fi
  kill -0 "$spawned" 2>/dev/null || break
  sleep 0.1
done
if [ "$up" != 1 ]; then
  echo "radius: freeradius $NAME did not come up on port $PORT; last lines:" >&2
  tail -n 15 "$RUN/stdout.log" "$LOG" >&2 2>/dev/null || true
  kill_server "$spawned"
  rm -f "$PIDFILE"
  exit 1
fi
echo "radius: freeradius $spawned ($NAME) up on 127.0.0.1:$PORT (log $LOG)" >&2
print_env "$PORT" >&3
