# Sourced by the round benchmark scripts: a local 3-node release cluster in $WORK/c.
# The caller sets WORK (a scratch folder) and traps EXIT to call stop_nodes.
#
#   start_cluster BIN_DIR SLOTS [ROUND_MS]   keygen and start 3 nodes (256-byte slots,
#                                            k = 3, ports 17500..), wait for node 0;
#                                            CLUSTER_CLIENTS=N also writes client-1..N,
#                                            CLUSTER_FILE_SLOTS=F sets round.file_slots
#   stop_nodes                               kill the nodes and reap them

PIDS=()

stop_nodes() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

start_cluster() {
  local bin=$1 slots=$2 round_ms=${3:-500}
  rm -rf "$WORK/c"
  "$bin/keygen" cluster --servers 3 --clients "${CLUSTER_CLIENTS:-0}" --out "$WORK/c" \
    --base-port 17500 --round-ms "$round_ms" --slots "$slots" --slot-bytes 256 \
    --min-anonymity-set 3 >/dev/null
  if [ -n "${CLUSTER_FILE_SLOTS:-}" ]; then
    for f in "$WORK"/c/*.toml; do
      grep -q '^\[round\]' "$f" && sed -i "s/^\[round\]$/[round]\nfile_slots = $CLUSTER_FILE_SLOTS/" "$f"
    done
  fi
  for i in 0 1 2; do
    RUST_LOG=warn "$bin/node" --config "$WORK/c/node-$i.toml" >"$WORK/node-$i.log" 2>&1 &
    PIDS+=($!)
  done
  for _ in $(seq 1 150); do
    curl -s --max-time 1 http://127.0.0.1:17600/readyz | grep -q ready && break
    sleep 0.2
  done
}
