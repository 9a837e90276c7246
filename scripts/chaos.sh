#!/usr/bin/env bash
# Seeded chaos run (release build): real node processes are killed and restarted or
# paused and resumed (never more than f at a time) while client engines chat; then the
# invariants are checked: nothing sent is lost or duplicated, all clients accepted the
# same output per round, no node panicked, rounds resumed within 5 s of each heal, and
# memory and disk stayed bounded.
#
#   scripts/chaos.sh --seed 1 --duration 60 [--nodes 5] [--clients 20]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p node -p tests --bin node --bin chaos
CHORUS_PROFILE=release CHORUS_NO_BUILD=1 exec ./target/release/chaos "$@"
