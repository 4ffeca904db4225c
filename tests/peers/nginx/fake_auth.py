#!/usr/bin/env python3
"""A stand-in for gatehoused, for check.sh only: answers GET /v1/check on a Unix socket.

    Authorization: Bearer good       200, X-Gatehouse-User: tester, X-Gatehouse-Scopes: a b
    Authorization: Bearer anon       200 without X-Gatehouse-* headers
    Authorization: Bearer forbidden  403
    anything else                    401, WWW-Authenticate: Bearer

Every answer also carries X-Fake-Auth-Original-URI (the X-Original-URI it was sent), and every request
is appended to the log file as one JSON line: {"method", "path", "headers" (lower-case names, a list of
values each), "body_length"}. check.sh reads that log to see what nginx sent.

Usage: fake_auth.py --socket PATH --log PATH --pidfile PATH
"""
import argparse
import json
import os
import signal
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler

LOG_LOCK = threading.Lock()


class FakeAuth(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gatehouse-fake-auth"
    sys_version = ""
    log_path = None

    def address_string(self):
        return "unix"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))

    def record(self, body_length):
        headers = {}
        for k, v in self.headers.items():
            headers.setdefault(k.lower(), []).append(v)
        line = json.dumps({"method": self.command, "path": self.path, "headers": headers,
                           "body_length": body_length})
        with LOG_LOCK, open(self.log_path, "a") as f:
            f.write(line + "\n")

    def reply(self, code, headers):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("X-Fake-Auth-Original-URI", self.headers.get("X-Original-URI", ""))
        self.send_header("Content-Length", "0")
        try:
            self.end_headers()
        except (BrokenPipeError, ConnectionResetError):
            pass  # nginx may close an auth subrequest's connection as soon as it has the headers

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        self.record(len(body))
        if self.path.split("?", 1)[0] != "/v1/check":
            return self.reply(404, [])
        auth = self.headers.get("Authorization", "")
        if auth == "Bearer good":
            return self.reply(200, [("X-Gatehouse-User", "tester"), ("X-Gatehouse-Scopes", "a b")])
        if auth == "Bearer anon":
            return self.reply(200, [])
        if auth == "Bearer forbidden":
            return self.reply(403, [])
        return self.reply(401, [("WWW-Authenticate", "Bearer")])

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = handle_any


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--pidfile", required=True)
    a = ap.parse_args()
    FakeAuth.log_path = a.log
    try:
        os.unlink(a.socket)
    except FileNotFoundError:
        pass
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv = Server(a.socket, FakeAuth)
    # deliberately private (0600 socket): nginx's workers run as root in this harness and must cope
    os.chmod(a.socket, 0o600)
    with open(a.pidfile, "w") as f:
        f.write("%d\n" % os.getpid())
    sys.stderr.write("fake auth: listening on %s\n" % a.socket)
    sys.stderr.flush()
    try:
        srv.serve_forever()
    finally:
        try:
            os.unlink(a.socket)
        except OSError:
            pass


if __name__ == "__main__":
    main()
