#!/usr/bin/env python3
"""Configuration filesystem images: otamesh's builders against the real implementations, in one run.

SPIFFS against ESP-IDF's spiffsgen.py (its SpiffsFS, in-process), LittleFS against littlefs-python
(the littlefs C library, in-process), per image built, best of --runs. Each side builds from files
already read (spiffsgen reads each file itself when it adds it: page-cached, a few µs). The SPIFFS
images must be byte-identical; the LittleFS images are mounted back with littlefs-python.

spiffsgen.py is not in this repository: give --spiffsgen PATH (or SPIFFSGEN=PATH), else it is read
from a fetched esp-idf mirror (/work/.mirror/espressif+esp-idf/repo), else the SPIFFS rows are
skipped with the reason. It imports esp_pylib (pip install esp-pylib).

  python3 Benchmarks/fs_compare.py --bin BUILD_BIN_DIR --work DIR [--runs 5]
"""
import argparse, importlib.util, os, random, subprocess, sys, time

MIRROR = "/work/.mirror/espressif+esp-idf/repo"


def spiffsgen_module(path, work):
    if not path and os.path.isdir(MIRROR):
        path = os.path.join(work, "spiffsgen.py")
        with open(path, "wb") as out:
            subprocess.run(["git", "--git-dir", MIRROR, "show", "HEAD:components/spiffs/spiffsgen.py"], stdout=out, check=True)
    if not path or not os.path.exists(path):
        return None, "spiffsgen.py not available (--spiffsgen PATH, or SPIFFSGEN=esp-idf/components/spiffs/spiffsgen.py)"
    spec = importlib.util.spec_from_file_location("spiffsgen", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as error:
        return None, f"spiffsgen.py does not load: {error} (pip install esp-pylib)"
    return module, None


def datasets(work):
    """(name, directory, image size): one settings file (what a gateway builds per device), and a
    web UI's assets (what an app's filesystem also holds)."""
    rng = random.Random(20)
    one = os.path.join(work, "fs-config")
    os.makedirs(one, exist_ok=True)
    with open(os.path.join(one, "config.json"), "w") as f:
        f.write('{"config-id":"cfg-0123456789abcdef","ssid":"lab-net","password":"' + "x" * 24 + '","broker":"mqtt.local","interval":30}\n' * 4)
    web = os.path.join(work, "fs-web")
    os.makedirs(web, exist_ok=True)
    for n in range(40):
        size = rng.randint(200, 30000)
        with open(os.path.join(web, f"asset{n:02d}.js"), "wb") as f:
            f.write(bytes(rng.getrandbits(7) + 32 for _ in range(size)))
    return [("1 settings file (0.4 KB), 128 KiB", one, 0x20000), ("40 web assets (0.6 MB), 1 MiB", web, 0x100000)]


def files_of(directory):
    names = sorted(os.listdir(directory))
    return [(name, open(os.path.join(directory, name), "rb").read()) for name in names]


def best_of(runs, iterations, build):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(iterations):
            image = build()
        times.append((time.perf_counter() - start) / iterations)
    return min(times) * 1e6, image


def ours(bench, kind, size, directory, runs, iterations, out):
    micros = []
    for _ in range(runs):
        result = subprocess.run(
            [bench, "fs-build", "--kind", kind, "--size", str(size), "--iterations", str(iterations), "--out", out, directory],
            check=True, capture_output=True, text=True)
        micros.append(float(result.stdout.split("\t")[0]))
    return min(micros), open(out, "rb").read()


def spiffsgen_build(module, size, directory):
    config = module.SpiffsBuildConfig(
        256, module.SPIFFS_PAGE_IX_LEN, 4096, module.SPIFFS_BLOCK_IX_LEN, 4, 32, module.SPIFFS_OBJ_ID_LEN, module.SPIFFS_SPAN_IX_LEN,
        True, True, "little", True, True, False)
    names = sorted(os.listdir(directory))

    def build():
        fs = module.SpiffsFS(size, config)
        for name in names:
            fs.create_file("/" + name, os.path.join(directory, name))
        return fs.to_binary()
    return build


def littlefs_build(size, files):
    import littlefs

    def build():
        fs = littlefs.LittleFS(block_size=4096, block_count=size // 4096, name_max=255, disk_version=0x00020000)
        for name, data in files:
            with fs.open(name, "wb") as f:
                f.write(data)
        return bytes(fs.context.buffer)
    return build


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--spiffsgen", default=os.environ.get("SPIFFSGEN"))
    a = ap.parse_args()
    bench = os.path.join(a.bin, "otamesh-bench")
    module, why = spiffsgen_module(a.spiffsgen, a.work)
    rows = []
    for name, directory, size in datasets(a.work):
        iterations = 200 if size <= 0x20000 else 20
        files = files_of(directory)
        out = os.path.join(a.work, "ours.img")
        if module:
            peer, theirs = best_of(a.runs, iterations, spiffsgen_build(module, size, directory))
            mine, image = ours(bench, "spiffs", size, directory, a.runs, iterations, out)
            same = "identical bytes" if image == theirs else "BYTES DIFFER"
            rows.append((f"SPIFFS: {name}", "spiffsgen.py", peer, mine, same))
        else:
            rows.append((f"SPIFFS: {name}", "spiffsgen.py", None, None, why))
        peer, _ = best_of(a.runs, iterations, littlefs_build(size, files))
        mine, image = ours(bench, "littlefs", size, directory, a.runs, iterations, out)
        import littlefs
        fs = littlefs.LittleFS(block_size=4096, block_count=size // 4096, mount=False)
        fs.context.buffer[:] = image
        fs.mount()
        readable = all(fs.open(n, "rb").read() == d for n, d in files)
        rows.append((f"LittleFS: {name}", "littlefs-python", peer, mine, "mounted by littlefs-python, files equal" if readable else "UNREADABLE"))

    print(f"{'image build (in-process, per image)':<50} {'peer':<16} {'peer µs':>9} {'otamesh µs':>11} {'ratio':>7}  check")
    failed = False
    for name, peer_name, peer, mine, check in rows:
        if peer is None:
            print(f"{name:<50} {peer_name:<16} {'-':>9} {'-':>11} {'-':>7}  skipped: {check}")
            continue
        failed |= check.isupper() or "DIFFER" in check
        print(f"{name:<50} {peer_name:<16} {peer:>9.1f} {mine:>11.1f} {peer / mine:>7.1f}  {check}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
