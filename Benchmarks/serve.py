#!/usr/bin/env python3
"""Device-serving benchmarks, against real peers in the same run (loopback only).

1. Serving a 1 MiB image: otamesh agent vs nginx (sendfile on, as many workers as the agent has
   event loops), wrk on loopback at 64 and 512 connections, alternating rounds; the ratio is
   otamesh requests/s / nginx requests/s (above 1.0: otamesh is faster), median over rounds.
2. 1,000 otamesh-devicesim devices polling once a second against one agent: poll latency p50/p99
   (from devicesim), agent CPU (% of one core over the run) and RSS (peak).
3. hawkBit DDI: a 64 MiB artifact through its DDI download link vs nginx (MB/s, wrk, alternating
   rounds), and 1,000 devicesim DDI devices (SWUpdate's suricatta) polling once a second.

  Benchmarks/serve.py --bin DIR --work DIR [--rounds N] [--seconds S] [--devices N] [--polls K] [--only ddi]
"""
import argparse, json, os, re, shutil, signal, socket, statistics, subprocess, sys, time

p = argparse.ArgumentParser()
p.add_argument("--bin", required=True)
p.add_argument("--work", required=True)
p.add_argument("--rounds", type=int, default=5)
p.add_argument("--seconds", type=int, default=5)
p.add_argument("--devices", type=int, default=1000)
p.add_argument("--polls", type=int, default=30)
p.add_argument("--skip-polling", action="store_true")
p.add_argument("--only", choices=["ddi", "serving"], help="run only this part")
args = p.parse_args()
OTAMESH = os.path.join(args.bin, "otamesh")
DEVICESIM = os.path.join(args.bin, "otamesh-devicesim")
WORKERS = os.cpu_count()  # NIO's MultiThreadedEventLoopGroup.singleton: one loop per core


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, deadline=20):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nothing listens on 127.0.0.1:%d" % port)


def start_agent(data, port, extra=()):
    proc = subprocess.Popen([OTAMESH, "agent", "--data-dir", data, "--device-listen", "127.0.0.1:%d" % port,
                             "--device-tls-listen", "off", "--admin-listen", "127.0.0.1:0", "--log-level", "warning", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "admin API + metrics" in line:
            break
    else:
        raise SystemExit("agent did not start")
    wait_port(port)
    return proc


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_nginx(root, port):
    conf = os.path.join(args.work, "nginx.conf")
    prefix = os.path.join(args.work, "nginx")
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    with open(conf, "w") as f:
        f.write("""
worker_processes %d;
daemon off;
%s
pid %s/nginx.pid;
error_log %s/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  types { application/octet-stream bin; }
  server {
    listen 127.0.0.1:%d reuseport backlog=1024;
    root %s;
  }
}
""" % (WORKERS, "user root;" if os.geteuid() == 0 else "", prefix, prefix, port, root))
    proc = subprocess.Popen(["nginx", "-p", prefix, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_port(port)
    return proc


def wrk(url, connections):
    out = subprocess.run(["wrk", "-t", str(WORKERS), "-c", str(connections), "-d", "%ds" % args.seconds, url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit("wrk saw errors: %s" % out)
    return rps


def alternate(ours_url, nginx_url, connection_counts):
    """wrk against both servers in alternating order, per connection count: the medians of
    requests/s (otamesh, nginx) and of their ratio, with the ratio's range."""
    results = {}
    for connections in connection_counts:
        ratios, ours, theirs = [], [], []
        wrk(ours_url, connections)  # warm-up
        wrk(nginx_url, connections)
        for r in range(args.rounds):
            order = [("otamesh", ours_url), ("nginx", nginx_url)]
            if r % 2:
                order.reverse()
            got = {name: wrk(url, connections) for name, url in order}
            ours.append(got["otamesh"])
            theirs.append(got["nginx"])
            ratios.append(got["otamesh"] / got["nginx"])
        results[connections] = (statistics.median(ours), statistics.median(theirs), statistics.median(ratios), min(ratios), max(ratios))
    return results


def serving():
    data = os.path.join(args.work, "serve-data")
    root = os.path.join(args.work, "www")
    os.makedirs(root, exist_ok=True)
    image = os.path.join(root, "image.bin")
    with open(image, "wb") as f:
        f.write(os.urandom(1 << 20))
    out = subprocess.run([OTAMESH, "cache", "add", "--data-dir", data, image], capture_output=True, text=True, check=True).stdout
    digest = re.search(r"[0-9a-f]{64}", out).group(0)
    agent_port, nginx_port = free_port(), free_port()
    # wrk opens every connection from one address: lift the per-address cap (a quarter of the
    # connection cap, at most 256, against floods), which nginx does not have.
    agent = start_agent(data, agent_port, ["--device-max-connections-per-address", "1024"])
    nginx = start_nginx(root, nginx_port)
    try:
        results = alternate(("http://127.0.0.1:%d/v1/blobs/sha256/%s" % (agent_port, digest)), "http://127.0.0.1:%d/image.bin" % nginx_port,
                            (64, 512))
    finally:
        stop(agent)
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(timeout=20)
    print("serving a 1 MiB image, wrk -t%d -d%ds, %d alternating rounds (nginx: %d workers, sendfile on)" %
          (WORKERS, args.seconds, args.rounds, WORKERS))
    print("| connections | otamesh req/s | nginx req/s | ratio (median) | range |")
    print("|---|---|---|---|---|")
    for c, (o, n, r, lo, hi) in results.items():
        print("| %d | %.0f | %.0f | **%.2f** | %.2f–%.2f |" % (c, o, n, r, lo, hi))


def proc_stats(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    rss = hwm = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return ticks / os.sysconf("SC_CLK_TCK"), rss, hwm


def released(dir, image, path, version, hardware):
    """A data dir holding `image` as `path`, released, published and imported as a gateway gets it."""
    data = os.path.join(dir, "data")
    repo = os.path.join(dir, "repo")
    run = lambda *a: subprocess.run(list(a), capture_output=True, text=True, check=True)
    run(OTAMESH, "release", "init", "--repo", repo)
    run(OTAMESH, "release", "add", "--repo", repo, "--path", path, "--version", version, "--hardware", hardware, image)
    run(OTAMESH, "release", "publish", "--repo", repo, os.path.join(dir, "pub"))
    run(OTAMESH, "export", "--published", os.path.join(dir, "pub"), os.path.join(dir, "b.tar"))
    run(OTAMESH, "import", "--data-dir", data, "--root", os.path.join(dir, "pub/metadata/1.root.json"), os.path.join(dir, "b.tar"))
    return data


def poll_fleet(agent, port, family, extra=()):
    """devicesim's fleet polling once a second: its summary, the agent's CPU share and RSS."""
    cpu0, _, _ = proc_stats(agent.pid)
    t0 = time.time()
    sim = subprocess.run([DEVICESIM, "run", "--family", family, "--count", str(args.devices), "--interval", "1",
                          "--polls", str(args.polls), "--version", "1.0.0", "--quiet",
                          "--gateway", "http://127.0.0.1:%d" % port, *extra], capture_output=True, text=True)
    elapsed = time.time() - t0
    cpu1, rss, hwm = proc_stats(agent.pid)
    summary = None
    for line in sim.stdout.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if obj.get("summary"):
            summary = obj
    if not summary:
        raise SystemExit("devicesim gave no summary: %s %s" % (sim.stdout[-2000:], sim.stderr[-2000:]))
    if summary.get("failures"):
        raise SystemExit("devicesim polls failed: %s" % summary)
    print("%d %s devices polling once a second for %d polls each (%.0f s)" % (args.devices, family, args.polls, elapsed))
    print("| polls | p50 ms | p99 ms | agent CPU (% of one core) | agent RSS now / peak MB |")
    print("|---|---|---|---|---|")
    print("| %d | %.2f | %.2f | %.1f | %.1f / %.1f |" % (summary.get("polls", 0), summary.get("p50_ms", 0), summary.get("p99_ms", 0),
                                                     100 * (cpu1 - cpu0) / elapsed, rss / 1024, hwm / 1024))


def polling():
    dir = os.path.join(args.work, "poll")
    os.makedirs(dir, exist_ok=True)
    image = os.path.join(dir, "fw.bin")
    subprocess.run([DEVICESIM, "make-image", "--chip", "esp32", "--version", "2.0.0", "--size", "200000", "-o", image], check=True,
                   capture_output=True)
    data = released(dir, image, "fleet/fw-2.0.0.bin", "2.0.0", "esp32")
    port = free_port()
    agent = start_agent(data, port)
    try:
        poll_fleet(agent, port, "generic", ["--hardware", "esp32"])
    finally:
        stop(agent)


def ddi():
    """hawkBit DDI: the artifact download link vs nginx for a 64 MiB .swu, and 1,000 DDI devices
    (GatewayToken, as a site would) polling."""
    dir = os.path.join(args.work, "ddi")
    root = os.path.join(dir, "www")
    os.makedirs(root, exist_ok=True)
    image = os.path.join(root, "door.swu")
    with open(image, "wb") as f:
        f.write(os.urandom(64 << 20))
    data = released(dir, image, "linux/door/2.0.swu", "2.0", "door")
    token = os.path.join(dir, "gateway-token")
    with open(token, "w") as f:
        f.write("bench-gateway-token\n")
    os.chmod(token, 0o600)
    agent_port, nginx_port = free_port(), free_port()
    agent = start_agent(data, agent_port, ["--ddi-gateway-token-file", token, "--ddi-poll-interval", "1s"])
    nginx = start_nginx(root, nginx_port)
    try:
        # The artifact link a deploymentBase gives (`download-http`), with the device's query.
        results = alternate("http://127.0.0.1:%d/v1/targets/linux/door/2.0.swu?device=door-1" % agent_port,
                            "http://127.0.0.1:%d/door.swu" % nginx_port, (4, 32))
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(timeout=20)
    try:
        print("DDI artifact download, a 64 MiB .swu, wrk -t%d -d%ds, %d alternating rounds (nginx: %d workers, sendfile on)" %
              (WORKERS, args.seconds, args.rounds, WORKERS))
        print("| connections | otamesh MB/s | nginx MB/s | ratio (median) | range |")
        print("|---|---|---|---|---|")
        for c, (o, n, r, lo, hi) in results.items():
            print("| %d | %.0f | %.0f | **%.2f** | %.2f–%.2f |" % (c, o * 64 * 1.048576, n * 64 * 1.048576, r, lo, hi))
        poll_fleet(agent, agent_port, "ddi", ["--hardware", "door", "--gateway-token", "bench-gateway-token"])
    finally:
        stop(agent)


if shutil.which("nginx") is None or shutil.which("wrk") is None:
    raise SystemExit("nginx and wrk are needed (make bench installs them)")
if args.only == "ddi":
    ddi()
elif args.only == "serving":
    serving()
else:
    serving()
    if not args.skip_polling:
        polling()
    ddi()
