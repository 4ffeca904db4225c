#!/bin/bash
# Installs the Debian packages the test peers need (slapd, ldap-utils, openssl, nginx; iproute2 for `ss -K`), as root.
# On Debian 12 the `nginx` package is the binary itself, built with the auth_request module that the nginx
# peer needs (`nginx-light` is only a metapackage there that pulls in `nginx` plus the echo module).
#
# Idempotent: when every package is already installed it only runs a few dpkg-query calls and exits 0.
# `apt-get update` runs only when there are no package lists yet, or when an install from the existing
# lists fails (stale lists). System services are never started: while apt runs, /usr/sbin/policy-rc.d
# answers 101 ("action forbidden"); we add that file only if none exists and remove only the one we added.
set -euo pipefail
bash "$(dirname "$0")/oidc/install.sh"   # the OIDC peer's npm packages; first, as the apt part below may exit early

PKGS=(slapd ldap-utils openssl nginx iproute2 python3-venv freeradius freeradius-utils postgresql pamtester libpam0g-dev
  simplesamlphp php-cli php-xml pkg-config libssl-dev xmlsec1 python3-onelogin-saml2
  systemd)

is_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for p in "${PKGS[@]}"; do is_installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install.sh: already installed: ${PKGS[*]}" >&2
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install.sh: missing packages: ${missing[*]}; run me as root (apt-get install)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -q -o DPkg::Lock::Timeout=300)

POLICY=/usr/sbin/policy-rc.d
POLICY_MARK='# gatehouse tests/peers/install.sh: keep package scripts from starting services'
ours=0
cleanup() {
  # only remove the file if it is still the one we wrote
  if [ "$ours" = 1 ] && grep -qxF "$POLICY_MARK" "$POLICY" 2>/dev/null; then rm -f "$POLICY"; fi
}
trap cleanup EXIT
if [ ! -e "$POLICY" ] && [ ! -L "$POLICY" ]; then
  printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARK" > "$POLICY"
  chmod 755 "$POLICY"
  ours=1
fi

have_lists() {
  compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

log=$(mktemp /tmp/gatehouse-peers-apt.XXXXXX)
updated=0
if ! have_lists; then
  echo "install.sh: no package lists yet: apt-get update" >&2
  "${APT[@]}" update >>"$log" 2>&1 || { tail -n 20 "$log" >&2; exit 1; }
  updated=1
fi

echo "install.sh: installing ${missing[*]}" >&2
if ! "${APT[@]}" install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
  if [ "$updated" = 1 ]; then
    echo "install.sh: apt-get install failed; log: $log" >&2; tail -n 20 "$log" >&2; exit 1
  fi
  echo "install.sh: install failed with the existing lists; apt-get update and retry" >&2
  "${APT[@]}" update >>"$log" 2>&1 || { tail -n 20 "$log" >&2; exit 1; }
  "${APT[@]}" install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1 \
    || { echo "install.sh: apt-get install failed; log: $log" >&2; tail -n 20 "$log" >&2; exit 1; }
fi

for p in "${PKGS[@]}"; do
  is_installed "$p" || { echo "install.sh: $p is still not installed; log: $log" >&2; exit 1; }
done
rm -f "$log"
echo "install.sh: installed ${missing[*]}" >&2
