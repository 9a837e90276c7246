#!/usr/bin/env bash
# Same-run A/B of the round benchmark: two builds (directories holding `node`, `keygen`
# and `loadgen`), alternated RUNS times at C clients, so both meet the same machine load.
# Prints a markdown table and the new/base ratios of the means.
#
#   scripts/bench-compare.sh BASE_DIR NEW_DIR            # C=100, 30 s, 3 runs each
#   BENCH_CLIENTS=100 BENCH_SECONDS=20 BENCH_RUNS=2 scripts/bench-compare.sh A B
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:?usage: bench-compare.sh BASE_DIR NEW_DIR}
NEW=${2:?usage: bench-compare.sh BASE_DIR NEW_DIR}
C=${BENCH_CLIENTS:-100}
SECS=${BENCH_SECONDS:-30}
RUNS=${BENCH_RUNS:-3}
for d in "$BASE" "$NEW"; do
  for b in node keygen loadgen; do
    [ -x "$d/$b" ] || { echo "missing $d/$b (build with: cargo build --release -p node -p keys -p tests --bin node --bin keygen --bin loadgen)" >&2; exit 2; }
  done
done
WORK=$(mktemp -d /tmp/chorus-abtest.XXXXXX)
. scripts/lib/cluster.sh
trap 'stop_nodes; rm -rf "$WORK"' EXIT
S=$(( C / 5 )); [ "$S" -lt 16 ] && S=16

one() { # $1 = label, $2 = bin dir
  local dir=$2
  start_cluster "$dir" "$S"
  local result
  result=$("$dir/loadgen" --cluster "$WORK/c/cluster.toml" --clients "$C" --seconds "$SECS")
  local tick cpu=0 rss=0
  tick=$(getconf CLK_TCK)
  for p in "${PIDS[@]}"; do
    read -r ut st < <(awk '{print $14, $15}' "/proc/$p/stat")
    cpu=$(( cpu + ut + st ))
    r=$(awk '/VmHWM/ {print $2}' "/proc/$p/status")
    [ "$r" -gt "$rss" ] && rss=$r
  done
  stop_nodes
  python3 - "$1" "$result" "$cpu" "$tick" "$rss" >>"$WORK/rows" <<'PY'
import json, sys
r = json.loads(sys.argv[2]); cpu = int(sys.argv[3]) / int(sys.argv[4]); rss = int(sys.argv[5]) / 1024
print(sys.argv[1], r["p50_ms"], r["p99_ms"], r["msgs_per_sec"], r["first_try_rate"], cpu, rss)
PY
}

for run in $(seq 1 "$RUNS"); do
  echo "== run $run: base" >&2; one base "$BASE"
  echo "== run $run: new" >&2; one new "$NEW"
done
python3 - "$WORK/rows" "$C" "$SECS" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
print(f"C={sys.argv[2]} clients, {sys.argv[3]} s per run, 3 servers, 500 ms rounds\n")
print("| build | p50 ms | p99 ms | msgs/s | first-try | server CPU s | peak RSS MB |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {float(r[1]):.0f} | {float(r[2]):.0f} | {float(r[3]):.2f} | {float(r[4]):.3f} | {float(r[5]):.1f} | {float(r[6]):.1f} |")
cols = ["p50 ms", "p99 ms", "msgs/s", "first-try", "server CPU s", "peak RSS MB"]
mean = lambda which, i: st.mean(float(r[i]) for r in rows if r[0] == which)
print("\n| metric | base mean | new mean | new/base |\n|---|---|---|---|")
for i, c in enumerate(cols, start=1):
    b, n = mean("base", i), mean("new", i)
    print(f"| {c} | {b:.2f} | {n:.2f} | {n / b if b else float('nan'):.2f} |")
PY
