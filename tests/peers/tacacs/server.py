#!/usr/bin/env python3
"""A small TACACS+ authentication server for gatehouse's tests (RFC 8907).

Python standard library only. It serves authentication (ASCII and PAP
logins) on 127.0.0.1, one session per TCP connection, with bodies
obfuscated by the shared key, and checks what a real server checks:
version, packet type, session id and sequence numbers (a packet with an
unexpected number ends the session with an ERROR reply). A request that
does not decode with the key gets an ERROR reply, obfuscated with the
server's own key, as real servers answer a client with another key.

Users (passwords compared as UTF-8 bytes):
    alice / alicepass, Bob.Smith / bobpass, juergen / jürgenpass

Options:
    --port N              listen port (required)
    --key KEY             the shared key (required)
    --getuser-always      ASCII: always ask GETUSER, even when START names a user
    --otp USER=CODE       ASCII: after USER's password, a GETDATA "Code:" (NOECHO)
    --require-rem-addr A  FAIL any login whose rem_addr is not A
    --quiet               no per-session lines on stderr (benchmarks)

Prints "GH_TACACS_READY <port>" on stdout once it listens; one line per
session on stderr (user, type, rem_addr, outcome; never a password).
"""

import argparse
import hashlib
import socket
import socketserver
import struct
import sys

USERS = {
    b"alice": b"alicepass",
    b"Bob.Smith": b"bobpass",
    b"juergen": "jürgenpass".encode("utf-8"),
}

MAJOR = 0xC
TYPE_AUTHEN = 1
FLAG_UNENCRYPTED = 0x01
ACTION_LOGIN = 1
TYPE_ASCII, TYPE_PAP = 1, 2
PASS, FAIL, GETDATA, GETUSER, GETPASS, RESTART, ERROR = 1, 2, 3, 4, 5, 6, 7
NOECHO = 0x01
CONTINUE_ABORT = 0x01


class SessionEnd(Exception):
    """The session is over (reply sent, or nothing more to say)."""


def pad(session_id, key, version, seq_no, length):
    """The pseudo pad of RFC 8907 section 4.5."""
    base = struct.pack("!I", session_id) + key + bytes([version, seq_no])
    out, last = b"", b""
    while len(out) < length:
        last = hashlib.md5(base + last).digest()
        out += last
    return out[:length]


def xor(data, p):
    return bytes(a ^ b for a, b in zip(data, p))


class Session:
    def __init__(self, sock, key, opts, log):
        self.sock, self.key, self.opts, self.log = sock, key, opts, log
        self.session_id = None
        self.version = None
        self.seq_no = 0  # last number seen or sent

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise SessionEnd("client closed")
            buf += chunk
        return buf

    def read(self):
        """One client packet: checks the header, returns the revealed body."""
        hdr = self.recv_exact(12)
        version, ptype, seq_no, flags = hdr[0], hdr[1], hdr[2], hdr[3]
        session_id, length = struct.unpack("!II", hdr[4:])
        if length > 65535 * 4:
            raise SessionEnd("oversized packet")
        body = self.recv_exact(length)
        if self.session_id is None:
            self.session_id, self.version = session_id, version
        if version >> 4 != MAJOR or ptype != TYPE_AUTHEN:
            self.error(seq_no, "unsupported version or packet type")
        if session_id != self.session_id:
            raise SessionEnd("packet of another session")
        if seq_no != self.seq_no + 1:
            self.error(seq_no, "bad sequence number")
        self.seq_no = seq_no
        if flags & FLAG_UNENCRYPTED:
            self.error(seq_no, "unobfuscated packets are refused")
        return xor(body, pad(session_id, self.key, version, seq_no, len(body)))

    def reply(self, status, msg=b"", flags=0, seq_no=None):
        seq_no = self.seq_no + 1 if seq_no is None else seq_no
        body = struct.pack("!BBHH", status, flags, len(msg), 0) + msg
        body = xor(body, pad(self.session_id, self.key, self.version, seq_no, len(body)))
        hdr = bytes([self.version, TYPE_AUTHEN, seq_no & 0xFF, 0])
        hdr += struct.pack("!II", self.session_id, len(body))
        self.sock.sendall(hdr + body)
        self.seq_no = seq_no

    def error(self, seq_no, why):
        self.log(f"error: {why}")
        # answer the packet that was received, whatever its number
        self.reply(ERROR, why.encode(), seq_no=(seq_no + 1) & 0xFF)
        raise SessionEnd(why)

    def ask(self, status, prompt, flags=0):
        """Sends a GET* reply and returns the CONTINUE's user_msg."""
        self.reply(status, prompt, flags)
        body = self.read()
        if len(body) < 5:
            self.error(self.seq_no, "bad CONTINUE body")
        msg_len, data_len, cflags = struct.unpack("!HHB", body[:5])
        if 5 + msg_len + data_len != len(body):
            self.error(self.seq_no, "CONTINUE lengths do not match (wrong key?)")
        if cflags & CONTINUE_ABORT:
            raise SessionEnd("client aborted")
        return body[5 : 5 + msg_len]

    def run(self):
        body = self.read()
        if len(body) < 8:
            self.error(self.seq_no, "bad START body")
        action, _priv, authen_type, _service = body[:4]
        lens = body[4:8]
        if 8 + sum(lens) != len(body):
            self.error(self.seq_no, "START lengths do not match (wrong key?)")
        fields, at = [], 8
        for n in lens:
            fields.append(body[at : at + n])
            at += n
        user, port, rem_addr, data = fields
        minor = self.version & 0x0F
        if action != ACTION_LOGIN:
            self.error(self.seq_no, "only LOGIN is served")
        if authen_type == TYPE_PAP:
            if minor != 1:
                self.error(self.seq_no, "PAP needs minor version 1")
            password = data
        elif authen_type == TYPE_ASCII:
            if minor != 0:
                self.error(self.seq_no, "ASCII needs minor version 0")
            if not user or self.opts.getuser_always:
                user = self.ask(GETUSER, b"Username: ")
            password = self.ask(GETPASS, b"Password: ", NOECHO)
        else:
            self.error(self.seq_no, "unsupported authen_type")
        kind = "pap" if authen_type == TYPE_PAP else "ascii"
        ok = USERS.get(user) == password and bool(password)
        if ok and self.opts.require_rem_addr is not None:
            ok = rem_addr == self.opts.require_rem_addr.encode()
        if ok and authen_type == TYPE_ASCII and user in self.opts.otp:
            code = self.ask(GETDATA, b"Code: ", NOECHO)
            ok = code == self.opts.otp[user]
        self.log(
            f"user={user.decode('utf-8', 'replace')!r} type={kind} port={port.decode('utf-8', 'replace')!r} "
            f"rem_addr={rem_addr.decode('utf-8', 'replace')!r} -> {'PASS' if ok else 'FAIL'}"
        )
        self.reply(PASS if ok else FAIL, b"" if ok else b"Authentication failed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--getuser-always", action="store_true")
    ap.add_argument("--otp", action="append", default=[])
    ap.add_argument("--require-rem-addr")
    ap.add_argument("--quiet", action="store_true")
    opts = ap.parse_args()
    opts.otp = dict((u.encode(), c.encode()) for u, c in (o.split("=", 1) for o in opts.otp))
    key = opts.key.encode()

    def log(msg):
        if opts.quiet:
            return
        print(f"tacacs[{opts.port}]: {msg}", file=sys.stderr, flush=True)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.settimeout(30)
            try:
                Session(self.request, key, opts, log).run()
            except SessionEnd as e:
                log(f"session ended: {e}")
            except (OSError, socket.timeout) as e:
                log(f"connection: {e}")

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    with Server(("127.0.0.1", opts.port), Handler) as srv:
        print(f"GH_TACACS_READY {srv.server_address[1]}", flush=True)
        srv.serve_forever()


if __name__ == "__main__":
    main()
