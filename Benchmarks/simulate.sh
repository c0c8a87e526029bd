#!/usr/bin/env bash
# Gossip and rollout simulator figures (docs/benchmarks.md, "Gossip simulator", "Rollout simulator"): the issue's node counts and
# loss rates, release build. Deterministic: the same seed prints the same tables byte for byte;
# wall time and peak memory of each experiment go to stderr (and OUT.time).
#   Benchmarks/simulate.sh [SEED] [OUT]      (defaults: 1, simulate-SEED.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
SEED="${1:-1}"
OUT="${2:-simulate-$SEED.txt}"
swift build -c release --product otamesh --scratch-path .build-release >/dev/null
BIN="$(swift build -c release --product otamesh --scratch-path .build-release --show-bin-path)/otamesh"
SIM=("$BIN" lab simulate)
TIME="$OUT.time"
: >"$TIME"
run() {
    /usr/bin/time -f "  $*: %e s wall, %M KiB peak" -a -o "$TIME" "${SIM[@]}" --seed "$SEED" "$@"
}
{
    # Rounds to 99.9 % and bytes/s/node: the issue's N = 100, 1,000, 10,000 at 0 % and 10 % loss.
    run --experiment dissemination --nodes 100,1000,10000 --loss 0,10
    echo
    # Failure detection (120 s false-positive soak) and partition/heal: views diverge, so N ≤ 1,000.
    run --experiment failure --nodes 100,1000 --loss 0,10
    echo
    # 20 s: longer than the suspicion timeout (each side declares the other dead); with the
    # shell's seed rejoin, without it, and 5 s (shorter: suspicions are refuted).
    run --experiment partition --nodes 100,1000 --loss 0,10
    echo
    run --experiment partition --nodes 100,1000 --loss 0 --rejoin off
    echo
    run --experiment partition --nodes 100,1000 --loss 0 --partition 5s
    echo
    # Staged rollout (issue 6, docs/benchmarks.md "Rollout simulator"): 1,000 gateways x 100
    # devices, a failing floor, 10 % of the gateways cut off for 60 s; the engine's rule, then
    # stageDue counting every known member.
    run --experiment rollout --gateways 1000 --devices 100 --loss 0,10
    echo
    run --experiment rollout --gateways 1000 --devices 100 --loss 10 --stage-members known
} | tee "$OUT"
cat "$TIME" >&2
