#!/usr/bin/env bash
# Interop test with js-libp2p: a libp2p peer of another implementation that subscribes to
# the output topic receives the servers' outputs and nothing that another non-server
# peer published there.
#
#   CHORUS_BIN=target/release scripts/interop-js.sh
#
# Starts a fresh 3-server cluster (temp dir, random ports), then two js-libp2p peers
# (tests/interop/peer.mjs; TCP + noise + yamux + gossipsub, StrictSign) that dial every
# server: `junk` publishes junk and replayed outputs under its own keys on
# chorus/outputs/1 (taking a new identity whenever the servers have banned it), `listen`
# subscribes and records every message it is handed. loadgen drives real rounds so the
# servers publish outputs. Passes when the listener got >= 3 messages, all published by a
# configured server, none carrying the junk marker or published by a junk identity, and
# the servers' metrics show that junk reached them and was dropped.
#
# Needs the prebuilt binaries keygen, node and loadgen in $CHORUS_BIN (default
# target/debug, relative to the repo root; nothing is built here), Node.js >= 20 with
# npm, and curl. Installs tests/interop/node_modules with `npm ci` when missing.
# Everything it starts is stopped on exit; the temp dir is removed on success and kept
# (path printed) on failure, or always with CHORUS_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

fail() { echo "interop: FAIL $*" >&2; exit 1; }

BIN=${CHORUS_BIN:-target/debug}
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
for b in keygen node loadgen; do
  [ -x "$BIN/$b" ] || fail "$BIN/$b is missing (build it first, e.g. cargo build -p keys -p node -p tests; or set CHORUS_BIN)"
done
command -v curl >/dev/null || fail "curl is not installed"
# Node.js is also called `node`: resolve it now, and make sure it is not the Chorus binary.
NODEJS=$(command -v node || true)
[ -n "$NODEJS" ] || fail "Node.js (node) is not installed; the js-libp2p peer needs Node.js >= 20"
NODEJS_VERSION=$("$NODEJS" --version 2>/dev/null || true)
[[ $NODEJS_VERSION =~ ^v([0-9]+)\. ]] || fail "$NODEJS is not Node.js (is $BIN on PATH?)"
[ "${BASH_REMATCH[1]}" -ge 20 ] || fail "Node.js $NODEJS_VERSION is too old; need >= 20"

INTEROP="$ROOT/tests/interop"
if [ ! -d "$INTEROP/node_modules" ]; then
  command -v npm >/dev/null || fail "npm is not installed (needed once, to install tests/interop/node_modules)"
  echo "interop: installing js-libp2p into tests/interop (npm ci)"
  (cd "$INTEROP" && npm ci --no-audit --no-fund) || fail "npm ci in tests/interop failed"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/chorus-interop.XXXXXX")
PIDS=()
OK=0
START=$(date +%s)

stop_pid() { # pid: TERM, up to 5 s, then KILL; only a process we started
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
  if [ "$OK" = 1 ] && [ -z "${CHORUS_KEEP:-}" ]; then
    rm -rf "$WORK"
  else
    echo "interop: logs kept in $WORK" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A random base port whose 3 libp2p and 3 admin ports are free. Stays below 32768, the
# usual start of the ephemeral range, so outgoing connections cannot take them meanwhile.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
BASE=
for _ in $(seq 1 20); do
  b=$((20000 + RANDOM % 12000))
  busy=0
  for p in $b $((b + 1)) $((b + 2)) $((b + 100)) $((b + 101)) $((b + 102)); do
    if port_busy "$p"; then busy=1; break; fi
  done
  if [ $busy = 0 ]; then BASE=$b; break; fi
done
[ -n "$BASE" ] || fail "found no free port range"

CL="$WORK/cluster"
"$BIN/keygen" cluster --servers 3 --clients 4 --out "$CL" --base-port "$BASE" >"$WORK/keygen.log" 2>&1 \
  || fail "keygen failed: $(tail -3 "$WORK/keygen.log")"

admin_addr() { sed -n 's/^admin = "\(127\.0\.0\.1:[0-9]*\)"/\1/p' "$1" | head -1; }
# cluster.toml lists the servers in index order, peer_id before address in each entry.
mapfile -t SERVER_IDS < <(sed -n 's/^peer_id = "\(.*\)"/\1/p' "$CL/cluster.toml")
mapfile -t SERVER_ADDRS < <(awk -F'"' '/^\[\[servers\]\]/{p=""} /^peer_id = /{p=$2} /^address = /{print $2 "/p2p/" p}' "$CL/cluster.toml")
[ ${#SERVER_IDS[@]} = 3 ] && [ ${#SERVER_ADDRS[@]} = 3 ] || fail "could not read 3 servers from $CL/cluster.toml"

echo "interop: cluster in $WORK, libp2p ports $BASE-$((BASE + 2)), admin $((BASE + 100))-$((BASE + 102)), Node.js $NODEJS_VERSION"
ADMINS=()
for i in 0 1 2; do
  cfg="$CL/node-$i.toml"
  ADMINS+=("$(admin_addr "$cfg")")
  "$BIN/node" check-config "$cfg" >/dev/null 2>&1 || fail "node check-config $cfg failed"
  RUST_LOG=${RUST_LOG:-info,openraft=warn,libp2p_gossipsub=warn} \
    "$BIN/node" --config "$cfg" >>"$WORK/node-$i.log" 2>&1 &
  PIDS+=($!)
  echo "interop: server $i ${SERVER_IDS[$i]} at ${SERVER_ADDRS[$i]%%/p2p/*} (pid $!, admin http://${ADMINS[$i]})"
done
NODE_PIDS=("${PIDS[@]}")

alive_or_fail() {
  local i
  for i in 0 1 2; do
    kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || fail "server $i exited: $(tail -5 "$WORK/node-$i.log")"
  done
}

# Every /status answers, then some server is leader (generous: 2 busy cores).
for i in 0 1 2; do
  for t in $(seq 1 120); do
    curl -sf --max-time 2 "http://${ADMINS[$i]}/status" >/dev/null && break
    alive_or_fail
    [ "$t" = 120 ] && fail "server $i /status did not answer within 60 s"
    sleep 0.5
  done
done
for t in $(seq 1 120); do
  leader=0
  for i in 0 1 2; do
    curl -sf --max-time 2 "http://${ADMINS[$i]}/status" | grep -q '"role":"leader"' && leader=1
  done
  [ $leader = 1 ] && break
  alive_or_fail
  [ "$t" = 120 ] && fail "no leader elected within 60 s"
  sleep 0.5
done
echo "interop: servers up, leader elected ($(( $(date +%s) - START )) s)"

MARKER="CHORUS-INTEROP-JUNK-$RANDOM$RANDOM"
"$NODEJS" "$INTEROP/peer.mjs" junk --marker "$MARKER" --interval-ms 200 "${SERVER_ADDRS[@]}" \
  >"$WORK/junk.out" 2>"$WORK/junk.err" &
PIDS+=($!)
JUNK_PID=$!
"$NODEJS" "$INTEROP/peer.mjs" listen --marker "$MARKER" "${SERVER_ADDRS[@]}" \
  >"$WORK/listen.out" 2>"$WORK/listen.err" &
PIDS+=($!)
LISTEN_PID=$!

json_field() { # file event field -> value of field in the first line with that event
  sed -n "s/^{\"event\":\"$2\".*\"$3\":\"\([^\"]*\)\".*/\1/p" "$1" | head -1
}
for t in $(seq 1 60); do
  [ -n "$(json_field "$WORK/listen.out" ready peerId)" ] && [ -n "$(json_field "$WORK/junk.out" ready peerId)" ] && break
  kill -0 "$JUNK_PID" 2>/dev/null || fail "js junk peer exited: $(tail -5 "$WORK/junk.err")"
  kill -0 "$LISTEN_PID" 2>/dev/null || fail "js listen peer exited: $(tail -5 "$WORK/listen.err")"
  [ "$t" = 60 ] && fail "js peers did not start within 30 s"
  sleep 0.5
done
LISTEN_ID=$(json_field "$WORK/listen.out" ready peerId)
echo "interop: js listener $LISTEN_ID, js junk publisher $(json_field "$WORK/junk.out" ready peerId) (marker $MARKER)"

# The listener should hold a gossipsub stream to every server before traffic starts.
for t in $(seq 1 60); do
  # grep finds nothing before the first subscription: not an error (pipefail, set -e).
  subs=$({ grep '"event":"subscription-change"' "$WORK/listen.err" || true; } | sed -n 's/.*"peer":"\([^"]*\)".*/\1/p' | sort -u | wc -l)
  [ "$subs" -ge 3 ] && break
  [ "$t" = 60 ] && echo "interop: warning: after 30 s the listener has gossipsub with only $subs of 3 servers"
  sleep 0.5
done

echo "interop: running loadgen (8 clients, 20 s after a 3-round warm-up)"
"$BIN/loadgen" --cluster "$CL/cluster.toml" --clients 8 --seconds 20 >"$WORK/loadgen.log" 2>&1 &
PIDS+=($!)
LOADGEN_PID=$!
LOADGEN_RC=0
wait "$LOADGEN_PID" || LOADGEN_RC=$?
[ "$LOADGEN_RC" = 0 ] || fail "loadgen exited with $LOADGEN_RC: $(tail -5 "$WORK/loadgen.log")"
echo "interop: loadgen: $(tail -1 "$WORK/loadgen.log")"
sleep 2 # outputs of the last round still on their way
alive_or_fail

# Stop the js peers so that they write their `done` lines.
stop_pid "$JUNK_PID"
stop_pid "$LISTEN_PID"

echo "interop: servers' gossip metrics (junk is dropped as gossip_from_non_server, its relayers banned as gossip_peer_banned):"
for i in 0 1 2; do
  curl -sf --max-time 5 "http://${ADMINS[$i]}/metrics" >"$WORK/metrics-$i.txt" || fail "server $i /metrics did not answer"
  grep -i gossip "$WORK/metrics-$i.txt" | grep -v '^#' | sed "s/^/  server $i: /" || true
done

# The verdict (Node.js parses the JSON lines; no jq needed).
SERVERS="${SERVER_IDS[*]}" WORK="$WORK" MARKER="$MARKER" "$NODEJS" --input-type=module - <<'EOF'
import { readFileSync } from 'node:fs'
const work = process.env.WORK
const lines = (f) => readFileSync(`${work}/${f}`, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
const servers = process.env.SERVERS.split(' ')
const listen = lines('listen.out')
const junkOut = lines('junk.out')
const msgs = listen.filter((e) => e.event === 'message')
const junkIds = new Set(junkOut.filter((e) => e.event === 'identity' || e.event === 'ready').map((e) => e.peerId))
const junkDone = junkOut.find((e) => e.event === 'done') ?? {}
let rejected = 0
let banned = 0
for (let i = 0; i < servers.length; i++) {
  const m = readFileSync(`${work}/metrics-${i}.txt`, 'utf8')
  const num = (reason) => Number(m.match(new RegExp(`reason="${reason}"\\} (\\d+)`))?.[1] ?? 0)
  rejected += num('gossip_from_non_server')
  banned += num('gossip_peer_banned')
}
const perServer = servers.map((s, i) => `server ${i}: ${msgs.filter((m) => m.from === s).length}`).join(', ')
const fromServers = msgs.filter((m) => servers.includes(m.from))
const fromOthers = msgs.filter((m) => !servers.includes(m.from))
const fromJunk = msgs.filter((m) => junkIds.has(m.from))
const withMarker = msgs.filter((m) => m.junk)
console.log(`interop: listener got ${msgs.length} messages (${perServer}); relayed by ${new Set(msgs.map((m) => m.via)).size} distinct peers`)
console.log(`interop: junk publisher used ${junkIds.size} identities, published ${junkDone.published ?? '?'} junk + ${junkDone.replays ?? '?'} replayed outputs (${junkDone.publishErrors ?? '?'} publish errors); servers dropped ${rejected} from non-servers and made ${banned} bans in total`)
const problems = []
if (msgs.length < 3) problems.push(`only ${msgs.length} messages received (want >= 3)`)
if (fromOthers.length > 0) problems.push(`${fromOthers.length} messages published by non-servers: ${[...new Set(fromOthers.map((m) => m.from))].join(', ')}`)
if (fromJunk.length > 0) problems.push(`${fromJunk.length} messages from the junk publisher's identities`)
if (withMarker.length > 0) problems.push(`${withMarker.length} messages carry the junk marker`)
if (!((junkDone.published ?? 0) > 0)) problems.push('the junk peer published nothing, so the test proves nothing')
if (rejected === 0) problems.push('no server reports dropped gossip from a non-server: the junk never reached them, so the test proves nothing')
if (problems.length > 0) {
  console.log(`interop: FAIL ${problems.join('; ')}`)
  process.exit(1)
}
console.log(`interop: OK (${fromServers.length} outputs from servers, 0 from others)`)
EOF
OK=1
echo "interop: took $(( $(date +%s) - START )) s"
