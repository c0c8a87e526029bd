#!/usr/bin/env python3
"""Dissemination latency, otamesh vs serf, on loopback ports in one run.

For N in (16, 32): start N serf agents (LAN profile) and N otamesh agents, join each set through
its first node, wait until every node sees all N alive, then R times inject one update at node 0
and time until every node has it:
  serf    — `serf event -coalesce=false bench PAYLOAD`; each node's event handler writes the
            wall-clock time it ran (a fork+exec, a few ms after receipt);
  otamesh — `POST /api/v1/records/bench-R` (a replicated record); each node reports when the
            record reached it (`GET /api/v1/records`, receivedAt).
Prints a table (median and max over R of the time to reach all N) and writes it as Markdown to
--out. Only 127.0.0.1 is used; everything started is killed on exit.
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, tempfile, time, urllib.request

def wait_until(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}")

def http(url, data=None, token=None):
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")  # the admin API's /api/v1 needs a bearer token
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())

class Processes:
    def __init__(self):
        self.children = []
    def start(self, argv, log):
        child = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append(child)
        return child
    def stop(self):
        for child in self.children:
            try: os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError: pass
        for child in self.children:
            child.wait()
        self.children = []

def serf_run(n, rounds, work, procs, base):
    handler = os.path.join(work, "handler.sh")
    with open(handler, "w") as f:
        f.write('#!/bin/sh\nread payload\necho "$payload $(date +%s.%N)" >> "$1"\n')
    os.chmod(handler, 0o755)
    rpc = lambda i: f"127.0.0.1:{base + 1000 + i}"
    for i in range(n):
        procs.start(["serf", "agent", "-node", f"s{i}", "-bind", f"127.0.0.1:{base + i}", "-rpc-addr", rpc(i), "-profile", "lan",
                     "-log-level", "warn", "-event-handler", f"user:bench={handler} {work}/s{i}.events"], f"{work}/s{i}.log")
    def up(i):
        return subprocess.run(["serf", "members", "-rpc-addr", rpc(i)], capture_output=True).returncode == 0
    wait_until(lambda: all(up(i) for i in range(n)), 60, "serf agents to start")
    subprocess.run(["serf", "join", "-rpc-addr", rpc(0)] + [f"127.0.0.1:{base + i}" for i in range(1, n)], check=True, capture_output=True)
    def alive(i):
        out = subprocess.run(["serf", "members", "-rpc-addr", rpc(i), "-status", "alive"], capture_output=True, text=True).stdout
        return len(out.strip().splitlines()) == n
    wait_until(lambda: all(alive(i) for i in range(n)), 120, f"{n} serf members alive everywhere")
    time.sleep(2)  # let join traffic settle, as for otamesh below
    times = []
    for r in range(rounds):
        payload = f"r{r}"
        t0 = time.time()
        subprocess.run(["serf", "event", "-rpc-addr", rpc(0), "-coalesce=false", "bench", payload], check=True, capture_output=True)
        def seen(i):
            try:
                return any(line.split()[0] == payload for line in open(f"{work}/s{i}.events"))
            except (FileNotFoundError, IndexError):
                return False
        wait_until(lambda: all(seen(i) for i in range(n)), 60, f"serf event {payload} at all {n}")
        latest = max(float(line.split()[1]) for i in range(n) for line in open(f"{work}/s{i}.events") if line.split()[0] == payload)
        times.append(latest - t0)
        time.sleep(1)
    return times

def otamesh_run(n, rounds, work, procs, base, binary):
    keyring = os.path.join(work, "site.keyring")
    subprocess.run([binary, "keys", "site-keyring", "--out", keyring, "--site", "bench"], check=True, capture_output=True)
    admin = lambda i: f"http://127.0.0.1:{base + 1000 + i}"
    tokens = {}
    def token(i):  # each agent creates DATA/keys/admin.token on first start
        if i not in tokens:
            with open(f"{work}/o{i}/keys/admin.token") as f:
                tokens[i] = f.read().strip()
        return tokens[i]
    for i in range(n):
        join = ["--join", f"127.0.0.1:{base}"] if i > 0 else []
        procs.start([binary, "agent", "--data-dir", f"{work}/o{i}", "--node-name", f"o{i}", "--admin-listen", f"127.0.0.1:{base + 1000 + i}",
                     "--device-listen", "127.0.0.1:0", "--device-tls-listen", "off", "--gossip-listen", f"127.0.0.1:{base + i}",
                     "--site-keyring", keyring, "--discovery", "off", "--log-level", "warning"] + join, f"{work}/o{i}.log")
    def alive(i):
        try:
            view = http(f"{admin(i)}/api/v1/members", token=token(i))
            return sum(1 for m in view["members"] if m["status"] == "alive") == n - 1
        except Exception:
            return False
    wait_until(lambda: all(alive(i) for i in range(n)), 180, f"{n} otamesh members alive everywhere")
    time.sleep(2)
    times = []
    for r in range(rounds):
        key = f"bench-{r}"
        t0 = time.time()
        http(f"{admin(0)}/api/v1/records/{key}", data=b"payload", token=token(0))
        arrivals = {}
        def seen():
            for i in range(n):
                if i in arrivals:
                    continue
                for record in http(f"{admin(i)}/api/v1/records", token=token(i)):
                    if record["key"] == key and record["owner"] == "o0":
                        arrivals[i] = record["receivedAt"]
            return len(arrivals) == n
        wait_until(seen, 60, f"record {key} at all {n}")
        times.append(max(arrivals.values()) - t0)
        time.sleep(1)
    return times

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--otamesh", required=True)
    parser.add_argument("--sizes", default="16,32")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out")
    args = parser.parse_args()
    if not shutil.which("serf"):
        raise SystemExit("serf not found (Debian package serf; make bench installs it)")
    version = subprocess.run(["serf", "version"], capture_output=True, text=True).stdout.splitlines()[0]
    rows = []
    procs = Processes()
    try:
        for n in [int(x) for x in args.sizes.split(",")]:
            for name in ("serf", "otamesh"):
                work = tempfile.mkdtemp(prefix=f"gossip-{name}-{n}-")
                try:
                    if name == "serf":
                        times = serf_run(n, args.rounds, work, procs, 17400)
                    else:
                        times = otamesh_run(n, args.rounds, work, procs, 19400, args.otamesh)
                finally:
                    procs.stop()
                    shutil.rmtree(work, ignore_errors=True)
                rows.append((n, name, statistics.median(times), max(times), min(times)))
                print(f"N={n:3d} {name:8s} to all: median {statistics.median(times)*1000:7.1f} ms  min {min(times)*1000:7.1f}  max {max(times)*1000:7.1f}  ({args.rounds} rounds)", flush=True)
    finally:
        procs.stop()
    lines = [f"| N | system | median to all | min | max |", "|---|---|---|---|---|"]
    for n, name, med, worst, best in rows:
        lines.append(f"| {n} | {name} | {med*1000:.0f} ms | {best*1000:.0f} ms | {worst*1000:.0f} ms |")
    ratios = []
    for n in sorted({r[0] for r in rows}):
        ours = next(r for r in rows if r[0] == n and r[1] == "otamesh")[2]
        theirs = next(r for r in rows if r[0] == n and r[1] == "serf")[2]
        ratios.append(f"N={n}: otamesh/serf = {ours / theirs:.2f}")
    text = "\n".join(lines) + f"\n\nserf {version}; {args.rounds} rounds each; " + "; ".join(ratios) + " (goal ≤ 1.00)\n"
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        open(args.out, "w").write(text)

if __name__ == "__main__":
    main()
