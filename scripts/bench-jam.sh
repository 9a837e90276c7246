#!/usr/bin/env bash
# Jamming run: 100 simulated clients on 3 release nodes (500 ms rounds, 16 slots of
# 256 B; 5% of the honest clients start a message each round), 5 of which jam every
# round with one class at a time; a baseline run has the same 5 submit cover instead.
# Each run measures BENCH_SECONDS, then stops new messages and drains for up to 60 s:
# every honest message must be delivered, and honest p99 must stay within 1.5x of the
# baseline's. Prints one line per run and writes docs/bench/jamming.md.
#
#   scripts/bench-jam.sh                    # 30 s per run
#   BENCH_SECONDS=20 BENCH_JAMMERS=5 scripts/bench-jam.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${BENCH_SECONDS:-30}
CLIENTS=${BENCH_CLIENTS:-100}
JAMMERS=${BENCH_JAMMERS:-5}
WORK=$(mktemp -d /tmp/chorus-jam.XXXXXX)
. scripts/lib/cluster.sh
trap 'stop_nodes; rm -rf "$WORK"' EXIT
cargo build -q --release -p node -p keys -p tests --bin node --bin keygen --bin loadgen

RESULTS="$WORK/results.txt"
: >"$RESULTS"
for jam in none random-vector two-slots malformed-reservation unopenable-share bad-proof \
  inconsistent-shares replayed-proof; do
  start_cluster ./target/release 16
  args=(--cluster "$WORK/c/cluster.toml" --clients "$CLIENTS" --seconds "$SECS"
    --drain-seconds 60 --jammers "$JAMMERS")
  [ "$jam" != none ] && args+=(--jam "$jam")
  line=$(./target/release/loadgen "${args[@]}")
  # What the servers counted: exclusions by reason and refusals, from node 0.
  metrics=$(curl -s http://127.0.0.1:17600/metrics | grep -E \
    '^chorus_clients_excluded|^chorus_commands_rejected_total\{reason="(share_does_not_open|cooling_off)"' \
    | tr '\n' ' ')
  echo "== $jam: $line"
  echo "   node 0: $metrics"
  echo "$jam|$line|$metrics" >>"$RESULTS"
  stop_nodes
done

python3 - "$RESULTS" "$CLIENTS" "$JAMMERS" "$SECS" <<'EOF' >docs/bench/jamming.md
import json, re, sys
path, clients, jammers, secs = sys.argv[1:5]
rows = []
for line in open(path):
    jam, js, metrics = line.rstrip("\n").split("|", 2)
    r = json.loads(js)
    m = dict(re.findall(r'reason="([a-z_]+)"\} (\d+)', metrics))
    rows.append((jam, r, m))
base = next((r for j, r, _ in rows if j == "none"), None)
print("# Jamming run\n")
print(f"`scripts/bench-jam.sh` (release; 3 nodes and the load generator on one 2-core machine;")
print(f"500 ms rounds; 16 slots of 256 B): {clients} simulated clients, {jammers} of which jam every")
print(f"round with one class (in the baseline they submit cover); 5% of the honest clients start")
print(f"a message each round; {secs} s measured, then no new messages and up to 60 s to deliver")
print("the rest. Exclusions are node 0's `chorus_clients_excluded{reason}` and refusals its")
print("`chorus_commands_rejected_total{reason}`; a jammer is refused (`cooling_off`) after 3")
print("exclusions.\n")
print("| jammers send | honest delivered | undelivered | p50 ms | p99 ms | p99 / baseline | bad_proof | inconsistent | share_does_not_open | cooling_off | missing |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
ok = True
for jam, r, m in rows:
    ratio = r["p99_ms"] / base["p99_ms"] if base else float("nan")
    if jam != "none":
        ok &= r["undelivered"] == 0 and ratio <= 1.5
    print(f"| {jam} | {r['delivered']} | {r['undelivered']} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {ratio:.2f} | "
          f"{m.get('bad_proof', 0)} | {m.get('inconsistent', 0)} | {m.get('share_does_not_open', 0)} | {m.get('cooling_off', 0)} | {m.get('missing', 0)} |")
print()
print("Every honest message delivered and honest p99 within 1.5x of the baseline in every class: "
      + ("**yes**" if ok else "**no**") + ".")
EOF
cat docs/bench/jamming.md
