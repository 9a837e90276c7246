#!/usr/bin/env bash
# Run a local Chorus cluster in the background.
#
#   scripts/local-cluster.sh start [N]   generate keys/configs into ./.chorus if missing,
#                                        build release, start N nodes (default 3)
#   scripts/local-cluster.sh status      print each node's /status
#   scripts/local-cluster.sh stop        stop exactly the nodes `start` started (pid files)
#
# Logs go to ./.chorus/logs/node-<i>.log; data to ./.chorus/data/.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${CHORUS_DIR:-.chorus}
BASE_PORT=${CHORUS_BASE_PORT:-7100}
CLIENTS=${CHORUS_CLIENTS:-4}

admin_port() { # config file -> admin port
  sed -n 's/^admin = "127\.0\.0\.1:\([0-9]*\)"/\1/p' "$1" | head -1
}

start() {
  local n=${1:-3}
  if [ ! -f "$DIR/node-0.toml" ]; then
    echo "generating a $n-server cluster in $DIR"
    cargo run -q --release -p keys --bin keygen -- cluster --servers "$n" --clients "$CLIENTS" \
      --out "$DIR" --base-port "$BASE_PORT" >/dev/null
  fi
  local have
  have=$(ls "$DIR"/node-*.toml | wc -l)
  if [ "$have" != "$n" ]; then
    echo "error: $DIR holds a $have-server cluster, not $n; remove $DIR or pass $have" >&2
    exit 1
  fi
  cargo build -q --release -p node
  mkdir -p "$DIR/logs" "$DIR/pids"
  for ((i = 0; i < n; i++)); do
    local pidf="$DIR/pids/node-$i.pid"
    if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
      echo "node $i already running (pid $(cat "$pidf"))"
      continue
    fi
    ./target/release/node check-config "$DIR/node-$i.toml" >/dev/null
    RUST_LOG=${RUST_LOG:-info,openraft=warn,libp2p_gossipsub=warn} \
      nohup ./target/release/node --config "$DIR/node-$i.toml" >>"$DIR/logs/node-$i.log" 2>&1 &
    echo $! >"$pidf"
    echo "node $i started (pid $!, admin http://127.0.0.1:$(admin_port "$DIR/node-$i.toml")/status)"
  done
}

status() {
  local any=0
  for f in "$DIR"/node-*.toml; do
    [ -f "$f" ] || continue
    any=1
    local i port
    i=$(basename "$f" .toml); i=${i#node-}
    port=$(admin_port "$f")
    printf 'node %s: ' "$i"
    curl -s --max-time 2 "http://127.0.0.1:$port/status" || printf 'down'
    echo
  done
  [ $any = 1 ] || echo "no cluster in $DIR (run: $0 start)"
}

stop() {
  shopt -s nullglob
  for pidf in "$DIR"/pids/*.pid; do
    local pid
    pid=$(cat "$pidf")
    # Only signal the process if it is still the node we started.
    if kill -0 "$pid" 2>/dev/null && grep -q "node" "/proc/$pid/cmdline" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      echo "stopped $(basename "$pidf" .pid) (pid $pid)"
    fi
    rm -f "$pidf"
  done
}

case "${1:-}" in
  start) start "${2:-3}" ;;
  status) status ;;
  stop) stop ;;
  *) echo "usage: $0 start [N] | status | stop" >&2; exit 2 ;;
esac
