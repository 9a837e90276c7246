#!/usr/bin/env bash
# Abuse run (release build): honest clients chat through a baseline phase, then through
# an attack phase in which a hostile client sends malformed/truncated/oversized frames,
# future-round, stale-round, replayed, badly signed, wrong-share-count and unknown-client
# submissions, Raft RPCs from a client PeerId and connection churn at a bounded rate.
# Checks that every class is refused by its named reason in the servers' metrics, that no
# node crashed, that no honest message was lost, and that honest p99 latency under attack
# stays within 2x of the baseline. Prints a markdown table and a summary line.
#
#   scripts/abuse.sh [--duration 60] [--rate 40] [--clients 5] [--msg-rate 3] [--seed 1]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p node -p tests --bin node --bin abuse
CHORUS_PROFILE=release CHORUS_NO_BUILD=1 exec ./target/release/abuse "$@"
