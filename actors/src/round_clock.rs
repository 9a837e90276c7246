//! The leader's round clock. It runs on every node (ticked by the consensus actor) and
//! acts only on the leader: when the open round has held submissions for `round_ms`, it
//! commits `Close(r)`.
//!
//! An empty round stays open (an idle cluster writes nothing to its log) and its clock
//! starts with its first submission; after a leader change the new leader waits a full
//! round.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::Raft;
use protocol::wire::{Command, Round};

use crate::net::NetHandle;
use crate::store::SharedSm;
use crate::types::TypeConfig;
use crate::write::write;

/// The leader's round clock: closes the open round when `round_ms` has passed.
pub struct RoundClock {
    raft: Raft<TypeConfig>,
    net: NetHandle,
    sm: SharedSm,
    round: Duration,
    seen_round: Round,
    opened_at: Instant,
    closing: Arc<AtomicBool>,
}

impl RoundClock {
    /// A clock for rounds of `round`.
    pub fn new(raft: Raft<TypeConfig>, net: NetHandle, sm: SharedSm, round: Duration) -> Self {
        Self {
            raft,
            net,
            sm,
            round,
            seen_round: 0,
            opened_at: Instant::now(),
            closing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Check the clock; called every few tens of milliseconds.
    pub fn tick(&mut self) {
        let leader = self.raft.metrics().borrow().state.is_leader();
        let (open, empty) = self
            .sm
            .read()
            .map(|d| {
                (
                    d.machine.state().open_round,
                    d.machine.state().collecting.is_empty(),
                )
            })
            .unwrap_or((0, true));
        let now = Instant::now();
        if open != self.seen_round || !leader {
            // A new round opened, or we are not the leader: its full time starts now.
            self.seen_round = open;
            self.opened_at = now;
            return;
        }
        if empty {
            // An empty round stays open (an idle cluster writes nothing to its log), and
            // its clock starts with its first submission.
            self.opened_at = now;
            return;
        }
        if now.duration_since(self.opened_at) < self.round
            || self.closing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let (raft, net, closing) = (self.raft.clone(), self.net.clone(), self.closing.clone());
        tokio::spawn(async move {
            if let Err(e) = write(&raft, &net, Command::Close { round: open }).await {
                tracing::warn!(round = open, error = %e, "could not close the round");
            }
            closing.store(false, Ordering::Release);
        });
    }
}
