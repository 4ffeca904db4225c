#!/bin/bash
# login.sh URL USER PASS: a scripted browser login at the test IdP. URL is where the browser goes first:
# an SP-initiated redirect (SSOService.php?SAMLRequest=…&RelayState=…, as gatehouse's start answers) or
# an IdP-initiated one (SSOService.php?spentityid=…). Prints on stdout
#   ACS=<the form's action>  RELAY_STATE=<RelayState, may be empty>  SAML_RESPONSE=<base64>
# Exit 1 when the login fails (wrong password: the form comes back, no SAMLResponse).
set -euo pipefail
URL=${1:?usage: login.sh URL USER PASS}; USER_=${2:?}; PASS_=${3:?}
JAR=$(mktemp); HTML=$(mktemp); trap 'rm -f "$JAR" "$HTML"' EXIT
# 1. the SSO endpoint answers a redirect to the login form, which carries AuthState
LOGIN=$(curl -sS -c "$JAR" -b "$JAR" -o /dev/null -w '%{redirect_url}' "$URL")
[ -n "$LOGIN" ] || { echo "saml: no redirect to the login form from $URL" >&2; exit 1; }
AUTHSTATE=$(python3 -c 'import sys,urllib.parse as u; print(u.parse_qs(u.urlsplit(sys.argv[1]).query)["AuthState"][0])' "$LOGIN")
# 2. the form
curl -sS -c "$JAR" -b "$JAR" -o "$HTML" "${LOGIN%%\?*}" \
  --data-urlencode "username=$USER_" --data-urlencode "password=$PASS_" --data-urlencode "AuthState=$AUTHSTATE"
# 3. the answer: an auto-submitting form that POSTs SAMLResponse (and RelayState) to the SP's ACS
python3 - "$HTML" <<'PY'
import html, re, sys
page = open(sys.argv[1], encoding="utf-8").read()
def field(name):
    m = re.search(r'name="%s"\s+value="([^"]*)"' % name, page)
    return html.unescape(m.group(1)) if m else None
resp = field("SAMLResponse")
if not resp:
    sys.stderr.write("saml: login failed (no SAMLResponse)\n"); sys.exit(1)
m = re.search(r'<form[^>]*action="([^"]*)"', page)
print("ACS=" + (html.unescape(m.group(1)) if m else ""))
print("RELAY_STATE=" + (field("RelayState") or ""))
print("SAML_RESPONSE=" + resp)
PY
