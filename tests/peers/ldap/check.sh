#!/bin/bash
# Quick self-test of the LDAP test server with the OpenLDAP command-line tools.
# Gets the server the way the Rust tests do: runs start.sh (which starts it if needed) and reads its
# env lines. Prints one line per check, then "N passed, M failed"; exits 1 if anything failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
# check NAME CMD...: CMD's exit status decides; its output is shown only on failure
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$name"; else bad "$name"; printf '%s\n' "$out" | tail -n 5 | sed 's/^/     | /'; fi
}

envout=$("$here/start.sh") || { bad "start.sh"; echo "$pass passed, $fail failed"; exit 1; }
GH_LDAP_URI= GH_LDAPS_URI= GH_LDAP_CA= GH_LDAP_BASE=
while IFS='=' read -r k v; do
  case $k in GH_LDAP_URI|GH_LDAPS_URI|GH_LDAP_CA|GH_LDAP_BASE) printf -v "$k" '%s' "$v" ;; esac
done <<< "$envout"
if [ "$(printf '%s\n' "$envout" | wc -l)" = 4 ] && [ -n "$GH_LDAP_URI" ] && [ -n "$GH_LDAPS_URI" ] \
   && [ -f "$GH_LDAP_CA" ] && [ "$GH_LDAP_BASE" = dc=example,dc=test ]; then
  ok "start.sh prints exactly the four GH_LDAP_* lines"
else
  bad "start.sh prints exactly the four GH_LDAP_* lines"; printf '%s\n' "$envout" | sed 's/^/     | /'
fi

export LDAPTLS_CACERT=$GH_LDAP_CA LDAPTLS_REQCERT=demand
B=$GH_LDAP_BASE
U=ou=users,$B
C=ou=contractors,$B
G=ou=groups,$B
READER=cn=reader,ou=services,$B

# bind URI DN PASSWORD [extra ldapwhoami args]: simple bind, prints the authzid
bind() { local uri=$1 dn=$2 pw=$3; shift 3; ldapwhoami -x -o nettimeout=5 -H "$uri" "$@" -D "$dn" -w "$pw"; }
# whoami_is URI DN PASSWORD [args]: the bind succeeds and the server reports that DN
whoami_is() { local got; got=$(bind "$@") || return 1; [ "$got" = "dn:$2" ] || { echo "got '$got'"; return 1; }; }
# rc_is WANT CMD...: CMD exits with status WANT
rc_is() { local want=$1 rc=0; shift; "$@" >/dev/null 2>&1 || rc=$?; [ "$rc" = "$want" ] || { echo "exit $rc, want $want"; return 1; }; }
# fails CMD...: CMD exits non-zero
fails() { ! "$@" >/dev/null 2>&1; }
# rsearch ARGS...: search as the reader, LDIF without line wrapping
rsearch() { ldapsearch -LLL -x -o ldif-wrap=no -o nettimeout=5 -H "$GH_LDAP_URI" -D "$READER" -w readerpass "$@"; }
# has_line WANT CMD...: CMD succeeds and prints the line WANT (case-insensitive)
has_line() { local want=$1 out; shift; out=$("$@") || return 1; printf '%s\n' "$out" | grep -qixF -- "$want" || { echo "$out"; return 1; }; }
# count_dn N CMD...: CMD succeeds and prints N entries
count_dn() { local want=$1 out n; shift; out=$("$@") || return 1; n=$(printf '%s\n' "$out" | grep -c '^dn:'); [ "$n" = "$want" ] || { echo "$n entries, want $want"; echo "$out" | grep '^dn:'; return 1; }; }
# lacks_attr ATTR CMD...: CMD succeeds, returns an entry, and ATTR is not in it
lacks_attr() {
  local a=$1 out; shift
  out=$("$@") || return 1
  printf '%s\n' "$out" | grep -q '^dn:' || { echo "no entry returned"; return 1; }
  ! printf '%s\n' "$out" | grep -qi "^$a:" || { echo "$out"; return 1; }
}
# attr_utf8 ATTR WANT CMD...: CMD prints ATTR (plain or base64) with the UTF-8 value WANT
attr_utf8() {
  local a=$1 want=$2 out v; shift 2
  out=$("$@") || return 1
  v=$(printf '%s\n' "$out" | sed -n "s/^$a:: //p" | base64 -d 2>/dev/null)
  [ -n "$v" ] || v=$(printf '%s\n' "$out" | sed -n "s/^$a: //p")
  [ "$v" = "$want" ] || { echo "got '$v'"; return 1; }
}

# --- simple binds
check "bind alice (plain LDAP)"                   whoami_is "$GH_LDAP_URI" "uid=alice,$U" alicepass
check "bind Bob.Smith (mixed-case uid)"           whoami_is "$GH_LDAP_URI" "uid=Bob.Smith,$U" bobpass
check "bind juergen with non-ASCII password"      whoami_is "$GH_LDAP_URI" "uid=juergen,$U" 'jürgenpass'
check "juergen's password in Latin-1 -> 49"       rc_is 49 bind "$GH_LDAP_URI" "uid=juergen,$U" "$(printf 'j\xfcrgenpass')"
check "bind zoë (non-ASCII uid)"                  bind "$GH_LDAP_URI" "uid=zoë,$U" zoepass
check "bind dave"                                 whoami_is "$GH_LDAP_URI" "uid=dave,$U" davepass
check "bind carl (ou=contractors)"                whoami_is "$GH_LDAP_URI" "uid=carl,$C" carlpass
check "bind contractor alice with alicepass2"     whoami_is "$GH_LDAP_URI" "uid=alice,$C" alicepass2
check "contractor alice with alicepass -> 49"     rc_is 49 bind "$GH_LDAP_URI" "uid=alice,$C" alicepass
check "wrong password -> 49"                      rc_is 49 bind "$GH_LDAP_URI" "uid=alice,$U" nope
check "unknown user -> 49"                        rc_is 49 bind "$GH_LDAP_URI" "uid=nobody,$U" whatever

# --- TLS
check "StartTLS (-ZZ) bind Bob.Smith, CA checked" whoami_is "$GH_LDAP_URI" "uid=Bob.Smith,$U" bobpass -ZZ
check "ldaps bind juergen, CA checked"            whoami_is "$GH_LDAPS_URI" "uid=juergen,$U" 'jürgenpass'
check "ldaps without our CA is refused"           fails env LDAPTLS_CACERT=/etc/ssl/certs/ca-certificates.crt \
                                                    ldapwhoami -x -o nettimeout=5 -H "$GH_LDAPS_URI" -D "uid=alice,$U" -w alicepass

# --- searches by the read-only service account
check "reader sees 9 entries in ou=groups"        count_dn 9 rsearch -b "$G" -s one '(objectClass=*)' cn
check "developers: memberUid Bob.Smith"           has_line "memberUid: Bob.Smith" rsearch -b "cn=developers,$G" -s base memberUid
check "operators: uniqueMember juergen"           has_line "uniqueMember: uid=juergen,$U" rsearch -b "cn=operators,$G" -s base uniqueMember
check "auditors: roleOccupant dave"               has_line "roleOccupant: uid=dave,$U" rsearch -b "cn=auditors,$G" -s base roleOccupant
check "subtree (uid=alice) finds two entries"     count_dn 2 rsearch -b "$B" '(uid=alice)' uid
check "(uid=bob.smith) finds Bob.Smith"           has_line "dn: uid=Bob.Smith,$U" rsearch -b "$B" '(uid=bob.smith)' 1.1
check "(uid=zoë) finds one entry"                 count_dn 1 rsearch -b "$B" '(uid=zoë)' 1.1
check "juergen's cn is 'Jürgen Müller'"           attr_utf8 cn 'Jürgen Müller' rsearch -b "uid=juergen,$U" -s base cn
check "memberOf: alice in admins"                 has_line "memberOf: cn=admins,$G" rsearch -b "uid=alice,$U" -s base memberOf
check "memberOf: admins in all-staff (nesting)"   has_line "memberOf: cn=all-staff,$G" rsearch -b "cn=admins,$G" -s base memberOf
check "memberOf: all-staff in everyone"           has_line "memberOf: cn=everyone,$G" rsearch -b "cn=all-staff,$G" -s base memberOf
check "memberOf: cyclic-a in cyclic-b"            has_line "memberOf: cn=cyclic-b,$G" rsearch -b "cn=cyclic-a,$G" -s base memberOf
check "memberOf: cyclic-b in cyclic-a"            has_line "memberOf: cn=cyclic-a,$G" rsearch -b "cn=cyclic-b,$G" -s base memberOf
check "(memberOf=admins) finds alice"             has_line "dn: uid=alice,$U" rsearch -b "$B" "(memberOf=cn=admins,$G)" 1.1

# --- access control
check "reader cannot read userPassword"           lacks_attr userPassword rsearch -b "uid=alice,$U" -s base userPassword
check "alice cannot read her own userPassword"    lacks_attr userPassword ldapsearch -LLL -x -H "$GH_LDAP_URI" \
                                                    -D "uid=alice,$U" -w alicepass -b "uid=alice,$U" -s base userPassword
check "anonymous search refused (32, no entries)" rc_is 32 ldapsearch -LLL -x -H "$GH_LDAP_URI" -b "$B" '(uid=alice)'
check "reader cannot write (50)"                  rc_is 50 sh -c "printf 'dn: uid=dave,$U\nchangetype: modify\nreplace: mail\nmail: x@example.test\n' \
                                                    | ldapmodify -x -H '$GH_LDAP_URI' -D '$READER' -w readerpass"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
