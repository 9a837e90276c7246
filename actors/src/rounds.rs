//! The share-keeper actor and the leader's round clock.
//!
//! ```text
//!  StateMachine ─Committed(Accepted)─► ShareKeeper: open own share, XOR into sum[r]
//!               ─Committed(Closed r)─► ShareKeeper: commit Reveal(r, me, sum[r]) via Raft
//!               ─Committed(Void r)───► ShareKeeper: forget sum[r] (zeroized)
//!  RoundClock (on every node, acts only on the leader): when round r has been open for
//!  round_ms, commit Close(r).
//! ```
//! A sum is never revealed before the replicated state closed its round with at least k
//! clients: the keeper reveals only on a `Closed` effect, which the state machine emits
//! only then, and the state machine refuses reveals for any other round.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use openraft::Raft;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use protocol::bounded::Bytes;
use protocol::seal::open_share;
use protocol::shamir::xor_into;
use protocol::wire::{Command, Reveal, Round, Submission};
use protocol::{Effect, Params};
use zeroize::Zeroizing;

use crate::metrics::ActorStats;
use crate::net::NetHandle;
use crate::server::{write, Committed};
use crate::store::SharedSm;
use crate::types::{Applied, NodeId, TypeConfig};

/// Share-keeper counters.
#[derive(Clone, Default)]
pub struct KeeperMetrics {
    /// Shares that did not open (a client sealed garbage to us).
    pub open_failures: Counter,
    /// Reveals committed.
    pub reveals: Counter,
    /// Sums recomputed from the replicated state (after a restart).
    pub recomputed: Counter,
    /// Bytes of round sums held now.
    pub held_bytes: Gauge,
}

struct RoundSum {
    sum: Zeroizing<Vec<u8>>,
    included: u32,
}

/// What a share-keeper holds: one running XOR per open round, never anything per client.
/// An opened share is XORed in and dropped at once (it is `Zeroizing`, so its bytes are
/// wiped); a round's sum leaves when the round closes (to be revealed) or is void.
struct RoundSums {
    vector_bytes: usize,
    rounds: BTreeMap<Round, RoundSum>,
}

impl RoundSums {
    fn new(vector_bytes: usize) -> Self {
        Self {
            vector_bytes,
            rounds: BTreeMap::new(),
        }
    }

    /// Count a submission in `round`, with our opened share if it opened.
    fn add(&mut self, round: Round, opened: Option<Zeroizing<Vec<u8>>>) {
        let entry = self.rounds.entry(round).or_insert_with(|| RoundSum {
            sum: Zeroizing::new(vec![0u8; self.vector_bytes]),
            included: 0,
        });
        entry.included += 1;
        if let Some(share) = opened.filter(|s| s.len() == entry.sum.len()) {
            xor_into(&mut entry.sum, &share);
        }
    }

    fn included(&self, round: Round) -> Option<u32> {
        self.rounds.get(&round).map(|s| s.included)
    }

    /// The round's sum, removed (zeros if nothing was added).
    fn take(&mut self, round: Round) -> Zeroizing<Vec<u8>> {
        self.rounds
            .remove(&round)
            .map(|s| s.sum)
            .unwrap_or_else(|| Zeroizing::new(vec![0u8; self.vector_bytes]))
    }

    fn forget(&mut self, round: Round) {
        self.rounds.remove(&round);
    }

    /// Drop sums for rounds below `floor` (they can never be revealed).
    fn forget_below(&mut self, floor: Round) {
        while self
            .rounds
            .first_key_value()
            .is_some_and(|(r, _)| *r < floor)
        {
            self.rounds.pop_first();
        }
    }

    /// Bytes of secret material held.
    fn held_bytes(&self) -> usize {
        self.rounds.values().map(|s| s.sum.len()).sum()
    }
}

/// Opens this server's shares and reveals per-round sums.
pub struct ShareKeeper {
    me: NodeId,
    secret: x25519_dalek::StaticSecret,
    params: Params,
    sums: RoundSums,
    raft: Raft<TypeConfig>,
    net: NetHandle,
    sm: SharedSm,
    stats: ActorStats,
    metrics: KeeperMetrics,
}

impl ShareKeeper {
    /// A keeper for server `me`.
    #[allow(clippy::too_many_arguments)] // one constructor, called once, every field needed
    pub fn new(
        me: NodeId,
        secret: x25519_dalek::StaticSecret,
        params: Params,
        raft: Raft<TypeConfig>,
        net: NetHandle,
        sm: SharedSm,
        stats: ActorStats,
        metrics: KeeperMetrics,
    ) -> Self {
        Self {
            me,
            secret,
            sums: RoundSums::new(params.vector_bytes()),
            params,
            raft,
            net,
            sm,
            stats,
            metrics,
        }
    }

    fn add(&mut self, round: Round, sub: &Submission) {
        let Some(sealed) = sub.shares.as_slice().get(self.me as usize) else {
            // Share count is checked before commit; a missing share is a broken invariant
            // of the log, not client input.
            self.stats.failed();
            self.sums.add(round, None);
            return;
        };
        let opened = open_share(sealed, round, &sub.client, self.me as u16, &self.secret).ok();
        if opened
            .as_ref()
            .is_none_or(|s| s.len() != self.params.vector_bytes())
        {
            // Only we can open our share, so this cannot be refused before commit. It
            // counts as zero: the round's output will be garbled (jamming), but no server
            // stalls or crashes. Rejecting such clients is future work.
            self.metrics.open_failures.inc();
        }
        self.sums.add(round, opened);
    }

    fn recompute(&mut self, round: Round) {
        let subs: Vec<Submission> = {
            let d = self.sm.read().unwrap_or_else(|p| p.into_inner());
            d.machine
                .pending_submissions(round)
                .into_iter()
                .cloned()
                .collect()
        };
        self.sums.forget(round);
        for s in &subs {
            self.add(round, s);
        }
        self.metrics.recomputed.inc();
    }
}

impl Actor for ShareKeeper {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
    }
}

impl Handler<Committed> for ShareKeeper {
    type Result = ();
    fn handle(&mut self, msg: Committed, _: &mut Self::Context) {
        self.stats.dequeued();
        match (&msg.0.effect, &msg.0.command) {
            (Effect::Accepted { round, .. }, Command::Submit(sub)) => self.add(*round, sub),
            (
                Effect::Closed {
                    round,
                    participants,
                },
                _,
            ) => {
                let round = *round;
                if self.sums.included(round) != Some(*participants) {
                    // We missed accepted submissions (they were in a snapshot we loaded).
                    self.recompute(round);
                }
                let sum = self.sums.take(round);
                let Ok(sum) = Bytes::new(sum.to_vec()) else {
                    self.stats.failed();
                    return;
                };
                let cmd = Command::Reveal(Reveal {
                    round,
                    server: self.me as u16,
                    sum,
                });
                let (raft, net, stats, reveals) = (
                    self.raft.clone(),
                    self.net.clone(),
                    self.stats.clone(),
                    self.metrics.reveals.clone(),
                );
                tokio::spawn(async move {
                    match write(&raft, &net, cmd).await {
                        Ok(Applied::Ok { .. }) => {
                            reveals.inc();
                        }
                        // Replays after a restart meet an already revealed round: fine.
                        Ok(Applied::Rejected(_)) | Ok(Applied::Internal) => {}
                        Err(e) => {
                            stats.failed();
                            tracing::warn!(round, error = %e, "could not commit our reveal");
                        }
                    }
                });
            }
            (Effect::Void { round, .. }, _) => {
                self.sums.forget(*round);
            }
            _ => {}
        }
        // Bound memory: sums for rounds far behind the open one can never be revealed.
        let open = self
            .sm
            .read()
            .map(|d| d.machine.state().open_round)
            .unwrap_or(0);
        let floor = open.saturating_sub(protocol::round::MAX_AWAITING_REVEAL as u64 + 2);
        self.sums.forget_below(floor);
        self.metrics.held_bytes.set(self.sums.held_bytes() as i64);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(byte: u8, len: usize) -> Option<Zeroizing<Vec<u8>>> {
        Some(Zeroizing::new(vec![byte; len]))
    }

    #[test]
    fn a_keeper_holds_one_sum_per_open_round_and_nothing_after_close() {
        let mut sums = RoundSums::new(64);
        for client in 0..50u8 {
            sums.add(7, opened(client, 64));
        }
        sums.add(8, opened(1, 64));
        // Fifty clients' openings are folded into one 64-byte sum, not kept each.
        assert_eq!(sums.held_bytes(), 2 * 64);
        assert_eq!(sums.included(7), Some(50));
        let sum = sums.take(7);
        let expected = (0..50u8).fold(0u8, |acc, b| acc ^ b);
        assert!(sum.iter().all(|b| *b == expected));
        // After round 7 closes nothing of it remains; round 8 is still collecting.
        assert_eq!(sums.included(7), None);
        assert_eq!(sums.held_bytes(), 64);
        sums.forget(8);
        assert_eq!(sums.held_bytes(), 0);
    }

    #[test]
    fn unopened_or_odd_sized_shares_count_but_add_nothing() {
        let mut sums = RoundSums::new(16);
        sums.add(1, None);
        sums.add(1, opened(9, 15));
        assert_eq!(sums.included(1), Some(2));
        assert!(sums.take(1).iter().all(|b| *b == 0));
    }

    #[test]
    fn rounds_that_can_no_longer_be_revealed_are_dropped() {
        let mut sums = RoundSums::new(8);
        for r in 1..=10 {
            sums.add(r, opened(1, 8));
        }
        sums.forget_below(8);
        assert_eq!(sums.held_bytes(), 3 * 8);
        assert_eq!(sums.included(7), None);
        assert_eq!(sums.included(8), Some(1));
    }
}
