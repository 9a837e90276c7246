#!/usr/bin/env bash
# What validity proofs cost a round: the round benchmark (3 release nodes and one load
# generator, 500 ms rounds, S = C/14 slots of 256 B, 5% of clients start a message each
# round) at C = 100 and 1,000 clients, with this checkout and with a baseline commit
# without proofs (round protocol v2 as it was), both built here and run alternately in
# the same run, REPEAT times each. Writes docs/bench/proofs.md.
#
#   scripts/bench-proofs.sh                       # baseline e36fdb2, 2 runs each, 30 s
#   BENCH_BASE=<rev> BENCH_REPEAT=3 BENCH_SECONDS=20 scripts/bench-proofs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BENCH_BASE:-e36fdb2}
REPEAT=${BENCH_REPEAT:-2}
SECS=${BENCH_SECONDS:-30}
CLIENTS=${BENCH_CLIENTS:-"100 1000"}
BASE_DIR=${BENCH_BASE_DIR:-/tmp/chorus-bench-base}
WORK=$(mktemp -d /tmp/chorus-proofs.XXXXXX)
. scripts/lib/cluster.sh
trap 'stop_nodes; rm -rf "$WORK"' EXIT

# The baseline: a worktree of BASE with its own target folder (kept between runs).
if [ ! -d "$BASE_DIR/src" ]; then
  mkdir -p "$BASE_DIR"
  git worktree add --detach "$BASE_DIR/src" "$BASE" >/dev/null
fi
git -C "$BASE_DIR/src" checkout -q --detach "$BASE"
(cd "$BASE_DIR/src" && CARGO_TARGET_DIR="$BASE_DIR/target" \
  cargo build -q --release -p node -p keys -p tests --bin node --bin keygen --bin loadgen)
cargo build -q --release -p node -p keys -p tests --bin node --bin keygen --bin loadgen

# run BIN_DIR C: one cluster + loadgen; prints the loadgen JSON line.
run() {
  local bin=$1 c=$2
  local s=$(( c / 14 )); [ "$s" -lt 16 ] && s=16
  start_cluster "$bin" "$s"
  "$bin/loadgen" --cluster "$WORK/c/cluster.toml" --clients "$c" --seconds "$SECS"
  stop_nodes
}

RESULTS="$WORK/results.txt"
: >"$RESULTS"
for C in $CLIENTS; do
  for k in $(seq 1 "$REPEAT"); do
    # Alternate which goes first, so drift on the machine falls on both.
    if [ $(( k % 2 )) = 1 ]; then order="base proofs"; else order="proofs base"; fi
    for which in $order; do
      if [ "$which" = base ]; then bin="$BASE_DIR/target/release"; else bin=./target/release; fi
      line=$(run "$bin" "$C")
      echo "== C=$C $which run $k: $line"
      echo "$which $C $line" >>"$RESULTS"
    done
  done
done

python3 - "$RESULTS" "$BASE" "$REPEAT" "$SECS" <<'EOF' >docs/bench/proofs.md
import json, statistics, sys
path, base, repeat, secs = sys.argv[1:5]
rows = {}
for line in open(path):
    which, c, js = line.split(" ", 2)
    rows.setdefault((int(c), which), []).append(json.loads(js))
def med(rs, key):
    return statistics.median(r[key] for r in rs)
print("# Validity proofs: what they cost a round\n")
print(f"`scripts/bench-proofs.sh` (release; 3 nodes and the load generator on one 2-core machine;")
print(f"500 ms rounds; S = C/14 slots of 256 B; {secs} s measured per run; medians of {repeat} runs")
print(f"each, run alternately). Baseline: commit `{base}` (round protocol v2, no proofs), built")
print("and run in the same run.\n")
print("| clients | build | p50 ms | p99 ms | first try | in round | msgs/s | rounds/s | upload B/client/round |")
print("|---|---|---|---|---|---|---|---|---|")
for c in sorted({k[0] for k in rows}):
    for which in ("base", "proofs"):
        rs = rows.get((c, which), [])
        if not rs:
            continue
        print(f"| {c} | {'without proofs' if which == 'base' else 'with proofs'} | {med(rs,'p50_ms'):.0f} | {med(rs,'p99_ms'):.0f} | "
              f"{100*med(rs,'first_try_rate'):.1f}% | {100*med(rs,'in_round_rate'):.1f}% | {med(rs,'msgs_per_sec'):.1f} | "
              f"{med(rs,'rounds_per_sec'):.2f} | {med(rs,'bytes_per_client_round'):.0f} |")
print()
for c in sorted({k[0] for k in rows}):
    b, p = rows.get((c, "base")), rows.get((c, "proofs"))
    if b and p:
        print(f"- {c} clients: p50 ratio {med(p,'p50_ms')/med(b,'p50_ms'):.2f}, p99 ratio {med(p,'p99_ms')/med(b,'p99_ms'):.2f}, "
              f"rounds/s ratio {med(p,'rounds_per_sec')/med(b,'rounds_per_sec'):.2f} (with / without proofs).")
EOF
cat docs/bench/proofs.md
