#!/bin/bash
# Self-test of the OIDC peer: starts two instances, check-a and check-b (ports 19190 and 19191, or the first
# two in GH_OIDC_CHECK_PORTS="PA PB PC"), gets tokens from both through token.sh, verifies them with jose the
# way a relying party would (inspect.mjs), rotates check-a's keys, and stops and wipes both. Then the same,
# in short, over https: instance check-tls, started with --tls on 19192 (or PC; default PB + 1).
# Prints one line per check, then "N passed, M failed"; exits 1 if anything failed.
# Only touches the check-a, check-b and check-tls instances: instances of running tests are left alone.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

read -r PA PB PC _ <<< "${GH_OIDC_CHECK_PORTS:-19190 19191 19192}"
PC=${PC:-$((PB + 1))}
A=check-a B=check-b C=check-tls
IA=http://127.0.0.1:$PA IB=http://127.0.0.1:$PB IC=https://127.0.0.1:$PC
CA_C=$OIDC_RUN/$C/tls/ca.pem
tmp=$(mktemp -d /tmp/gatehouse-oidc-check.XXXXXX)

finish() {
  "$here/stop.sh" "$A" --wipe >/dev/null 2>&1
  "$here/stop.sh" "$B" --wipe >/dev/null 2>&1
  "$here/stop.sh" "$C" --wipe >/dev/null 2>&1
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

inspect() { node "$here/inspect.mjs" "$@"; }
# save FILE CMD...: CMD's stdout goes to $tmp/FILE
save() { local f=$tmp/$1; shift; "$@" > "$f"; }
# t FILE: what save wrote
t() { cat "$tmp/$1" 2>/dev/null; }
# same TEXT WANT: the two are equal
same() { [ "$1" = "$2" ] || { printf 'got:  %s\nwant: %s\n' "$1" "$2"; return 1; }; }
# differ TEXT1 TEXT2: no line of TEXT1 is in TEXT2
differ() {
  local l
  while read -r l; do
    [ -z "$l" ] || ! grep -qxF -- "$l" <<< "$2" || { echo "'$l' is in both"; return 1; }
  done <<< "$1"
}
# kid_of TOKEN, claim_of TOKEN CLAIM: from the token's header / payload, without verification
kid_of() { inspect field "$1" header.kid; }
claim_of() { inspect field "$1" "payload.$2"; }
# fails CMD...: CMD exits non-zero
fails() { ! "$@" >/dev/null 2>&1; }
# refused ISSUER: nothing accepts connections for ISSUER any more
refused() { ! curl -sS --max-time 3 -o /dev/null "$1/jwks" 2>/dev/null; }
# pids NAME: the pids of NAME's server processes (read-only look at /proc)
pids() {
  local f
  for f in /proc/[0-9]*/cmdline; do
    tr '\0' ' ' < "$f" 2>/dev/null | grep -qF -- "$here/server.mjs --name $1 " && { f=${f#/proc/}; echo "${f%/cmdline}"; }
  done
  return 0
}
# to_eof OUTFILE CMD...: runs CMD with stdout and stderr on a pipe (like Rust's Command::output()), and
# checks that the pipe reaches EOF when CMD exits, i.e. no process that CMD started keeps it open.
# CMD's output goes to $tmp/OUTFILE (stdout) and $tmp/OUTFILE.err.
to_eof() {
  local f=$tmp/$1 rc=0 reader i
  shift
  rm -f "$f.fifo" "$f.efifo"
  mkfifo "$f.fifo" "$f.efifo"
  cat "$f.fifo" > "$f" &
  reader=$!
  cat "$f.efifo" > "$f.err" &
  local ereader=$!
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

"$here/stop.sh" "$A" --wipe >/dev/null 2>&1
"$here/stop.sh" "$B" --wipe >/dev/null 2>&1
"$here/stop.sh" "$C" --wipe >/dev/null 2>&1

# --- starting
concurrent_start() {
  local i rc=0 p=()
  for i in 1 2 3; do "$here/start.sh" "$A" "$PA" > "$tmp/start$i" 2> "$tmp/start$i.err" & p+=($!); done
  for i in 0 1 2; do wait "${p[$i]}" || { rc=1; echo "start $((i + 1)) failed:"; cat "$tmp/start$((i + 1)).err"; }; done
  for i in 1 2 3; do same "$(t "start$i")" "GH_OIDC_ISSUER=$IA" || rc=1; done
  return "$rc"
}
check "3 concurrent start.sh $A $PA from scratch: each prints just GH_OIDC_ISSUER=$IA" concurrent_start
check "... and one server process runs for $A"            same "$(pids "$A" | wc -l)" 1
pid_a=$(pids "$A")
check "start.sh $B $PB: output reaches EOF (server keeps no caller fd)" to_eof startb "$here/start.sh" "$B" "$PB"
check "... and prints just GH_OIDC_ISSUER=$IB"            same "$(t startb)" "GH_OIDC_ISSUER=$IB"
start_again() { same "$("$here/start.sh" "$A" "$PA" 2>/dev/null)" "GH_OIDC_ISSUER=$IA" && same "$(pids "$A")" "$pid_a"; }
check "start.sh $A again: same line, same server"         start_again
check "start.sh $A on another port is refused"            fails "$here/start.sh" "$A" "$PB"
check "start.sh with a bad name is refused"               fails "$here/start.sh" "../x" "$PA"

# --- discovery and keys
check "discovery of $A: issuer, jwks_uri, token_endpoint" inspect discovery "$IA"
check "discovery of $B"                                    inspect discovery "$IB"
check "JWKS of $A: one RS256 + one ES256 key, distinct kids, public only" save kids_a inspect jwks "$IA"
check "JWKS of $B: the same"                               save kids_b inspect jwks "$IB"
check "$A and $B have different keys"                      differ "$(t kids_a)" "$(t kids_b)"
check "JWKS kids of $A are those in its key file"          same "$(t kids_a)" "$(node "$here/keys.mjs" kids "$OIDC_RUN/$A/jwks.private.json")"

# --- tokens
SC="duo_chat code_suggestions"
check "token $A RS256 (defaults)"                          save a_rs "$here/token.sh" "$A"
check "token $A ES256, aud, scopes, ttl, sub"              save a_es "$here/token.sh" "$A" --alg ES256 --aud ai.example.test --scopes "$SC" --ttl 120 --sub user:42
check "token $B RS256 with scopes"                         save b_rs "$here/token.sh" "$B" --alg RS256 --scopes "$SC"
check "token $B ES256"                                     save b_es "$here/token.sh" "$B" --alg ES256 --sub 'Jürgen Müller'
check "$A RS256: verifies with $A's JWKS; aud gitlab-ai-gateway, ttl 3600, scopes [], sub gatehouse-e2e" \
  inspect verify "$(t a_rs)" --issuer "$IA" --sub gatehouse-e2e
check "$A ES256: verifies; aud, scopes array, ttl 120, sub as asked" \
  inspect verify "$(t a_es)" --issuer "$IA" --alg ES256 --aud ai.example.test --scopes "$SC" --ttl 120 --sub user:42
check "$B RS256: verifies with $B's JWKS"                  inspect verify "$(t b_rs)" --issuer "$IB" --scopes "$SC"
check "$B ES256: verifies, non-ASCII sub"                  inspect verify "$(t b_es)" --issuer "$IB" --alg ES256 --sub 'Jürgen Müller'
check "$A RS256 token's kid is $A's RS256 kid"             same "$(kid_of "$(t a_rs)")" "$(t kids_a | sed -n 1p)"
check "$A ES256 token's kid is $A's ES256 kid"             same "$(kid_of "$(t a_es)")" "$(t kids_a | sed -n 2p)"
check "$A RS256 token does not verify with $B's keys"      inspect verify "$(t a_rs)" --issuer "$IA" --keys-of "$IB" --expect rejected
check "$A ES256 token does not verify with $B's keys"      inspect verify "$(t a_es)" --issuer "$IA" --keys-of "$IB" --expect rejected
check "$B RS256 token does not verify with $A's keys"      inspect verify "$(t b_rs)" --issuer "$IB" --keys-of "$IA" --expect rejected
check "two tokens have different jti"                      save a_rs2 "$here/token.sh" "$A"
check "... (compared)"                                     fails same "$(claim_of "$(t a_rs)" jti)" "$(claim_of "$(t a_rs2)" jti)"
expired() { local tok; tok=$("$here/token.sh" "$A" --ttl -60) && inspect verify "$tok" --issuer "$IA" --ttl -60 --expect expired; }
check "--ttl -60: good signature, refused as expired"      expired
check "token.sh --alg HS256 fails"                         fails "$here/token.sh" "$A" --alg HS256
check "token.sh --ttl 1.5 fails"                           fails "$here/token.sh" "$A" --ttl 1.5
check "token.sh for an instance never started fails"       fails "$here/token.sh" check-never-started

# --- restart keeps the keys
# stop NAME ISSUER: stop.sh NAME succeeds, and nothing answers for ISSUER afterwards
stop() { "$here/stop.sh" "$1" && refused "$2"; }
check "stop.sh $A: its issuer refuses connections"         stop "$A" "$IA"
check "token.sh for a stopped instance fails"              fails "$here/token.sh" "$A"
check "start.sh $A again"                                  same "$("$here/start.sh" "$A" "$PA" 2>/dev/null)" "GH_OIDC_ISSUER=$IA"
check "... keeps the kids"                                 same "$(inspect jwks "$IA" 2>&1)" "$(t kids_a)"
check "... and a token from before still verifies"         inspect verify "$(t a_rs)" --issuer "$IA"

# --- rotation
check "rotate.sh $A: output reaches EOF"                   to_eof rot "$here/rotate.sh" "$A"
check "... prints two kids"                                same "$(t rot | wc -l)" 2
check "... new kids, none of the old ones"                 differ "$(t rot)" "$(t kids_a)"
check "... the JWKS has exactly the new kids"              same "$(inspect jwks "$IA" 2>&1)" "$(t rot)"
check "... same issuer"                                    inspect discovery "$IA"
# new_kid ALG N: a new ALG token of A verifies, and its kid is line N of rotate.sh's output
new_kid() {
  local tok
  tok=$("$here/token.sh" "$A" --alg "$1") && inspect verify "$tok" --issuer "$IA" --alg "$1" \
    && same "$(kid_of "$tok")" "$(t rot | sed -n "$2p")"
}
check "new RS256 token of $A: new kid, verifies"           new_kid RS256 1
check "new ES256 token of $A: new kid, verifies"           new_kid ES256 2
check "token from before the rotation no longer verifies"  inspect verify "$(t a_rs)" --issuer "$IA" --expect rejected
check "$B is untouched by $A's rotation"                   same "$(inspect jwks "$IB" 2>&1)" "$(t kids_b)"

# --- stopping
check "stop.sh $A: its issuer refuses connections"         stop "$A" "$IA"
check "stop.sh $B: its issuer refuses connections"         stop "$B" "$IB"
check "... and no server process is left"                  same "$(pids "$A")$(pids "$B")" ""
wiped() { "$here/stop.sh" "$A" --wipe && "$here/stop.sh" "$B" --wipe && [ ! -e "$OIDC_RUN/$A" ] && [ ! -e "$OIDC_RUN/$B" ]; }
check "stop.sh --wipe deletes the run dirs"                wiped

# --- https (start.sh --tls)
check "start.sh $C $PC --tls"                              save startc "$here/start.sh" "$C" "$PC" --tls
check "... prints just GH_OIDC_ISSUER=$IC and GH_OIDC_CA"  same "$(t startc)" "GH_OIDC_ISSUER=$IC"$'\n'"GH_OIDC_CA=$CA_C"
pid_c=$(pids "$C")
# server_cert: v3, SAN IP:127.0.0.1 + DNS:localhost, serverAuth, not a CA, signed by a v3 CA
server_cert() {
  local x
  openssl verify -x509_strict -purpose sslserver -CAfile "$CA_C" "$OIDC_RUN/$C/tls/server.pem" || return 1
  x=$(openssl x509 -in "$OIDC_RUN/$C/tls/server.pem" -noout -text) || return 1
  grep -q 'IP Address:127.0.0.1, DNS:localhost' <<< "$x" && grep -q 'TLS Web Server Authentication' <<< "$x" \
    && grep -q 'CA:FALSE' <<< "$x" && grep -q 'Version: 3' <<< "$x" || { echo "$x"; return 1; }
  x=$(openssl x509 -in "$CA_C" -noout -text) || return 1
  grep -q 'CA:TRUE' <<< "$x" && grep -q 'Certificate Sign' <<< "$x" || { echo "$x"; return 1; }
}
check "... its server certificate: SAN IP:127.0.0.1, DNS:localhost, serverAuth, signed by GH_OIDC_CA" server_cert
start_c_again() { same "$("$here/start.sh" "$C" "$PC" --tls 2>/dev/null)" "$(t startc)" && same "$(pids "$C")" "$pid_c"; }
check "start.sh $C $PC --tls again: same lines, same server" start_c_again
check "start.sh $C $PC without --tls is refused (runs with https)" fails "$here/start.sh" "$C" "$PC"
https_discovery() {
  local d
  d=$(curl -fsS --max-time 5 --cacert "$CA_C" "$IC/.well-known/openid-configuration") || return 1
  for want in "\"issuer\":\"$IC\"" "\"jwks_uri\":\"$IC/jwks\"" "\"token_endpoint\":\"$IC/token\""; do
    case $d in *"$want"*) ;; *) echo "no $want in $d"; return 1 ;; esac
  done
}
check "discovery over https with curl --cacert GH_OIDC_CA"  https_discovery
check "JWKS of $C over https, trusting only GH_OIDC_CA"      save kids_c inspect jwks "$IC" --ca "$CA_C"
# untrusted: curl with the system's CAs gets the server's certificate refused (exit 60), not some other error
untrusted() { local rc=0; curl -sS --max-time 5 -o /dev/null "$IC/jwks" || rc=$?; same "curl exit $rc" "curl exit 60"; }
check "curl without --cacert: certificate not trusted"      untrusted
check "token.mjs without --ca (system CAs): fails"           fails node "$here/token.mjs" --issuer "$IC"
check "token $C ES256 with scopes, over https"               save c_es "$here/token.sh" "$C" --alg ES256 --scopes "$SC" --sub user:7
check "$C ES256: verifies with $C's JWKS; iss $IC"           inspect verify "$(t c_es)" --issuer "$IC" --ca "$CA_C" --alg ES256 --scopes "$SC" --sub user:7
# rotate_c: new kids, same scheme and the same CA and certificate after the restart
rotate_c() {
  local ca_before cert_before new
  ca_before=$(cat "$CA_C") cert_before=$(cat "$OIDC_RUN/$C/tls/server.pem") || return 1
  new=$("$here/rotate.sh" "$C") || return 1
  differ "$new" "$(t kids_c)" && same "$(inspect jwks "$IC" --ca "$CA_C" 2>&1)" "$new" \
    && same "$(cat "$CA_C")" "$ca_before" && same "$(cat "$OIDC_RUN/$C/tls/server.pem")" "$cert_before" \
    && inspect verify "$("$here/token.sh" "$C")" --issuer "$IC" --ca "$CA_C"
}
check "rotate.sh $C: new kids, still https, same CA and certificate" rotate_c
# conn_refused ISSUER: connections to ISSUER's port are refused (curl exit 7)
conn_refused() { local rc=0; curl -sS --max-time 3 -o /dev/null "$1/jwks" 2>/dev/null || rc=$?; same "curl exit $rc" "curl exit 7"; }
wiped_c() { "$here/stop.sh" "$C" --wipe && conn_refused "$IC" && [ ! -e "$OIDC_RUN/$C" ] && same "$(pids "$C")" ""; }
check "stop.sh $C --wipe: connections refused, run dir gone" wiped_c

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
