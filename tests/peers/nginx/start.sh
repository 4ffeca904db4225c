#!/bin/bash
# tests/peers/nginx/start.sh NAME PORT AUTH_SOCKET
# Starts nginx instance NAME on 127.0.0.1:PORT (or finds it already running) and prints, on stdout and
# nothing else there:
#   GH_NGINX_URL=http://127.0.0.1:PORT
# Every path but /healthz is protected by auth_request to http://unix:AUTH_SOCKET:/v1/check (gatehoused);
# allowed requests are proxied to app.py, which echoes the URI and the X-Gatehouse-User/-Scopes headers
# that nginx copied from gatehoused's answer. AUTH_SOCKET need not exist yet: nginx connects per request
# (and answers 500 while nothing listens there).
# Progress and errors go to stderr. Exit status 0 only when nginx and the app answer.
#
# Safe to run again and from several processes at once: a flock on $GH_PEERS_RUN/nginx/NAME.lock
# serialises the callers of one instance, and an instance that is up and answering is left alone. Called
# with another AUTH_SOCKET than the running instance has, it rewrites the config and reloads nginx (same
# master, same port). An instance that runs on another port than PORT is an error (stop.sh NAME first).
# State in $GH_PEERS_RUN/nginx/NAME (default /tmp/gatehouse-peers/nginx/NAME): nginx.conf, nginx.pid,
# error.log, access.log, nginx.out (nginx's own stdout/stderr), app.sock, app.pid, app.log, port,
# auth_socket, tmp/.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/common.sh"

if [ $# != 3 ]; then echo "usage: $0 NAME PORT AUTH_SOCKET" >&2; exit 2; fi
set_instance "$1"
check_port "$2"
check_auth_socket "$3"
PORT=$2
AUTH=$3
URL=http://127.0.0.1:$PORT

exec 3>&1 1>&2   # fd 3 = the caller's stdout, for the env line only

need_tools
take_lock

# --- refuse early (before starting anything) when PORT cannot be ours
pid=$(nginx_pid) || pid=
if [ -n "$pid" ]; then
  running=$(cat "$PORTFILE" 2>/dev/null || true)
  if [ "$running" != "$PORT" ]; then
    echo "nginx: instance $NAME already runs on port ${running:-?}, not $PORT; stop.sh $NAME first" >&2
    exit 1
  fi
elif port_taken "$PORT"; then
  echo "nginx: 127.0.0.1:$PORT is already in use by another process (not instance $NAME); pick another port" >&2
  exit 1
fi

mkdir -p "$RUN/tmp"
chmod 755 "$RUN"

# --- the app
app_up=0
if app_pid >/dev/null; then
  for _ in $(seq 1 20); do
    if app_answers; then app_up=1; break; fi
    sleep 0.05
  done
  if [ "$app_up" != 1 ]; then
    echo "nginx: app of $NAME (pid $(app_pid)) does not answer on $APP_SOCK; restarting it" >&2
    kill_pid "$(app_pid)" app
  fi
fi
if [ "$app_up" != 1 ]; then
  rm -f "$APP_PIDFILE"
  echo "=== $(date '+%F %T') start.sh: starting the app on $APP_SOCK" >> "$RUN/app.log"
  spawn "$RUN/app.log" python3 "$NGINX_HOME/app.py" --socket "$APP_SOCK" --pidfile "$APP_PIDFILE"
  for _ in $(seq 1 200); do
    if app_pid >/dev/null && app_answers; then app_up=1; break; fi
    kill -0 "$SPAWNED" 2>/dev/null || break
    sleep 0.05
  done
  if [ "$app_up" != 1 ]; then
    echo "nginx: the app of $NAME did not come up on $APP_SOCK; last lines of $RUN/app.log:" >&2
    tail -n 15 "$RUN/app.log" >&2
    kill_pid "$SPAWNED" app
    rm -f "$APP_PIDFILE"
    exit 1
  fi
  echo "nginx: app of $NAME up on $APP_SOCK, pid $(app_pid)" >&2
fi

# --- nginx
if [ "$(id -u)" = 0 ]; then
  USER_LINE='user root;   # see above: workers as root, for the tests only'
else
  USER_LINE='# (not started as root: the workers run as the calling user)'
fi
write_conf() {
  render "$NGINX_HOME/nginx.conf.in" "$CONF.new" \
    "NAME=$NAME" "PORT=$PORT" "AUTH_SOCKET=$AUTH" "RUN=$RUN" "USER_LINE=$USER_LINE"
  if ! nginx -t -q -e "$RUN/error.log" -p "$RUN/" -c "$CONF.new" > "$RUN/nginx-t.log" 2>&1; then
    echo "nginx: the rendered config $CONF.new fails nginx -t:" >&2
    cat "$RUN/nginx-t.log" >&2
    exit 1
  fi
  mv -f "$CONF.new" "$CONF"
  echo "$PORT" > "$PORTFILE"
  echo "$AUTH" > "$AUTHFILE"
}
# wait_answers SECONDS [PID]: until nginx answers on PORT with the config for AUTH (PID: give up when it dies)
wait_answers() {
  local i
  for i in $(seq 1 $(($1 * 20))); do
    nginx_answers "$PORT" "$AUTH" && return 0
    if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then return 1; fi
    sleep 0.05
  done
  return 1
}

# workers PID: the master's worker processes (everything else in its session)
workers() {
  local q
  SID_WANTED=$1
  for q in $(session_pids); do [ "$q" = "$1" ] || echo "$q"; done
}

if [ -n "$pid" ] && nginx_pid >/dev/null; then
  if [ "$(cat "$AUTHFILE" 2>/dev/null || true)" = "$AUTH" ] && wait_answers 2 "$pid"; then
    echo "GH_NGINX_URL=$URL" >&3
    exit 0
  fi
  if [ "$(cat "$AUTHFILE" 2>/dev/null || true)" != "$AUTH" ]; then
    echo "nginx: instance $NAME: auth socket now $AUTH (was $(cat "$AUTHFILE" 2>/dev/null || echo '?')); reloading" >&2
  else
    echo "nginx: instance $NAME (pid $pid) does not answer as expected on $URL; reloading it" >&2
  fi
  write_conf
  echo "=== $(date '+%F %T') start.sh: reload for auth socket $AUTH" >> "$RUN/error.log"
  old_workers=$(workers "$pid")
  kill -HUP "$pid"
  # The old workers keep accepting on the shared listening socket until they shut down, so only once
  # they are all gone does every new connection get the new config.
  gone=0
  for _ in $(seq 1 200); do
    gone=1
    for w in $old_workers; do
      if kill -0 "$w" 2>/dev/null && ! is_zombie "$w"; then gone=0; fi
    done
    [ "$gone" = 1 ] && break
    sleep 0.05
  done
  if [ "$gone" = 1 ] && wait_answers 10 "$pid"; then
    echo "nginx: instance $NAME reloaded, pid $pid on $URL, auth unix:$AUTH" >&2
    echo "GH_NGINX_URL=$URL" >&3
    exit 0
  fi
  echo "nginx: instance $NAME did not pick up the new config; restarting it" >&2
  kill_nginx "$pid"
fi
rm -f "$NGINX_PIDFILE"

if port_taken "$PORT"; then
  echo "nginx: 127.0.0.1:$PORT is already in use by another process (not instance $NAME); pick another port" >&2
  exit 1
fi
write_conf
echo "=== $(date '+%F %T') start.sh: starting nginx $NAME on $URL, auth unix:$AUTH" >> "$RUN/nginx.out"
spawn "$RUN/nginx.out" nginx -e "$RUN/error.log" -p "$RUN/" -c "$CONF"
if ! wait_answers 10 "$SPAWNED"; then
  echo "nginx: instance $NAME did not come up on $URL; last lines of its logs:" >&2
  tail -n 10 "$RUN/nginx.out" "$RUN/error.log" >&2
  kill_nginx "$SPAWNED"
  rm -f "$NGINX_PIDFILE"
  exit 1
fi
for _ in $(seq 1 40); do nginx_pid >/dev/null && break; sleep 0.05; done
if ! nginx_pid >/dev/null; then
  echo "nginx: instance $NAME answers but $NGINX_PIDFILE does not name its master ($SPAWNED)" >&2
  kill_nginx "$SPAWNED"
  exit 1
fi
echo "nginx: instance $NAME up on $URL, master pid $(nginx_pid), auth unix:$AUTH (logs in $RUN)" >&2
echo "GH_NGINX_URL=$URL" >&3
