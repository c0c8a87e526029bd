#!/usr/bin/env python3
"""Push benchmark (issue 7): one gateway pushes a 1 MiB image to 200 projectMM twins on a lab
segment shaped to 100 Mbit/s (Benchmarks/push-200.yaml), once per rollout concurrency. Reports
pushes per minute and the push wave's aggregate rate against the link's limit. Root only (lab).

    python3 Benchmarks/push_bench.py --bin .build/debug [--concurrency 8,16,32,64] [--runs 1]

The wave is timed from the first push started to the last device confirmed (the gateway's own
outcome records, in the lab's rollouts.json); every device must succeed or the run fails.
"""
import argparse, json, os, re, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
LINK_MBIT = 100.0


def run(binary_dir, concurrency, work, limits=True):
    text = open(os.path.join(HERE, "push-200.yaml")).read()
    text = re.sub(r"concurrency: \d+", f"concurrency: {concurrency}", text)
    size = int(re.search(r"size: (\d+)", text).group(1))
    count = int(re.search(r"count: (\d+)", text).group(1))
    topology = os.path.join(work, f"push-200-c{concurrency}.yaml")
    open(topology, "w").write(text)
    state = os.path.join(work, f"state-c{concurrency}")
    environment = dict(os.environ)
    if limits:
        # The gateway's push limits raised to the rollout's concurrency (otherwise: the defaults).
        environment["OTAMESH_PUSH_MAX_CONCURRENT"] = str(concurrency)
        environment["OTAMESH_PUSH_MAX_PER_SEGMENT"] = str(concurrency)
    result = subprocess.run([os.path.join(binary_dir, "otamesh"), "lab", "run", topology, "--state", state],
                            capture_output=True, text=True, timeout=1200, env=environment)
    if result.returncode != 0:
        sys.exit(f"lab run failed (concurrency {concurrency}):\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    record = json.load(open(os.path.join(state, "rollouts.json")))
    outcomes = record["rollouts"][0]["outcomes"]
    succeeded = [o for o in outcomes if o["phase"] == "succeeded"]
    if len(succeeded) != count:
        sys.exit(f"only {len(succeeded)}/{count} devices succeeded (concurrency {concurrency})")
    seconds = (max(o["updated"] for o in outcomes) - min(o["started"] for o in outcomes)) / 1000
    mbit = count * size * 8 / seconds / 1e6
    return seconds, count / seconds * 60, mbit


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True, help="directory holding otamesh and otamesh-devicesim")
    parser.add_argument("--concurrency", default="8,16,32,64")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--defaults", action="store_true", help="also one run with the gateway's default push limits")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the push benchmark runs a lab: root only")
    print(f"| pushes in flight | wave (s) | pushes/min | aggregate Mbit/s | of the {LINK_MBIT:.0f} Mbit/s link |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="otamesh-push-bench-") as work:
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            best = min((run(args.bin, concurrency, work) for _ in range(args.runs)), key=lambda r: r[0])
            seconds, per_minute, mbit = best
            print(f"| {concurrency} | {seconds:.1f} | {per_minute:.0f} | {mbit:.1f} | {mbit / LINK_MBIT:.2f} |", flush=True)
        if args.defaults:
            seconds, per_minute, mbit = run(args.bin, 64, work, limits=False)
            print(f"| defaults (16 per segment) | {seconds:.1f} | {per_minute:.0f} | {mbit:.1f} | {mbit / LINK_MBIT:.2f} |", flush=True)


if __name__ == "__main__":
    main()
