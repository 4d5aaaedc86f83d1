#!/usr/bin/env python3
"""A bounded HTTP client for scripts/lab.

Makes COUNT sequential new TCP connections to TARGET, one GET with
"Connection: close" per connection, and prints one JSON line per connection:

  {"client": NAME, "address": "192.168.50.11", "localPort": 40312,
   "pod": "web-0", "peer": "192.168.50.11", "ok": true, "error": null, "seq": 0}

"peer" is the source address the pod saw (its X-Peer header), when it sent one.

With --requests N (N > 1) each connection is an HTTP/1.1 keep-alive connection carrying N
GETs, the last one with "Connection: close"; the line then also has "requests" (responses
received) and "ok" means all N were answered by the same pod (scripts/lab.d/long-lived.sh;
the pod must run with LAB_POD_KEEPALIVE=1).

Every socket has a timeout, the whole run has a deadline, and the count is
capped, so the traffic it makes is always bounded. It only talks to the lab's
own address ranges (Service CIDR, pod CIDR, lab LAN); scripts/lab runs it
inside namespaces whose routes reach nothing else.
"""

import argparse
import ipaddress
import json
import socket
import sys
import time

ALLOWED = [ipaddress.ip_network(n) for n in ("10.96.0.0/12", "10.244.0.0/16", "192.168.50.0/24")]
MAX_COUNT = 1000
MAX_DEADLINE = 120.0
MAX_REQUESTS = 1000


def connect(sock: socket.socket, host: str, port: int, result: dict) -> None:
    """Connects, and records the local address and port in RESULT even when connecting fails."""
    try:
        sock.connect((host, port))
    finally:
        try:
            result["address"], result["localPort"] = sock.getsockname()[:2]
        except OSError:
            pass


def one_request(host: str, port: int, timeout: float, extra: str = "", agent: str = "lab-client/1") -> dict:
    result = {"address": None, "localPort": None, "pod": None, "peer": None, "ok": False, "error": None}
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        connect(sock, host, port, result)
        request = f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\n{extra}Connection: close\r\n\r\n"
        sock.sendall(request.encode())
        chunks = []
        end = time.monotonic() + timeout
        total = 0
        while time.monotonic() < end and total < 65536:
            data = sock.recv(4096)
            if not data:
                break
            chunks.append(data)
            total += len(data)
        raw = b"".join(chunks)
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if not lines or not lines[0].startswith("HTTP/1.") or " 200 " not in lines[0] + " ":
            result["error"] = "bad status: " + (lines[0] if lines else "<empty>")
            return result
        pod = None
        for line in lines[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == "x-pod":
                pod = value.strip()
            elif key.strip().lower() == "x-peer":
                result["peer"] = value.strip()
        if not pod:
            pod = body.decode("utf-8", "replace").strip() or None
        result["pod"] = pod
        result["ok"] = pod is not None
        if pod is None:
            result["error"] = "no pod name in response"
    except (OSError, socket.timeout) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        sock.close()
    return result


def read_response(sock: socket.socket, buf: bytes, end: float) -> tuple:
    """One HTTP/1.1 response framed by Content-Length: (status line, headers, rest of buf)."""
    while b"\r\n\r\n" not in buf:
        if time.monotonic() >= end or len(buf) > 65536:
            raise socket.timeout("no complete response head")
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("connection closed before the response head")
        buf += data
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if not 0 <= length <= 65536:
        raise ValueError(f"bad Content-Length {length}")
    while len(buf) < length:
        if time.monotonic() >= end:
            raise socket.timeout("response body incomplete")
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("connection closed inside the response body")
        buf += data
    return lines[0], headers, buf[length:]


def keepalive_requests(host: str, port: int, timeout: float, requests: int, pause: float,
                       agent: str = "lab-client/1") -> dict:
    """REQUESTS GETs on one keep-alive connection; every response must name the same pod."""
    result = {"address": None, "localPort": None, "pod": None, "peer": None, "ok": False,
              "error": None, "requests": 0}
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        connect(sock, host, port, result)
        buf = b""
        for i in range(requests):
            last = i + 1 == requests
            connection = "close" if last else "keep-alive"
            request = f"GET /{i} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\nConnection: {connection}\r\n\r\n"
            sock.sendall(request.encode())
            status, headers, buf = read_response(sock, buf, time.monotonic() + timeout)
            if not status.startswith("HTTP/1.") or " 200 " not in status + " ":
                result["error"] = "bad status: " + status
                return result
            pod = headers.get("x-pod")
            if not pod or (result["pod"] not in (None, pod)):
                result["error"] = f"request {i} answered by {pod!r}, not {result['pod']!r}"
                return result
            result["pod"] = pod
            result["peer"] = headers.get("x-peer", result["peer"])
            result["requests"] += 1
            if not last and headers.get("connection", "").lower() == "close":
                result["error"] = f"the pod closed the connection after request {i}"
                return result
            if not last:
                time.sleep(max(0.0, pause))
        result["ok"] = True
    except (OSError, socket.timeout, ValueError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        sock.close()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True)
    ap.add_argument("--target", required=True, help="HOST:PORT")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=3.0, help="socket timeout, seconds")
    ap.add_argument("--pause", type=float, default=0.02, help="pause between connections, seconds")
    ap.add_argument("--deadline", type=float, default=60.0, help="stop after this many seconds")
    ap.add_argument("--user-agent", default="lab-client/1", help="User-Agent header value")
    ap.add_argument("--forwarded-for", default=None, help="send X-Forwarded-For with this address")
    ap.add_argument("--requests", type=int, default=1,
                    help="GETs per connection; more than 1 keeps the connection alive")
    ap.add_argument("--request-pause", type=float, default=0.02,
                    help="pause between the requests of one connection, seconds")
    args = ap.parse_args()
    extra = ""
    if args.forwarded_for:
        extra = f"X-Forwarded-For: {ipaddress.ip_address(args.forwarded_for)}\r\n"
    agent = "".join(c for c in args.user_agent if 32 <= ord(c) < 127)

    host, _, port_s = args.target.rpartition(":")
    port = int(port_s)
    addr = ipaddress.ip_address(host)
    if not any(addr in net for net in ALLOWED):
        print(f"lab-client: refusing target {host} outside the lab ranges", file=sys.stderr)
        return 2
    count = max(0, min(args.count, MAX_COUNT))
    timeout = max(0.1, min(args.timeout, 10.0))
    requests = max(1, min(args.requests, MAX_REQUESTS))
    deadline = time.monotonic() + max(1.0, min(args.deadline, MAX_DEADLINE))

    failures = 0
    for seq in range(count):
        if time.monotonic() >= deadline:
            print(f"lab-client {args.name}: deadline reached after {seq} connections", file=sys.stderr)
            return 3
        if requests > 1:
            res = keepalive_requests(host, port, timeout, requests, args.request_pause, agent)
        else:
            res = one_request(host, port, timeout, extra, agent)
        res["client"] = args.name
        res["seq"] = seq
        if not res["ok"]:
            failures += 1
        print(json.dumps(res, sort_keys=True), flush=True)
        if seq + 1 < count:
            time.sleep(max(0.0, args.pause))
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
