#!/usr/bin/env python3
"""A TCP relay on 127.0.0.1 that cuts the first whole artifact download after CUT bytes.

Usage: cut_proxy.py UPSTREAM_PORT CUT_BYTES
Prints "listening PORT" once bound, then one line per event:
  cut GET /v1/targets/... after N bytes
  range GET /v1/targets/... Range: bytes=N-
Every connection carries one request (Connection: close is put in), relayed both ways; only the first response to a GET of /v1/targets/
without a Range header is cut (the client's connection closed after CUT bytes of it), so a
client that resumes shows up as a later request with a Range header. Loopback only.
"""
import socket, sys, threading

UPSTREAM = int(sys.argv[1])
CUT = int(sys.argv[2])
state = {"cut": False}
lock = threading.Lock()


def say(line):
    with lock:
        print(line, flush=True)


def relay(src, dst, budget=None):
    sent = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if budget is not None and sent + len(data) >= budget:
                dst.sendall(data[: budget - sent])
                return budget
            dst.sendall(data)
            sent += len(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    return sent


def handle(client):
    upstream = socket.create_connection(("127.0.0.1", UPSTREAM))
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        data = client.recv(65536)
        if not data:
            break
        head += data
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    headers = head.decode("latin-1").lower()
    budget = None
    if line.startswith("GET /v1/targets/"):
        if "\r\nrange:" in headers:
            value = [h for h in head.decode("latin-1").split("\r\n") if h.lower().startswith("range:")][0]
            say(f"range {line.rsplit(' ', 1)[0]} {value}")
        else:
            with lock:
                first = not state["cut"]
                state["cut"] = True
            if first:
                budget = CUT
    # One request per connection (the client reconnects for the next), so every request head
    # passes through here: "Connection: close" replaces whatever the client asked for.
    header, sep, rest = head.partition(b"\r\n\r\n")
    lines = [l for l in header.split(b"\r\n") if not l.lower().startswith(b"connection:")]
    head = b"\r\n".join(lines[:1] + [b"Connection: close"] + lines[1:]) + sep + rest
    upstream.sendall(head)
    threading.Thread(target=relay, args=(client, upstream), daemon=True).start()
    sent = relay(upstream, client, budget)
    if budget is not None:
        say(f"cut {line.rsplit(' ', 1)[0]} after {sent} bytes")
    client.close()
    upstream.close()


def main():
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    print(f"listening {server.getsockname()[1]}", flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=handle, args=(client,), daemon=True).start()


if __name__ == "__main__":
    main()
