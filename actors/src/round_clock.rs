//! The leader's round clock. It runs on every node (ticked by the consensus actor) and
//! acts only on the leader. Time enters the replicated state only through what it commits:
//!
//! - `Init(params)`, once, if the cluster has no committed parameters yet;
//! - `Close(r)` when the open round has held submissions for `round_ms`;
//! - `Finalize(r)` when a closed round has had `t + 1` reveals for [`RoundClock::grace`]
//!   without reaching an output (a server is down or slow): the state machine then
//!   decides with the reveals that are in.
//!
//! An empty round stays open (an idle cluster writes nothing to its log) and its clock
//! starts with its first submission; after a leader change the new leader waits a full
//! round.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::Raft;
use protocol::wire::{Command, Round};
use protocol::Params;

use crate::net::NetHandle;
use crate::store::SharedSm;
use crate::types::TypeConfig;
use crate::write::write;

/// The leader's round clock.
pub struct RoundClock {
    raft: Raft<TypeConfig>,
    net: NetHandle,
    sm: SharedSm,
    params: Params,
    round: Duration,
    seen_round: Round,
    opened_at: Instant,
    closing: Arc<AtomicBool>,
    /// Closed rounds with t+1 reveals and no output yet, since when.
    revealable_since: BTreeMap<Round, Instant>,
    busy_finalizing: Arc<AtomicBool>,
    busy_initialising: Arc<AtomicBool>,
}

impl RoundClock {
    /// A clock for rounds of `round`.
    pub fn new(
        raft: Raft<TypeConfig>,
        net: NetHandle,
        sm: SharedSm,
        params: Params,
        round: Duration,
    ) -> Self {
        Self {
            raft,
            net,
            sm,
            params,
            round,
            seen_round: 0,
            opened_at: Instant::now(),
            closing: Arc::new(AtomicBool::new(false)),
            revealable_since: BTreeMap::new(),
            busy_finalizing: Arc::new(AtomicBool::new(false)),
            busy_initialising: Arc::new(AtomicBool::new(false)),
        }
    }

    /// How long a round with t+1 reveals waits for more before the leader finalizes it:
    /// long enough that honest servers' reveals are in (so a lie among the first t+1 is
    /// outvoted), short enough that a server being down costs seconds, not the round.
    pub fn grace(&self) -> Duration {
        (self.round * 3).max(Duration::from_secs(1))
    }

    /// Check the clock; called every few tens of milliseconds.
    pub fn tick(&mut self) {
        let leader = self.raft.metrics().borrow().state.is_leader();
        let needed = self.params.reveals_needed();
        let (open, empty, initialised, revealable) = self
            .sm
            .read()
            .map(|d| {
                let s = d.machine.state();
                let revealable: Vec<Round> = s
                    .awaiting
                    .iter()
                    .filter(|(_, c)| c.reveals.len() >= needed)
                    .map(|(r, _)| *r)
                    .collect();
                (
                    s.open_round,
                    s.collecting.is_empty(),
                    s.genesis.is_some(),
                    revealable,
                )
            })
            .unwrap_or((0, true, true, Vec::new()));
        let now = Instant::now();
        self.revealable_since.retain(|r, _| revealable.contains(r));
        for r in revealable {
            self.revealable_since.entry(r).or_insert(now);
        }
        if !leader {
            self.seen_round = open;
            self.opened_at = now;
            return;
        }
        if !initialised {
            self.initialise();
        }
        self.finalize_overdue(now);
        if open != self.seen_round {
            // A new round opened: its full time starts now.
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

    /// Commit our parameters as the cluster's, once.
    fn initialise(&self) {
        if self.busy_initialising.swap(true, Ordering::AcqRel) {
            return;
        }
        let (raft, net, busy) = (
            self.raft.clone(),
            self.net.clone(),
            self.busy_initialising.clone(),
        );
        let cmd = Command::Init(Box::new(self.params.clone()));
        tokio::spawn(async move {
            if let Err(e) = write(&raft, &net, cmd).await {
                tracing::warn!(error = %e, "could not commit the cluster parameters");
            }
            busy.store(false, Ordering::Release);
        });
    }

    fn finalize_overdue(&self, now: Instant) {
        let grace = self.grace();
        let Some(round) = self
            .revealable_since
            .iter()
            .find(|(_, since)| now.duration_since(**since) >= grace)
            .map(|(r, _)| *r)
        else {
            return;
        };
        if self.busy_finalizing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (raft, net, busy) = (
            self.raft.clone(),
            self.net.clone(),
            self.busy_finalizing.clone(),
        );
        tokio::spawn(async move {
            tracing::debug!(round, "finalizing a round still short of reveals");
            if let Err(e) = write(&raft, &net, Command::Finalize { round }).await {
                tracing::warn!(round, error = %e, "could not finalize the round");
            }
            busy.store(false, Ordering::Release);
        });
    }
}
