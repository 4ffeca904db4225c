#!/usr/bin/env python3
"""Reference: an in-process PyJWT (+ cryptography) verifier decoding the
benchmark's tokens, as a backend would without gatehouse.

usage: pyjwt_reference.py MODE TOKENS_FILE KEY_FILE ALG AUDIENCE SECONDS
  MODE key:       KEY_FILE is a public PEM, loaded once into a key object
                  (PyJWT's fastest path: little more than OpenSSL's verify)
  MODE jwksclient: KEY_FILE is a JWKS, served over HTTP on 127.0.0.1 and
                  used the way PyJWT documents: PyJWKClient (default
                  settings: the set is cached, its keys are rebuilt per
                  call) + jwt.decode
prints: decodes/s
"""
import http.server
import sys
import threading
import time

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

mode, tokens_file, key_file = sys.argv[1], sys.argv[2], sys.argv[3]
alg, aud, seconds = sys.argv[4], sys.argv[5], float(sys.argv[6])
tokens = [t.strip() for t in open(tokens_file) if t.strip()]

if mode == "key":
    key = load_pem_public_key(open(key_file, "rb").read())

    def decode(token):
        return jwt.decode(token, key, algorithms=[alg], audience=aud)

elif mode == "jwksclient":
    body = open(key_file, "rb").read()

    class Jwks(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = jwt.PyJWKClient("http://127.0.0.1:%d/jwks" % server.server_port)

    def decode(token):
        signing_key = client.get_signing_key_from_jwt(token)
        return jwt.decode(token, signing_key.key, algorithms=[alg], audience=aud)

else:
    sys.exit("unknown mode " + mode)

n = 0
deadline = time.monotonic() + seconds
start = time.monotonic()
while time.monotonic() < deadline:
    claims = decode(tokens[n % len(tokens)])
    assert "duo_chat" in claims["scopes"]
    n += 1
print("%.0f" % (n / (time.monotonic() - start)))
