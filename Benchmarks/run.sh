#!/usr/bin/env bash
# Measures otamesh against real peers in one run and prints ratios (peer time / otamesh time:
# above 1.0 means otamesh is faster). Release build; best of N runs each.
#   Benchmarks/run.sh [RUNS]      (needs nginx and wrk: make bench installs them)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"
# Static Swift stdlib, as shipped (make release): ~9 ms process start instead of ~15 ms.
swift build -c release --static-swift-stdlib --scratch-path .build-static >/dev/null
BIN="$(swift build -c release --static-swift-stdlib --scratch-path .build-static --show-bin-path)"
WORK="$(mktemp -d /tmp/otamesh-bench-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
python3 Benchmarks/compare.py --bin "$BIN" --work "$WORK" --runs "$RUNS"
# Device serving vs nginx (wrk, alternating rounds) and 1,000 polling devices.
python3 Benchmarks/serve.py --bin "$BIN" --work "$WORK" --rounds "$RUNS"
# Configuration filesystem images vs spiffsgen.py and littlefs-python (SPIFFSGEN=path, see the script).
python3 Benchmarks/fs_compare.py --bin "$BIN" --work "$WORK" --runs "$RUNS"
