#!/usr/bin/env python3
"""Reference rate: RADIUS logins the way the automation platform's RADIUS
authenticator (django-radius) drives pyrad: for every login a fresh
Dictionary and Client (so a fresh UDP socket), an Access-Request with
User-Name, the hidden User-Password and NAS-Identifier, SendPacket, then the
code and the Class values of the reply.

usage: radius_pyrad.py HOST PORT SECRET SECONDS THREADS
prints: logins/s p50_ms p99_ms
"""
import io
import sys
import threading
import time

from pyrad import packet
from pyrad.client import Client
from pyrad.dictionary import Dictionary

HOST, PORT, SECRET = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
SECONDS, THREADS = float(sys.argv[4]), int(sys.argv[5])

# the attributes the platform's backend declares
DICTIONARY = """
ATTRIBUTE User-Name 1 string
ATTRIBUTE User-Password 2 string encrypt=1
ATTRIBUTE NAS-IP-Address 4 ipaddr
ATTRIBUTE Filter-Id 11 string
ATTRIBUTE Reply-Message 18 string
ATTRIBUTE State 24 octets
ATTRIBUTE Class 25 octets
ATTRIBUTE NAS-Identifier 32 string
ATTRIBUTE Message-Authenticator 80 octets
"""


def login(username, password):
    client = Client(server=HOST, authport=PORT, secret=SECRET,
                    dict=Dictionary(io.StringIO(DICTIONARY)))
    client.timeout = 5
    client.retries = 2
    req = client.CreateAuthPacket(code=packet.AccessRequest, User_Name=username)
    req["User-Password"] = req.PwCrypt(password)
    req["NAS-Identifier"] = "gatehouse-bench"
    reply = client.SendPacket(req)
    if reply.code != packet.AccessAccept:
        raise RuntimeError("not accepted: %d" % reply.code)
    return [bytes(c).decode() for c in reply.get("Class", [])]


lat = []
lock = threading.Lock()
deadline = time.monotonic() + SECONDS


def worker():
    mine = []
    while time.monotonic() < deadline:
        t = time.monotonic()
        groups = login("alice", "alicepass")
        assert groups == ["admins"], groups
        mine.append(time.monotonic() - t)
    with lock:
        lat.extend(mine)


threads = [threading.Thread(target=worker) for _ in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
lat.sort()
n = len(lat)
print("%.1f %.3f %.3f" % (n / SECONDS, lat[n // 2] * 1000, lat[min(n - 1, int(n * 0.99))] * 1000))
