#!/usr/bin/env bash
# The Chorus demo: a 3-server local cluster, alice and bob, and cover clients so that
# every round reaches the minimum anonymity set. Messages go both ways; each is printed
# as it arrives with its round and latency. Everything started here is stopped at the end.
# Exits non-zero if any message was not delivered.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$(mktemp -d /tmp/chorus-demo.XXXXXX)
BASE_PORT=${DEMO_BASE_PORT:-7300}
TIMEOUT=${DEMO_TIMEOUT:-120}
PIDS=()
cleanup() {
  exec 3>&- 4>&- 2>/dev/null || true
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

echo "== building (release)"
cargo build -q --release -p node -p keys -p client --bin node --bin keygen --bin chat-cli
BIN=./target/release

echo "== starting a 3-server cluster in $DIR"
$BIN/keygen cluster --servers 3 --clients 5 --out "$DIR" --base-port "$BASE_PORT" \
  --round-ms 500 --min-anonymity-set 3 >/dev/null
for i in 0 1 2; do
  RUST_LOG=warn $BIN/node --config "$DIR/node-$i.toml" >"$DIR/node-$i.log" 2>&1 &
  PIDS+=($!)
done
for _ in $(seq 1 150); do
  curl -s --max-time 1 "http://127.0.0.1:$((BASE_PORT + 100))/readyz" | grep -q ready && break
  sleep 0.2
done

cli() { $BIN/chat-cli --config "$DIR/client-$1.toml" "${@:2}"; }
# For background use: exec, so that $! is chat-cli itself and cleanup can stop it.
cli_bg() { exec $BIN/chat-cli --config "$DIR/client-$1.toml" "${@:2}"; }
echo "== registering alice, bob and three cover clients"
cli 1 register alice
cli 2 register bob
for j in 3 4 5; do cli $j register "cover-$j" >/dev/null; done

mkfifo "$DIR/alice.in" "$DIR/bob.in"
cli_bg 1 --json listen --stdin <"$DIR/alice.in" >"$DIR/alice.out" 2>"$DIR/alice.err" &
PIDS+=($!)
cli_bg 2 --json listen --stdin <"$DIR/bob.in" >"$DIR/bob.out" 2>"$DIR/bob.err" &
PIDS+=($!)
exec 3>"$DIR/alice.in" 4>"$DIR/bob.in"
for j in 3 4 5; do
  cli_bg $j --json listen >"$DIR/cover-$j.out" 2>&1 &
  PIDS+=($!)
done

echo "== chatting"
ALICE_SAYS=("hi bob, it's alice" "nobody can tell I'm writing to you" "see you at the library at six")
BOB_SAYS=("hello alice!" "and nobody can tell I'm answering" "six it is")
for k in 0 1 2; do
  echo "bob: ${ALICE_SAYS[$k]}" >&3
  echo "alice: ${BOB_SAYS[$k]}" >&4
done

python3 - "$DIR" "$TIMEOUT" <<'PY'
import json, os, sys, time
d, timeout = sys.argv[1], float(sys.argv[2])
want = {
    "bob": ["hi bob, it's alice", "nobody can tell I'm writing to you", "see you at the library at six"],
    "alice": ["hello alice!", "and nobody can tell I'm answering", "six it is"],
}
seen = {"alice": set(), "bob": set()}
end = time.time() + timeout
while time.time() < end and any(len(seen[w]) < len(want[w]) for w in want):
    for who in want:
        try:
            lines = open(os.path.join(d, who + ".out")).read().splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "message" and ev["text"] not in seen[who]:
                seen[who].add(ev["text"])
                print(f'  round {ev["round"]:>4}  {ev["latency_ms"]:>5} ms  {ev["from"]} -> {who}: {ev["text"]}', flush=True)
    time.sleep(0.2)
missing = [(w, t) for w in want for t in want[w] if t not in seen[w]]
leaked = []
for j in (3, 4, 5):
    out = open(os.path.join(d, f"cover-{j}.out")).read()
    leaked += [t for w in want for t in want[w] if t in out]
if leaked:
    print("FAIL: a cover client saw someone else's message:", leaked)
    sys.exit(1)
if missing:
    print("FAIL: not delivered within the timeout:", missing)
    sys.exit(1)
print("all 6 messages delivered, each only to its recipient")
PY
status=$?
echo "== stopping everything"
exit $status
