#!/usr/bin/env bash
# Files at 100 online clients: 3 release nodes (500 ms rounds, 16 slots of 256 B), the
# load generator's simulated clients chatting (5% start a message each round), and two
# real clients (chat-cli daemons) of which one sends files to the other with
# `chat-cli send-file`. Cases, each on a fresh cluster:
#   no-file-slots   round.file_slots = 0, no file (what chat cost before attachments)
#   idle            the default file slot (1 of 8 KiB a round), no file moving
#   100KiB, 1MiB, 8MiB   the default file slot, files of that size sent one after
#                   another through the measured window, which is long enough for at
#                   least one (1MiB: 150 s, 8MiB: 720 s); three silent clients stay
#                   online besides, so a file that outlasts it still finishes
# For each: the file throughput (content bytes from `send-file` to the recipient
# holding the checked file, in KiB/s and rounds per file) and the other senders'
# message latency over the same window against both baselines. Keeps each case's
# result in docs/bench/files.raw (a case run again replaces its line) and writes
# docs/bench/files.md from it.
#
#   scripts/bench-files.sh                  # 60 s windows
#   BENCH_SECONDS=30 BENCH_CASES="idle 1MiB" scripts/bench-files.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${BENCH_SECONDS:-60}
CLIENTS=${BENCH_CLIENTS:-100}
CASES=${BENCH_CASES:-"no-file-slots idle 100KiB 1MiB 8MiB"}
WORK=$(mktemp -d /tmp/chorus-files.XXXXXX)
. scripts/lib/cluster.sh
trap 'stop_nodes; rm -rf "$WORK"' EXIT
cargo build -q --release -p node -p keys -p tests -p client \
  --bin node --bin keygen --bin loadgen --bin chat-cli
B=./target/release
cli() { local j=$1; shift; "$B/chat-cli" --config "$WORK/c/client-$j.toml" "$@"; }
open_round() { curl -s --max-time 2 http://127.0.0.1:17600/status | python3 -c \
  'import json,sys; print(json.load(sys.stdin)["round"])'; }
received() { cli 2 --json files | python3 -c \
  'import json,sys; print(sum(1 for l in sys.stdin if json.loads(l).get("state") == "received"))'; }

start() { # file slots: "default" or a number; then two registered daemons
  if [ "$1" = default ]; then unset CLUSTER_FILE_SLOTS; else CLUSTER_FILE_SLOTS=$1; fi
  CLUSTER_CLIENTS=2 start_cluster "$B" 16
  for j in 1 2; do
    for _ in $(seq 1 40); do cli "$j" register "client-$j" >/dev/null 2>&1 && break; sleep 0.5; done
    cli "$j" listen >"$WORK/daemon-$j.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do [ -S "$WORK/c/data/client-$j/chat.sock" ] && break; sleep 0.2; done
  done
}

RESULTS=docs/bench/files.raw
touch "$RESULTS"
for case in $CASES; do
  case $case in
    no-file-slots) slots=0 size=0 ;;
    idle) slots=default size=0 ;;
    100KiB) slots=default size=$((100 * 1024)) ;;
    1MiB) slots=default size=$((1024 * 1024)) ;;
    8MiB) slots=default size=$((8 * 1024 * 1024)) ;;
    *) echo "unknown case $case" >&2; exit 1 ;;
  esac
  start "$slots"
  window=$SECS
  [ "$case" = 1MiB ] && window=$((SECS > 150 ? SECS : 150))
  [ "$case" = 8MiB ] && window=$((SECS > 720 ? SECS : 720))
  "$B/loadgen" --cluster "$WORK/c/cluster.toml" --clients "$CLIENTS" --seconds "$window" \
    --drain-seconds 30 >"$WORK/loadgen.json" &
  lg=$!
  files=""
  if [ "$size" -gt 0 ]; then
    "$B/loadgen" --cluster "$WORK/c/cluster.toml" --clients 3 --send-fraction 0 \
      --seconds 3600 --seed 2 >/dev/null &
    PIDS+=($!)
    head -c "$size" /dev/urandom >"$WORK/file.bin"
    sleep 3 # the load generator's warm-up
    end=$(($(date +%s) + window))
    n=0
    while :; do
      t0=$(date +%s.%N); r0=$(open_round)
      cli 1 send-file --to client-2 "$WORK/file.bin" >/dev/null
      n=$((n + 1))
      until [ "$(received)" -ge "$n" ]; do sleep 0.5; done
      t1=$(date +%s.%N); r1=$(open_round)
      took=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
      files="$files $took:$((r1 - r0))"
      # Another only if it should end inside the window.
      [ "$(python3 -c "print(int($t1 + $took < $end))")" = 1 ] || break
    done
  fi
  wait "$lg"
  line=$(cat "$WORK/loadgen.json")
  echo "== $case: files${files:- none}; $line"
  grep -v "^$case|" "$RESULTS" >"$WORK/keep" || true
  { cat "$WORK/keep"; echo "$case|$size|$files|$line"; } >"$RESULTS"
  stop_nodes
done

python3 - "$RESULTS" "$CLIENTS" "$SECS" <<'PY' >docs/bench/files.md
import json, sys
path, clients, secs = sys.argv[1:4]
order = ["no-file-slots", "idle", "100KiB", "1MiB", "8MiB"]
rows = []
for line in sorted(open(path), key=lambda l: order.index(l.split("|")[0]) if l.split("|")[0] in order else 99):
    case, size, files, js = line.rstrip("\n").split("|", 3)
    runs = [tuple(float(x) for x in f.split(":")) for f in files.split()]
    rows.append((case, int(size), runs, json.loads(js)))
base = {c: r for c, _, _, r in rows}
print("# Files at 100 online clients\n")
print("`scripts/bench-files.sh` (release; 3 nodes, the load generator and two `chat-cli`")
print(f"daemons on one 2-core machine; 500 ms rounds; 16 slots of 256 B): {clients} simulated")
print("clients chatting (5% start a message each round) while one daemon sends files to the")
print("other with `chat-cli send-file`, one after another, through a measured window of")
print(f"{secs} s (150 s for 1 MiB files, 720 s for 8 MiB, so at least one ends inside it).")
print("Throughput is content bytes over the time")
print("from `send-file` starting to the recipient holding the checked file. Latency is the")
print("simulated clients' messages over the window; `idle` has the default file slot (one of")
print("8 KiB a round) and no file, `no-file-slots` has none (`round.file_slots = 0`).\n")
print("| case | files | s per file | rounds per file | KiB/s | others p50 ms | others p99 ms | p99 / idle | p99 / no-file-slots | upload per client-round |")
print("|---|---|---|---|---|---|---|---|---|---|")
for case, size, runs, r in rows:
    if runs:
        t = sum(x for x, _ in runs) / len(runs)
        rd = sum(y for _, y in runs) / len(runs)
        per, rounds, kib = f"{t:.1f}", f"{rd:.0f}", f"{size / 1024 / t:.1f}"
    else:
        per = rounds = kib = "–"
    def ratio(b):
        return f"{r['p99_ms'] / base[b]['p99_ms']:.2f}" if b in base else "–"
    print(f"| {case} | {len(runs)} | {per} | {rounds} | {kib} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
          f"{ratio('idle')} | {ratio('no-file-slots')} | {r['bytes_per_client_round'] / 1024:.1f} KiB |")
PY
cat docs/bench/files.md
