#!/usr/bin/env bash
# Round benchmark: 3 release nodes and one load generator running C simulated clients,
# C in {100, 1000}; 5% of clients start a message each round; 500 ms rounds (or
# BENCH_ROUND_MS).
# Writes docs/bench/rounds.csv, docs/bench/rounds.md and docs/bench/rounds.png.
#
#   scripts/bench.sh                  # full run (about 30 s per C)
#   BENCH_SECONDS=10 BENCH_CLIENTS="10 100" BENCH_ROUND_MS=250 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${BENCH_SECONDS:-30}
CLIENTS=${BENCH_CLIENTS:-"100 1000"}
ROUND_MS=${BENCH_ROUND_MS:-500}
WORK=$(mktemp -d /tmp/chorus-rounds.XXXXXX)
PIDS=()
stop_nodes() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}
trap 'stop_nodes; rm -rf "$WORK"' EXIT

FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
if [ ! -f "$FONT" ]; then
  echo "installing fonts-dejavu-core for the plot"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq fonts-dejavu-core >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq fonts-dejavu-core >/dev/null; fi
fi

cargo build -q --release -p node -p keys -p tests --bin node --bin keygen --bin loadgen --bin plot_bench

mkdir -p docs/bench
CSV=docs/bench/rounds.csv
echo "clients,slots,p50_ms,p99_ms,msgs_per_sec,rounds_per_sec,first_try_rate,in_round_rate,bytes_per_client_round,avg_participants,server_cpu_s,server_peak_rss_mb" >"$CSV"
for C in $CLIENTS; do
  # Message region: S x 256 bytes, about 1.4x what the expected senders (5% of C, each
  # asking for a 227-byte slot) need; slots are reserved, so they never collide. R = 3S
  # reservation cells (the default) decode about 97% of reservations at the first try.
  S=$(( C / 14 )); [ "$S" -lt 16 ] && S=16
  rm -rf "$WORK/c"
  ./target/release/keygen cluster --servers 3 --out "$WORK/c" --base-port 17500 \
    --round-ms "$ROUND_MS" --slots "$S" --slot-bytes 256 --min-anonymity-set 3 >/dev/null
  for i in 0 1 2; do
    RUST_LOG=warn ./target/release/node --config "$WORK/c/node-$i.toml" >"$WORK/node-$i.log" 2>&1 &
    PIDS+=($!)
  done
  for _ in $(seq 1 150); do
    curl -s --max-time 1 http://127.0.0.1:17600/readyz | grep -q ready && break
    sleep 0.2
  done
  echo "== C=$C (S=$S)"
  result=$(./target/release/loadgen --cluster "$WORK/c/cluster.toml" --clients "$C" --seconds "$SECS")
  echo "$result"
  # Server CPU seconds (user+system) and peak RSS, summed / maxed over the 3 nodes.
  tick=$(getconf CLK_TCK)
  cpu=0; rss=0
  for p in "${PIDS[@]}"; do
    read -r ut st < <(awk '{print $14, $15}' "/proc/$p/stat")
    cpu=$(( cpu + ut + st ))
    r=$(awk '/VmHWM/ {print $2}' "/proc/$p/status")
    [ "$r" -gt "$rss" ] && rss=$r
  done
  stop_nodes
  python3 - "$result" "$cpu" "$tick" "$rss" >>"$CSV" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); cpu = int(sys.argv[2]) / int(sys.argv[3]); rss = int(sys.argv[4]) / 1024
print(",".join(str(x) for x in [r["clients"], r["slots"], round(r["p50_ms"], 1), round(r["p99_ms"], 1),
      round(r["msgs_per_sec"], 2), round(r["rounds_per_sec"], 2), round(r["first_try_rate"], 3),
      round(r["in_round_rate"], 3), r["bytes_per_client_round"], round(r["avg_participants"], 1), round(cpu, 1), round(rss, 1)]))
PY
done

./target/release/plot_bench "$CSV" docs/bench/rounds.png "$FONT"
python3 - "$CSV" "$SECS" "$ROUND_MS" >docs/bench/rounds.md <<'PY'
import csv, sys, datetime
rows = list(csv.DictReader(open(sys.argv[1])))
print("# Round benchmark\n")
print(f"Command: `scripts/bench.sh` (release build; {sys.argv[2]} s measured per row after 3 warm-up rounds).")
print("3 servers (n=3, t=1) and one load-generator process running C protocol-complete clients on")
print("127.0.0.1 of one 2-core machine; every client submits every round; 5% start a 64-byte message")
print(f"each round; {sys.argv[3]} ms rounds; a message region of S x 256 bytes laid out into reserved slots")
print("(S = C/14, at least 16; 3S reservation cells). Latency is from queueing a message to its")
print("recipient decrypting it (the reservation a round ahead and any retry included). Server CPU is user+system")
print("seconds over the whole run summed across the 3 nodes; RSS is the largest node's peak.")
print("In-round is the share of submissions every server held (so the round included them);")
print("bytes/client/round is what a client uploads to all servers together.\n")
print("| clients | slots | p50 ms | p99 ms | msgs/s | rounds/s | first-try | in-round | bytes/client/round | anonymity set | server CPU s | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f'| {r["clients"]} | {r["slots"]} | {r["p50_ms"]} | {r["p99_ms"]} | {r["msgs_per_sec"]} | {r["rounds_per_sec"]} | {r["first_try_rate"]} | {r["in_round_rate"]} | {r["bytes_per_client_round"]} | {r["avg_participants"]} | {r["server_cpu_s"]} | {r["server_peak_rss_mb"]} |')
print(f"\n![latency vs clients](rounds.png)\n\nRun on {datetime.date.today()}.")
PY
cat docs/bench/rounds.md
