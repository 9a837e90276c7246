#!/usr/bin/env bash
# Committed-write throughput and latency: a 3-node Chorus cluster against a 3-node etcd
# cluster, both on loopback, same payloads and writer counts, in one run (release build).
#
#   scripts/bench-consensus.sh            # writes docs/bench/consensus.md
#   BENCH_SECONDS=5 scripts/bench-consensus.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_CELL=${BENCH_SECONDS:-8}
WORK=$(mktemp -d /tmp/chorus-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v etcd >/dev/null; then
  echo "installing etcd-server (Debian package)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq etcd-server >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq etcd-server >/dev/null; fi
  # The package starts a system etcd on 2379; we use our own ports, but stop it to be quiet.
  systemctl stop etcd 2>/dev/null || true
fi

cargo build -q --release -p node -p keys -p tests --bin node --bin keygen --bin bench_consensus

echo "starting 3 Chorus nodes"
./target/release/keygen cluster --servers 3 --out "$WORK/chorus" --base-port 17300 >/dev/null
for i in 0 1 2; do
  RUST_LOG=warn ./target/release/node --config "$WORK/chorus/node-$i.toml" >"$WORK/chorus-$i.log" 2>&1 &
  PIDS+=($!)
done

echo "starting 3 etcd members"
cluster="e0=http://127.0.0.1:17480,e1=http://127.0.0.1:17481,e2=http://127.0.0.1:17482"
for i in 0 1 2; do
  etcd --name "e$i" --data-dir "$WORK/etcd-$i" \
    --listen-client-urls "http://127.0.0.1:1747$i" --advertise-client-urls "http://127.0.0.1:1747$i" \
    --listen-peer-urls "http://127.0.0.1:1748$i" --initial-advertise-peer-urls "http://127.0.0.1:1748$i" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token chorus-bench \
    --log-level error >"$WORK/etcd-$i.log" 2>&1 &
  PIDS+=($!)
done

wait_ready() { # url pattern
  for _ in $(seq 1 150); do
    if curl -s --max-time 1 "$1" | grep -q "$2"; then return 0; fi
    sleep 0.2
  done
  echo "not ready: $1" >&2; exit 1
}
wait_ready http://127.0.0.1:17400/readyz ready
wait_ready http://127.0.0.1:17470/health true

EPS=127.0.0.1:17470,127.0.0.1:17471,127.0.0.1:17472
rows=()
for payload in 256 16384; do
  for c in 1 16 64; do
    ch=$(./target/release/bench_consensus --target chorus --cluster "$WORK/chorus/cluster.toml" \
      --payload "$payload" --concurrency "$c" --seconds "$SECONDS_PER_CELL" 2>>"$WORK/bench.err")
    et=$(./target/release/bench_consensus --target etcd --endpoints "$EPS" \
      --payload "$payload" --concurrency "$c" --seconds "$SECONDS_PER_CELL" 2>>"$WORK/bench.err")
    rows+=("$(python3 - "$ch" "$et" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ratio = a["ops_per_sec"] / b["ops_per_sec"] if b["ops_per_sec"] else float("nan")
print(f'| {a["payload"]} B | {a["concurrency"]} | {a["ops_per_sec"]:.0f} | {a["p50_ms"]:.2f} / {a["p99_ms"]:.2f} '
      f'| {b["ops_per_sec"]:.0f} | {b["p50_ms"]:.2f} / {b["p99_ms"]:.2f} | {ratio:.2f} |')
PY
)")
    echo "${rows[-1]}"
  done
done

out=docs/bench/consensus.md
mkdir -p docs/bench
{
  echo "# Consensus benchmark: Chorus vs etcd"
  echo
  echo "Command: \`scripts/bench-consensus.sh\` (release build, ${SECONDS_PER_CELL} s per cell after a 1 s warm-up)."
  echo "Both clusters: 3 members on 127.0.0.1 of one 2-core machine, fsync on every commit"
  echo "(Chorus: redb \`Durability::Immediate\`; etcd $(etcd --version 2>/dev/null | head -1 | awk '{print $3}'): its WAL)."
  echo "Chorus writes are opaque probes through the client protocol (libp2p, Noise), sent"
  echo "round-robin to all servers (followers forward to the leader); etcd writes are puts"
  echo "through its HTTP/JSON gateway, one keep-alive connection per writer, spread over members."
  echo
  echo "| payload | writers | Chorus ops/s | Chorus p50 / p99 ms | etcd ops/s | etcd p50 / p99 ms | ratio Chorus/etcd |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Run on $(date -u +%Y-%m-%d)."
} >"$out"
echo
cat "$out"
if [ -s "$WORK/bench.err" ]; then echo; echo "errors during the run:"; sort "$WORK/bench.err" | uniq -c | head; fi
