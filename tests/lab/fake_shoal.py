#!/usr/bin/env python3
"""A stand-in for `shoal daemon`, used by netlab.sh to test the lab's plumbing
(start/stop/kill, pid and log handling) without the real daemon.

It accepts the same flags as `shoal daemon`, answers GET /_ping with OK on the
unix socket, and removes a stale socket left behind by a SIGKILL, as the real
daemon must. With FAKE_SHOAL_IGNORE_TERM=1 it ignores SIGTERM.
"""
import argparse
import http.server
import os
import signal
import socketserver
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/_ping"
        body = b"OK" if ok else b'{"message":"page not found"}'
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self):  # unix sockets have no client address
        return "unix"


class Server(socketserver.UnixStreamServer):
    def get_request(self):  # http.server expects (sock, addr) with a host/port pair
        sock, _ = super().get_request()
        return sock, ("unix", 0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["daemon"])
    p.add_argument("--socket", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--hostname", required=True)
    p.add_argument("--executor", default="auto")
    args = p.parse_args()
    if os.environ.get("FAKE_SHOAL_IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if os.path.exists(args.socket):
        os.unlink(args.socket)  # stale socket from a crash
    os.makedirs(args.data_dir, exist_ok=True)
    print(f"fake shoal: hostname={args.hostname} socket={args.socket}", flush=True)
    Server(args.socket, Handler).serve_forever()


if __name__ == "__main__":
    main()
