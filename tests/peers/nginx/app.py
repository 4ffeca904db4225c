#!/usr/bin/env python3
"""The protected "app" behind the nginx test peer: answers every request with 200 and one line,

    app: uri=<path?query> user=<X-Gatehouse-User> scopes=<X-Gatehouse-Scopes>

(an absent header gives an empty value), so a test sees what nginx let through and what it copied from
gatehoused's answer. Response headers X-App-Method and X-App-Body-Length tell the method and how many
body bytes arrived. Listens on a Unix socket; writes its pid file once it listens.

Usage: app.py --socket PATH --pidfile PATH
"""
import argparse
import os
import signal
import socketserver
import sys
from http.server import BaseHTTPRequestHandler


class App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gatehouse-test-app"
    sys_version = ""

    def address_string(self):  # the peer of a Unix socket has no address
        return "unix"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        got = 0
        while got < length:
            chunk = self.rfile.read(min(65536, length - got))
            if not chunk:
                break
            got += len(chunk)
        body = "app: uri=%s user=%s scopes=%s\n" % (
            self.path,
            self.headers.get("X-Gatehouse-User", ""),
            self.headers.get("X-Gatehouse-Scopes", ""),
        )
        data = body.encode("utf-8", "surrogateescape")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-App-Method", self.command)
        self.send_header("X-App-Body-Length", str(got))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = answer


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--pidfile", required=True)
    a = ap.parse_args()
    try:
        os.unlink(a.socket)
    except FileNotFoundError:
        pass
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so the socket gets removed
    srv = Server(a.socket, App)
    os.chmod(a.socket, 0o666)
    tmp = a.pidfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % os.getpid())
    os.replace(tmp, a.pidfile)
    sys.stderr.write("app: listening on %s, pid %d\n" % (a.socket, os.getpid()))
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
