"""Times otamesh operations against their real peers in one run; called by run.sh."""
import argparse, glob, os, shutil, subprocess, sys, time

def best(cmd, runs, setup=None, stdout=subprocess.DEVNULL):
    times = []
    for _ in range(runs):
        if setup: setup()
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=stdout, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin"); ap.add_argument("--work"); ap.add_argument("--runs", type=int)
    a = ap.parse_args()
    bench, otamesh, work, runs = f"{a.bin}/otamesh-bench", f"{a.bin}/otamesh", a.work, a.runs
    rows = []

    # 1. Ingest 256 MiB (hash + write + fsync + commit) vs sha256sum (hash only).
    src = os.path.join(work, "ingest.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(256 << 20))
    subprocess.run(["cat", src], stdout=subprocess.DEVNULL, check=True)  # page cache warm for both
    store = os.path.join(work, "store")
    def fresh_store():
        shutil.rmtree(store, ignore_errors=True)
    peer = best(["sha256sum", src], runs)
    ours = best([bench, "ingest", src, store], runs, setup=fresh_store)
    rows.append(("ingest 256 MiB", "sha256sum", peer, ours, 0.9))
    os.remove(src); fresh_store()

    # 2. xz decode of a 64 MiB firmware-like payload (system binaries), single-block stream.
    payload = os.path.join(work, "payload.bin")
    with open(payload, "wb") as out:
        left = 64 << 20
        for path in sorted(glob.glob("/usr/bin/*") + glob.glob("/usr/lib/x86_64-linux-gnu/*.so*")):
            if left <= 0: break
            try:
                with open(path, "rb") as f: data = f.read(left)
            except OSError:
                continue
            out.write(data); left -= len(data)
    subprocess.run(["xz", "-T1", "-6", "-k", "-f", payload], check=True)
    xzfile = payload + ".xz"
    peer = best(["xz", "-dc", xzfile], runs)
    ours = best([bench, "xz-decode", xzfile], runs)
    rows.append((f"xz decode 64 MiB ({os.path.getsize(xzfile) >> 20} MiB .xz)", "xz -dc", peer, ours, 0.95))

    # 3. image inspect, per image: whole process vs esptool image-info, and in-process µs.
    fixtures = ["Tests/Fixtures/esp/esp32s3.bin", "Tests/Fixtures/esp/esp8266-v2-user1.bin"]
    peer = best([sys.executable, "-m", "esptool", "image-info", fixtures[0]], runs)
    ours = best([otamesh, "image", "inspect", fixtures[0]], runs)
    rows.append(("image inspect (process, ESP32-S3)", "esptool image-info", peer, ours, None))

    print(f"{'operation':<42} {'peer':<20} {'peer s':>9} {'otamesh s':>10} {'ratio':>7}  goal")
    for name, peer_name, p, o, goal in rows:
        ratio = p / o
        verdict = "" if goal is None else (f">= {goal}  {'ok' if ratio >= goal else 'MISSED'}")
        print(f"{name:<42} {peer_name:<20} {p:>9.4f} {o:>10.4f} {ratio:>7.2f}  {verdict}")

    print("\nin-process image inspect (µs per image, 200 iterations):")
    images = ["Tests/Fixtures/esp/esp32s3.bin", "Tests/Fixtures/esp/esp8266-v2-user1.bin",
              "Tests/Fixtures/wm/w800_app.img", "Tests/Fixtures/wm/w800_app_ota.img", "Tests/Fixtures/mcuboot/rsa-2048.bin"]
    big = os.path.join(work, "big-esp32.bin")
    subprocess.run([f"{a.bin}/otamesh-devicesim", "make-image", "--chip", "esp32s3", "--version", "1.0.0",
                    "--size", str(4 << 20), "-o", big], check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run([bench, "inspect"] + images + [big], check=True, capture_output=True, text=True).stdout
    for line in out.strip().splitlines():
        path, size, micros, valid = line.split("\t")
        print(f"  {os.path.basename(path):<32} {int(size):>9} bytes {float(micros):>10.1f} µs  valid={valid}")

if __name__ == "__main__":
    main()
