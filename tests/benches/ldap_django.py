#!/usr/bin/env python3
"""The automation platform's own engine: Django's authenticate() with
django-auth-ldap's LDAPBackend (service bind, user search, user bind,
NestedGroupOfNamesType lookup, Django user saved in SQLite), configured like
the gatehoused benchmark. Runs with Debian's python3, python3-django and
python3-django-auth-ldap.

usage: ldap_django.py URI CA SECONDS THREADS
prints: logins/s p50_ms p99_ms
"""
import os
import sys
import tempfile
import threading
import time

URI, CA, SECONDS, THREADS = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])

import ldap  # noqa: E402
from django.conf import settings  # noqa: E402

ldap.set_option(ldap.OPT_X_TLS_CACERTFILE, CA)
db = os.path.join(tempfile.mkdtemp(prefix="gh-django-"), "db.sqlite3")
settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db, "OPTIONS": {"timeout": 30}}},
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
    AUTHENTICATION_BACKENDS=["django_auth_ldap.backend.LDAPBackend"],
    AUTH_LDAP_SERVER_URI=URI,
    AUTH_LDAP_BIND_DN="cn=reader,ou=services,dc=example,dc=test",
    AUTH_LDAP_BIND_PASSWORD="readerpass",
    AUTH_LDAP_CONNECTION_OPTIONS={ldap.OPT_REFERRALS: 0},
    USE_TZ=True,
)
import django  # noqa: E402

django.setup()
from django.contrib.auth import authenticate  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django_auth_ldap.config import LDAPSearch, NestedGroupOfNamesType  # noqa: E402

settings.AUTH_LDAP_USER_SEARCH = LDAPSearch("ou=users,dc=example,dc=test", ldap.SCOPE_SUBTREE, "(uid=%(user)s)")
settings.AUTH_LDAP_GROUP_SEARCH = LDAPSearch(
    "ou=groups,dc=example,dc=test", ldap.SCOPE_SUBTREE, "(objectClass=groupOfNames)"
)
settings.AUTH_LDAP_GROUP_TYPE = NestedGroupOfNamesType()
settings.AUTH_LDAP_USER_ATTR_MAP = {"first_name": "givenName", "last_name": "sn", "email": "mail"}
settings.AUTH_LDAP_FIND_GROUP_PERMS = False
# the platform reads group membership on every login to run its maps
settings.AUTH_LDAP_MIRROR_GROUPS = False
settings.AUTH_LDAP_ALWAYS_UPDATE_USER = True

call_command("migrate", verbosity=0)
# the first login creates the Django user; do it before the threads race
assert authenticate(username="alice", password="alicepass") is not None
connection.close()

lat = []
lock = threading.Lock()
deadline = time.monotonic() + SECONDS


def worker():
    mine = []
    while time.monotonic() < deadline:
        t = time.monotonic()
        user = authenticate(username="alice", password="alicepass")
        assert user is not None
        groups = user.ldap_user.group_dns  # what the platform's maps read
        assert len(groups) == 3, groups
        mine.append(time.monotonic() - t)
    connection.close()
    with lock:
        lat.extend(mine)


threads = [threading.Thread(target=worker) for _ in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
lat.sort()
print("%.0f %.2f %.2f" % (len(lat) / SECONDS, lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000))
