#!/usr/bin/env python3
"""A tiny backend "pod" for scripts/lab.

Usage: lab-pod.py NAME PORT [MAX_SECONDS]

Answers every GET with the body "NAME\\n", the header "X-Pod: NAME" and the
header "X-Peer: IP" (the source address the pod saw, to tell kept client
addresses from masqueraded ones) over
HTTP/1.1, closing the connection after each response (with LAB_POD_KEEPALIVE=1, only when the
client asks for it: keep-alive connections, scripts/lab.d/long-lived.sh). It is meant to run
inside a network namespace made by scripts/lab, which stops it by PID; as a
safety net it also stops by itself after MAX_SECONDS (default 300).
"""

import http.server
import signal
import socketserver
import os
import sys
import threading


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print("usage: lab-pod.py NAME PORT [MAX_SECONDS]", file=sys.stderr)
        return 2
    name = sys.argv[1]
    port = int(sys.argv[2])
    max_seconds = float(sys.argv[3]) if len(sys.argv) == 4 else 300.0
    body = (name + "\n").encode()
    # LAB_POD_COOKIE=NAME: every response sets NAME=<pod name>, the way an ingress's affinity
    # cookie names the backend it chose (scripts/lab.d/hidden-hosts.sh).
    cookie = os.environ.get("LAB_POD_COOKIE", "")
    cookie = cookie if cookie.isidentifier() else ""
    keepalive = os.environ.get("LAB_POD_KEEPALIVE", "") == "1"

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "lab-pod/1"
        sys_version = ""
        timeout = 5  # per-connection socket timeout

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Pod", name)
            self.send_header("X-Peer", self.client_address[0])
            if cookie:
                self.send_header("Set-Cookie", f"{cookie}={name}; Path=/; HttpOnly")
            # parse_request set close_connection from the request's Connection header.
            if not (keepalive and not self.close_connection):
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

    server = Server(("0.0.0.0", port), Handler)

    def stop(*_args) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(max_seconds, stop)
    timer.daemon = True
    timer.start()
    print(f"{name} listening on 0.0.0.0:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
