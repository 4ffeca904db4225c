#!/usr/bin/env python3
"""Reference rate: what the automation platform's engine does per LDAP login
(django-auth-ldap on python-ldap): bind as the service account, search the
user, bind as the user, search the user's nested groups. One fresh user
connection per login, like django-auth-ldap; the service connection is
re-bound per login too (django-auth-ldap binds it for every authenticate()).

usage: ldap_reference.py URI CA SECONDS THREADS
prints: logins/s p50_ms p99_ms
"""
import sys
import threading
import time

import ldap

URI, CA, SECONDS, THREADS = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
BASE = "dc=example,dc=test"
ldap.set_option(ldap.OPT_X_TLS_CACERTFILE, CA)


def login(username, password):
    svc = ldap.initialize(URI)
    svc.set_option(ldap.OPT_REFERRALS, 0)
    svc.simple_bind_s("cn=reader,ou=services,dc=example,dc=test", "readerpass")
    res = svc.search_s("ou=users," + BASE, ldap.SCOPE_SUBTREE,
                       "(uid=%s)" % ldap.filter.escape_filter_chars(username))
    assert len(res) == 1
    dn, attrs = res[0]
    user = ldap.initialize(URI)
    user.simple_bind_s(dn, password)
    user.unbind_s()
    # nested groupOfNames, as NestedGroupOfNamesType does
    seen, frontier = set(), [dn]
    while frontier:
        ors = "".join("(member=%s)" % ldap.filter.escape_filter_chars(d) for d in frontier)
        found = svc.search_s("ou=groups," + BASE, ldap.SCOPE_SUBTREE,
                             "(&(objectClass=groupOfNames)(|%s))" % ors, ["cn"])
        frontier = [g for g, _ in found if g.lower() not in seen]
        seen.update(g.lower() for g in frontier)
    svc.unbind_s()
    return seen


import ldap.filter  # noqa: E402

lat = []
lock = threading.Lock()
deadline = time.monotonic() + SECONDS


def worker():
    mine = []
    while time.monotonic() < deadline:
        t = time.monotonic()
        groups = login("alice", "alicepass")
        assert len(groups) == 3, groups
        mine.append(time.monotonic() - t)
    with lock:
        lat.extend(mine)


threads = [threading.Thread(target=worker) for _ in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
lat.sort()
print("%.0f %.2f %.2f" % (len(lat) / SECONDS, lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000))
