#!/usr/bin/env python3
"""A real HTTP file server with injected faults, for otamesh's transfer tests.

Serves one file at /FILE-NAME on 127.0.0.1 (a free port, printed as `PORT n` on stdout), with
Range (bytes=a-b, bytes=a-), If-Range (strong ETag) and HEAD. Every request is logged to stdout
as one JSON line: {"method", "range", "if_range", "status", "sent"} so tests count requests and
bytes at the server. Faults (command-line flags):

  --drops K --seed S        the first K GETs are cut at a random byte of the body (socket closed)
  --drop-chunk N            ... each cut at most N bytes into its body (default: anywhere)
  --status CODE             answer every request with CODE (e.g. 404, 500, 503)
  --retry-after SECONDS     with --status 503: send Retry-After
  --corrupt                 flip one byte of the body (same length: a hash mismatch)
  --extra N                 serve N bytes more than the file (a length mismatch)
  --change-etag-after K     the ETag changes after K requests (the representation "changed")
  --bad-content-range       answer ranges with a Content-Range that starts elsewhere
  --stall-after N --stall-seconds S   send N body bytes, then nothing for S seconds (once)
"""
import argparse, hashlib, json, os, random, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

p = argparse.ArgumentParser()
p.add_argument("file")
p.add_argument("--drops", type=int, default=0)
p.add_argument("--drop-chunk", type=int, default=0)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--status", type=int, default=0)
p.add_argument("--retry-after", type=int, default=-1)
p.add_argument("--corrupt", action="store_true")
p.add_argument("--extra", type=int, default=0)
p.add_argument("--change-etag-after", type=int, default=-1)
p.add_argument("--bad-content-range", action="store_true")
p.add_argument("--stall-after", type=int, default=-1)
p.add_argument("--stall-seconds", type=float, default=0)
args = p.parse_args()

data = open(args.file, "rb").read()
if args.corrupt:
    data = bytearray(data); data[len(data) // 2] ^= 0xFF; data = bytes(data)
if args.extra:
    data = data + b"\0" * args.extra
name = "/" + os.path.basename(args.file)
digest = hashlib.sha256(data).hexdigest()
rng = random.Random(args.seed)
lock = threading.Lock()
state = {"requests": 0, "drops": args.drops, "stalled": False}


def log(**entry):
    with lock:
        sys.stdout.write(json.dumps(entry) + "\n")
        sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_HEAD(self):
        self.answer(head=True)

    def do_GET(self):
        self.answer(head=False)

    def answer(self, head):
        with lock:
            state["requests"] += 1
            count = state["requests"]
        etag = '"%s"' % digest if args.change_etag_after < 0 or count <= args.change_etag_after else '"%s-v2"' % digest
        rng_header = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        entry = {"method": self.command, "range": rng_header, "if_range": if_range, "via": self.headers.get("Via")}
        if self.path != name:
            return self.finish_with(404, b"not found\n", entry, head)
        if args.status:
            extra = {"Retry-After": str(args.retry_after)} if args.retry_after >= 0 else {}
            return self.finish_with(args.status, b"fault\n", entry, head, extra)
        start, end, status = 0, len(data) - 1, 200
        if rng_header and (if_range is None or if_range == etag):
            spec = rng_header.split("=", 1)[1]
            a, b = spec.split("-", 1)
            start = int(a)
            end = min(int(b), len(data) - 1) if b else len(data) - 1
            if start >= len(data):
                entry["status"] = 416; entry["sent"] = 0; log(**entry)
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:end + 1]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            shown = start + 1 if args.bad_content_range else start
            self.send_header("Content-Range", "bytes %d-%d/%d" % (shown, end, len(data)))
        self.end_headers()
        entry["status"] = status
        if head:
            entry["sent"] = 0; log(**entry); return
        cut = None
        with lock:
            if state["drops"] > 0 and len(body) > 1:
                state["drops"] -= 1
                limit = len(body) - 1 if args.drop_chunk <= 0 else min(len(body) - 1, args.drop_chunk)
                cut = rng.randint(1, limit)
        stall = None
        with lock:
            if args.stall_after >= 0 and not state["stalled"]:
                state["stalled"] = True
                stall = args.stall_after
        try:
            if cut is not None:
                self.wfile.write(body[:cut]); self.wfile.flush()
                entry["sent"] = cut; entry["dropped"] = True; log(**entry)
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if stall is not None:
                self.wfile.write(body[:stall]); self.wfile.flush()
                time.sleep(args.stall_seconds)
                self.wfile.write(body[stall:])
            else:
                self.wfile.write(body)
            entry["sent"] = len(body); log(**entry)
        except (BrokenPipeError, ConnectionResetError):
            entry["sent"] = -1; entry["client_closed"] = True; log(**entry)
            self.close_connection = True

    def finish_with(self, status, body, entry, head, extra={}):
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
        entry["status"] = status; entry["sent"] = 0 if head else len(body); log(**entry)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
sys.stdout.write("PORT %d\n" % server.server_address[1]); sys.stdout.flush()
server.serve_forever()
