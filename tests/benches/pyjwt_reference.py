#!/usr/bin/env python3
"""Reference: an in-process PyJWT (+ cryptography) verifier decoding the
benchmark's tokens, as a backend would without gatehouse.

usage: pyjwt_reference.py TOKENS_FILE PUBLIC_PEM ALG AUDIENCE SECONDS
prints: decodes/s
"""
import sys
import time

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

tokens = [t.strip() for t in open(sys.argv[1]) if t.strip()]
# loaded once, as a backend would (passing the PEM text re-parses it per call)
key = load_pem_public_key(open(sys.argv[2], "rb").read())
alg, aud, seconds = sys.argv[3], sys.argv[4], float(sys.argv[5])
n = 0
deadline = time.monotonic() + seconds
start = time.monotonic()
while time.monotonic() < deadline:
    claims = jwt.decode(tokens[n % len(tokens)], key, algorithms=[alg], audience=aud)
    assert "duo_chat" in claims["scopes"]
    n += 1
print("%.0f" % (n / (time.monotonic() - start)))
