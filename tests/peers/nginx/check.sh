#!/bin/bash
# Self-test of the nginx peer, without gatehouse: starts fake_auth.py (a stand-in for gatehoused) on a Unix
# socket in a private dir ($GH_PEERS_RUN/nginx/check.auth, mode 0700, socket mode 0600), then instance
# "check" on 127.0.0.1:19390 (or GH_NGINX_CHECK_PORT) in front of it, and checks with curl what reaches the
# auth server, the app and the client. Stops and wipes everything it started at the end.
# Prints one line per check, then "N passed, M failed"; exits 1 if anything failed.
# Only touches the "check" instance: instances of running tests are left alone.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

N=check
PORT=${GH_NGINX_CHECK_PORT:-19390}
U=http://127.0.0.1:$PORT
FA=$NGINX_RUN/$N.auth          # the fake auth server's dir: socket, request log, pid, output
SOCK=$FA/auth.sock
REQS=$FA/requests.jsonl
tmp=$(mktemp -d /tmp/gatehouse-nginx-check.XXXXXX)
set_instance "$N"              # RUN, APP_SOCK, ... of the check instance

stop_fake_auth() {
  local p
  p=$(cat "$FA/pid" 2>/dev/null) || return 0
  case $p in ''|*[!0-9]*) return 0 ;; esac
  tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline" | grep -qF -- "$here/fake_auth.py" && kill_pid "$p" "fake auth"
  return 0
}
finish() {
  "$here/stop.sh" "$N" --wipe >/dev/null 2>&1
  stop_fake_auth
  case $FA in /?*/nginx/check.auth) rm -rf "$FA" ;; esac
  rm -rf "$tmp"
}
trap finish EXIT

pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
# check NAME CMD...: CMD's exit status decides; its output is shown only on failure
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$name"; else bad "$name"; printf '%s\n' "$out" | tail -n 8 | sed 's/^/     | /'; fi
}
# same TEXT WANT: the two are equal
same() { [ "$1" = "$2" ] || { printf 'got:  %s\nwant: %s\n' "$1" "$2"; return 1; }; }
fails() { ! "$@" >/dev/null 2>&1; }
# t FILE: a file in $tmp
t() { cat "$tmp/$1" 2>/dev/null; }

# req OUT CURL-ARGS...: one request to nginx; status code in $tmp/OUT.code, headers in $tmp/OUT.h,
# body in $tmp/OUT.b. Fails only when curl itself fails.
req() {
  local o=$tmp/$1
  shift
  curl -sS --max-time 10 -D "$o.h" -o "$o.b" -w '%{http_code}' "$@" > "$o.code"
}
code() { t "$1.code"; }
body() { t "$1.b"; }
# hdr OUT NAME: the values of response header NAME (one line each, CR stripped)
hdr() { grep -i "^$2:" "$tmp/$1.h" | sed -e 's/^[^:]*: *//' -e 's/\r$//'; }
# status_is OUT CODE
status_is() { same "$(code "$1")" "$2"; }

# what the fake auth server got: nreqs = how many requests so far; saw NAME = the values of request
# header NAME in the last request (one line each); seen KEY = method, path or body_length of the last one
nreqs() { if [ -f "$REQS" ]; then wc -l < "$REQS"; else echo 0; fi; }
saw() {
  tail -n 1 "$REQS" | python3 -c 'import json, sys
r = json.loads(sys.stdin.read())
for v in r["headers"].get(sys.argv[1].lower(), []): print(v)' "$1"
}
seen() { tail -n 1 "$REQS" | python3 -c 'import json, sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"; }

# to_eof OUTFILE CMD...: runs CMD with stdout and stderr on pipes (like Rust's Command::output()), and
# checks that both reach EOF when CMD exits, i.e. no process that CMD started keeps them open.
to_eof() {
  local f=$tmp/$1 rc=0 reader ereader i
  shift
  mkfifo "$f.fifo" "$f.efifo"
  cat "$f.fifo" > "$f" &
  reader=$!
  cat "$f.efifo" > "$f.err" &
  ereader=$!
  "$@" > "$f.fifo" 2> "$f.efifo" || rc=$?
  for i in $(seq 1 40); do
    kill -0 "$reader" 2>/dev/null || kill -0 "$ereader" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$reader" 2>/dev/null || kill -0 "$ereader" 2>/dev/null; then
    kill "$reader" "$ereader" 2>/dev/null
    echo "$* exited ($rc) but its stdout/stderr pipe stays open"
    return 1
  fi
  wait "$reader" "$ereader"
  [ "$rc" = 0 ] || { echo "$* exited $rc:"; cat "$f.err"; return 1; }
}
# procs: pids of the check instance's nginx processes (its master's session) and of its app
procs() {
  local p
  for p in /proc/[0-9]*/cmdline; do
    tr '\0' ' ' 2>/dev/null < "$p" | grep -qE -- "(-c $CONF|app.py --socket $APP_SOCK)( |\$)" \
      && { p=${p#/proc/}; echo "${p%/cmdline}"; }
  done
  SID_WANTED=$master
  session_pids
}
refused() { ! curl -sS --max-time 3 -o /dev/null "$U/healthz" 2>/dev/null; }

# --- clean slate
"$here/stop.sh" "$N" --wipe >/dev/null 2>&1
stop_fake_auth
rm -rf "$FA"

# --- the fake auth server, in a private dir (like a test's temp dir, only stricter)
start_fake_auth() {
  local i
  mkdir -p "$FA" && chmod 700 "$FA"
  spawn "$FA/out.log" python3 "$here/fake_auth.py" --socket "$SOCK" --log "$REQS" --pidfile "$FA/pid"
  for i in $(seq 1 100); do
    [ -S "$SOCK" ] && [ -s "$FA/pid" ] && return 0
    kill -0 "$SPAWNED" 2>/dev/null || break
    sleep 0.05
  done
  cat "$FA/out.log"
  return 1
}
check "fake auth server listens on $SOCK (dir 0700, socket 0600)" start_fake_auth

# --- starting
check "start.sh $N $PORT SOCK: output reaches EOF (nginx and app keep no caller fd)" \
  to_eof start1 "$here/start.sh" "$N" "$PORT" "$SOCK"
check "... and prints just GH_NGINX_URL=$U"                same "$(t start1)" "GH_NGINX_URL=$U"
master=$(nginx_pid)
app=$(app_pid)
concurrent_start() {
  local i rc=0 p=()
  for i in 1 2 3; do "$here/start.sh" "$N" "$PORT" "$SOCK" > "$tmp/again$i" 2> "$tmp/again$i.err" & p+=($!); done
  for i in 0 1 2; do wait "${p[$i]}" || { rc=1; echo "start $((i + 1)) failed:"; cat "$tmp/again$((i + 1)).err"; }; done
  for i in 1 2 3; do same "$(t "again$i")" "GH_NGINX_URL=$U" || rc=1; done
  same "$(nginx_pid)" "$master" || rc=1
  same "$(app_pid)" "$app" || rc=1
  return "$rc"
}
check "3 concurrent start.sh again: same line, same nginx master and app" concurrent_start
if [ "$(id -u)" = 0 ]; then
  worker_user() { SID_WANTED=$master; local w; for w in $(session_pids); do [ "$w" = "$master" ] || ps -o user= -p "$w"; done; }
  check "nginx workers run as root (user root;)"           same "$(worker_user | sort -u)" root
fi

# --- /healthz
before=$(nreqs)
req hz "$U/healthz"
check "/healthz without credentials: 200"                  status_is hz 200
check "... and no auth subrequest was made"                same "$(nreqs)" "$before"

# --- allowed
req good -H 'Authorization: Bearer good' "$U/some/path?a=1&b=two%20words"
check "Bearer good: 200"                                   status_is good 200
check "... app echoes uri, user and scopes"                same "$(body good)" "app: uri=/some/path?a=1&b=two%20words user=tester scopes=a b"
check "... auth got GET /v1/check"                         same "$(seen method) $(seen path)" "GET /v1/check"
check "... X-Original-URI has the query string"            same "$(saw X-Original-URI)" "/some/path?a=1&b=two%20words"
check "... X-Original-Method GET"                          same "$(saw X-Original-Method)" GET
check "... Authorization forwarded"                        same "$(saw Authorization)" "Bearer good"

# --- refused
req none "$U/private"
check "no credentials: 401"                                status_is none 401
check "... WWW-Authenticate: Bearer, exactly once"         same "$(hdr none WWW-Authenticate)" Bearer
check "... the app was not reached"                        fails grep -q '^app:' "$tmp/none.b"
req bad -H 'Authorization: Bearer wrong' "$U/private"
check "wrong token: 401 with one WWW-Authenticate"         same "$(code bad) $(hdr bad WWW-Authenticate)" "401 Bearer"
req forb -H 'Authorization: Bearer forbidden' "$U/private"
check "Bearer forbidden: 403"                              status_is forb 403
check "... no WWW-Authenticate, app not reached"           same "$(hdr forb WWW-Authenticate)$(grep -c '^app:' "$tmp/forb.b")" 0

# --- GitLab's token headers
req gl -H 'X-Gitlab-External-Storage-Token: st-123' -H 'X-Gitlab-Static-Object-Token: so-456' \
  "$U/group/project/-/archive/main/project-main.zip?token=q"
check "token headers only: 401 (the fake knows none)"      status_is gl 401
check "... X-Gitlab-External-Storage-Token reaches auth"   same "$(saw X-Gitlab-External-Storage-Token)" st-123
check "... X-Gitlab-Static-Object-Token reaches auth"      same "$(saw X-Gitlab-Static-Object-Token)" so-456
check "... X-Original-URI with the query string"           same "$(saw X-Original-URI)" "/group/project/-/archive/main/project-main.zip?token=q"

# --- the body stays out of the subrequest, the method is passed on
req post -X POST --data-binary 'hello world' -H 'Authorization: Bearer good' "$U/api/v4/x?y=1"
check "POST with a body: 200, the app gets the 11 bytes"   same "$(code post) $(hdr post X-App-Method) $(hdr post X-App-Body-Length)" "200 POST 11"
check "... auth got GET with X-Original-Method POST"       same "$(seen method) $(saw X-Original-Method)" "GET POST"
check "... and no body, no Content-Length"                 same "$(seen body_length) $(saw Content-Length)" "0 "

# --- X-Gatehouse-* come from the auth answer only, never from the client
req spoof1 -H 'Authorization: Bearer anon' -H 'X-Gatehouse-User: evil' -H 'X-Gatehouse-Scopes: all' "$U/s"
check "client's X-Gatehouse-* with an answer without them: app sees none" \
  same "$(code spoof1) $(body spoof1)" "200 app: uri=/s user= scopes="
req spoof2 -H 'Authorization: Bearer good' -H 'X-Gatehouse-User: evil' -H 'X-Gatehouse-Scopes: all' "$U/s"
check "... with Bearer good: app sees tester / a b"       same "$(body spoof2)" "app: uri=/s user=tester scopes=a b"

# --- another auth socket: reload
master_now() { same "$(nginx_pid)" "$master"; }
check "start.sh with another AUTH_SOCKET: same URL"        same "$("$here/start.sh" "$N" "$PORT" "$FA/none.sock" 2>/dev/null)" "GH_NGINX_URL=$U"
check "... same master (reloaded)"                         master_now
req gone -H 'Authorization: Bearer good' "$U/x"
check "... nothing listens there: 500"                     status_is gone 500
check "start.sh with the first socket again"               same "$("$here/start.sh" "$N" "$PORT" "$SOCK" 2>/dev/null)" "GH_NGINX_URL=$U"
req back -H 'Authorization: Bearer good' "$U/x"
check "... 200 again, same master"                         same "$(code back) $(nginx_pid)" "200 $master"

# --- refusals
check "start.sh $N on another port is refused"             fails "$here/start.sh" "$N" "$((PORT + 1))" "$SOCK"
check "start.sh with a bad name is refused"                fails "$here/start.sh" "../x" "$PORT" "$SOCK"
check "start.sh with a relative AUTH_SOCKET is refused"    fails "$here/start.sh" "$N" "$PORT" rel/auth.sock

# --- stopping
check "stop.sh $N: its port refuses connections"           eval '"$here/stop.sh" "$N" && refused'
check "... and no nginx or app process is left"            same "$(procs | sort -u | while read -r p; do is_zombie "$p" || echo "$p"; done)" ""
check "stop.sh $N --wipe deletes the run dir"              eval '"$here/stop.sh" "$N" --wipe && [ ! -e "$RUN" ]'

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
