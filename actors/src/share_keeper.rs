//! The share-keeper actor: opens this server's share of every accepted submission, adds
//! it into the round's sum, and reveals the sum once the replicated state closes the round.
//!
//! ```text
//!  dispatcher ─Committed(Accepted r)─► ShareKeeper ─spawn_blocking: open share─► sum[r] ^= share
//!             ─Committed(Closed r)───► ShareKeeper ─write(Reveal(r, me, sum[r]))─► Raft
//!             ─Committed(Void r)─────► ShareKeeper: forget sum[r] (zeroized)
//! ```
//! A sum is never revealed before the replicated state closed its round with at least k
//! clients: the keeper reveals only on a `Closed` effect, which the state machine emits
//! only then, and the state machine refuses reveals for any other round.
//!
//! A reveal that did not commit (its write gave up, or we installed a snapshot and never
//! saw the round's `Close`) is retried: every [`REVEAL_CHECK`] the keeper looks for
//! closed rounds still lacking our reveal, and one owed at two checks in a row with no
//! write of ours in flight is recomputed from the replicated state and revealed again.
//! Without that, a round with only t+1 servers up would stall for good.
//!
//! Opening a share (x25519, HKDF and an AEAD over the whole vector) runs on tokio's
//! blocking pool, never on the actix thread. While it runs the actor holds its mailbox
//! (`ctx.wait`), so sums are folded in log order and a `Closed` is never handled before
//! the submissions that precede it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use openraft::Raft;
use protocol::bounded::Bytes;
use protocol::seal::open_share;
use protocol::submission::share_from_opened;
use protocol::wire::{ClientId, Command, Reveal, Round, SealedShare, Submission};
use protocol::{Effect, Params, State};
use zeroize::Zeroizing;

use crate::messages::Committed;
use crate::metrics::{ActorStats, KeeperMetrics};
use crate::net::NetHandle;
use crate::round_sums::RoundSums;
use crate::store::SharedSm;
use crate::types::{Applied, NodeId, TypeConfig};
use crate::write::write;

/// How often the keeper looks for closed rounds still owed our reveal. Longer than a
/// normal reveal takes, so the usual path is never raced.
pub const REVEAL_CHECK: Duration = Duration::from_secs(3);

/// Closed rounds whose reveals lack ours, with their participant counts.
pub fn owed_reveals(state: &State, me: u16) -> Vec<(Round, u32)> {
    state
        .awaiting
        .iter()
        .filter(|(_, c)| !c.reveals.contains_key(&me))
        .map(|(r, c)| (*r, c.participants))
        .collect()
}

/// Opens this server's shares; cheap to clone into a blocking task.
#[derive(Clone)]
struct Opener {
    me: NodeId,
    secret: Arc<x25519_dalek::StaticSecret>,
    params: Arc<Params>,
}

/// Our sealed share of one submission, taken out of the log entry.
struct Sealed {
    client: ClientId,
    share: Option<SealedShare>,
}

/// What opening one share gave.
enum Opened {
    /// Our share, ready to add.
    Share(Zeroizing<Vec<u8>>),
    /// The share did not open or had the wrong size: a client sealed garbage to us.
    Garbage,
    /// The submission had no share for us: a broken invariant of the log (the share
    /// count is checked before commit), not client input.
    Missing,
}

impl Opener {
    fn take(&self, sub: &Submission) -> Sealed {
        Sealed {
            client: sub.client,
            share: sub.shares.as_slice().get(self.me as usize).cloned(),
        }
    }

    fn open(&self, round: Round, sealed: &Sealed) -> Opened {
        let Some(share) = &sealed.share else {
            return Opened::Missing;
        };
        let Ok(opened) = open_share(share, round, &sealed.client, self.me as u16, &self.secret)
        else {
            return Opened::Garbage;
        };
        // A seed expands to our share; a whole share must be canonical field elements.
        share_from_opened(
            &self.params,
            round,
            &sealed.client,
            self.me as usize,
            &opened,
        )
        .map_or(Opened::Garbage, Opened::Share)
    }

    /// Open a batch on the blocking pool (in order).
    async fn open_all(&self, round: Round, batch: Vec<Sealed>) -> Vec<Opened> {
        let me = self.clone();
        let n = batch.len();
        tokio::task::spawn_blocking(move || batch.iter().map(|s| me.open(round, s)).collect())
            .await
            // The blocking pool only fails at shutdown; count every share as missing then.
            .unwrap_or_else(|_| (0..n).map(|_| Opened::Missing).collect())
    }
}

/// Opens this server's shares and reveals per-round sums.
pub struct ShareKeeper {
    opener: Opener,
    me: NodeId,
    sums: RoundSums,
    raft: Raft<TypeConfig>,
    net: NetHandle,
    sm: SharedSm,
    stats: ActorStats,
    metrics: KeeperMetrics,
    /// Rounds whose reveal write is in flight (shared with those writes' tasks).
    revealing: Arc<Mutex<BTreeSet<Round>>>,
    /// Rounds owed our reveal at the previous check.
    owed_before: BTreeSet<Round>,
    /// Signs our reveals.
    identity: Arc<keys::Identity>,
    /// Test-only fault: reveal a wrong sum while set (see [`crate::server::Faults`]).
    wrong_reveals: Arc<std::sync::atomic::AtomicBool>,
}

impl ShareKeeper {
    /// A keeper for server `me`.
    #[allow(clippy::too_many_arguments)] // one constructor, called once, every field needed
    pub fn new(
        me: NodeId,
        identity: Arc<keys::Identity>,
        wrong_reveals: Arc<std::sync::atomic::AtomicBool>,
        params: Params,
        raft: Raft<TypeConfig>,
        net: NetHandle,
        sm: SharedSm,
        stats: ActorStats,
        metrics: KeeperMetrics,
    ) -> Self {
        let share_bytes = params.share_bytes();
        Self {
            opener: Opener {
                me,
                secret: Arc::new(identity.x25519_secret().clone()),
                params: Arc::new(params),
            },
            me,
            sums: RoundSums::new(share_bytes),
            raft,
            net,
            sm,
            stats,
            metrics,
            revealing: Arc::default(),
            owed_before: BTreeSet::new(),
            identity,
            wrong_reveals,
        }
    }

    /// Reveal again what is still owed since the previous check (see the module doc).
    fn retry_owed(&mut self, ctx: &mut Context<Self>) {
        let owed = {
            let d = self.sm.read().unwrap_or_else(|p| p.into_inner());
            owed_reveals(d.machine.state(), self.me as u16)
        };
        let in_flight = self
            .revealing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut now_owed = BTreeSet::new();
        for (round, participants) in owed {
            if in_flight.contains(&round) {
                continue;
            }
            if self.owed_before.contains(&round) {
                tracing::info!(round, "retrying our reveal");
                self.metrics.reveal_retries.inc();
                self.on_closed(ctx, round, participants);
            } else {
                now_owed.insert(round);
            }
        }
        self.owed_before = now_owed;
    }

    fn fold(&mut self, round: Round, opened: Opened) {
        match opened {
            Opened::Share(s) => self.sums.add(round, Some(s)),
            Opened::Garbage => {
                // Only we can open our share, so this cannot be refused before commit.
                // It counts as zero: the round's output will be garbled (jamming), but no
                // server stalls or crashes. Rejecting such clients is future work.
                self.metrics.open_failures.inc();
                self.sums.add(round, None);
            }
            Opened::Missing => {
                self.stats.failed();
                self.sums.add(round, None);
            }
        }
    }

    /// Open `batch` off the actix thread, then fold the results in and run `then`; no
    /// other message is handled meanwhile.
    fn open_then(
        &mut self,
        ctx: &mut Context<Self>,
        round: Round,
        batch: Vec<Sealed>,
        then: impl FnOnce(&mut Self) + 'static,
    ) {
        let opener = self.opener.clone();
        let fut = async move { opener.open_all(round, batch).await };
        ctx.wait(fut.into_actor(self).map(move |opened, act, _| {
            for o in opened {
                act.fold(round, o);
            }
            then(act);
        }));
    }

    fn on_closed(&mut self, ctx: &mut Context<Self>, round: Round, participants: u32) {
        if self.sums.included(round) == Some(participants) {
            self.reveal(round);
            return;
        }
        // We missed accepted submissions (they were in a snapshot we loaded): recompute
        // the sum from the replicated state.
        let batch: Vec<Sealed> = {
            let d = self.sm.read().unwrap_or_else(|p| p.into_inner());
            d.machine
                .pending_submissions(round)
                .into_iter()
                .map(|s| self.opener.take(s))
                .collect()
        };
        self.sums.forget(round);
        self.metrics.recomputed.inc();
        self.open_then(ctx, round, batch, move |act| act.reveal(round));
    }

    fn reveal(&mut self, round: Round) {
        let mut sum = self.sums.take(round).to_vec();
        if self
            .wrong_reveals
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            // The test-only fault: a server that lies about its sum (and signs the lie):
            // one more in its first element, still a well-formed sum.
            let mut lie = vec![0u8; sum.len()];
            if let Some(b) = lie.first_mut() {
                *b = 1;
            }
            if protocol::shamir::add_into(&mut sum, &lie).is_err() {
                self.stats.failed();
            }
        }
        let Ok(sum) = Bytes::new(sum) else {
            self.stats.failed();
            return;
        };
        let (me, identity) = (self.me as u16, self.identity.clone());
        let (raft, net, stats, reveals) = (
            self.raft.clone(),
            self.net.clone(),
            self.stats.clone(),
            self.metrics.reveals.clone(),
        );
        let revealing = self.revealing.clone();
        revealing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(round);
        tokio::spawn(async move {
            let cmd = Command::Reveal(Reveal::new(round, me, sum, &identity));
            let outcome = write(&raft, &net, cmd).await;
            revealing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&round);
            match outcome {
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

    /// Bound memory: sums for rounds far behind the open one can never be revealed.
    fn prune(&mut self) {
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

impl Actor for ShareKeeper {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::MAILBOX_CAPACITY);
        ctx.run_interval(REVEAL_CHECK, |act, ctx| act.retry_owed(ctx));
    }
}

impl Handler<Committed> for ShareKeeper {
    type Result = ();
    fn handle(&mut self, msg: Committed, ctx: &mut Self::Context) {
        self.stats.dequeued();
        match (&msg.0.effect, &msg.0.command) {
            (Effect::Accepted { round, .. }, Command::Submit(sub)) => {
                let batch = vec![self.opener.take(sub)];
                self.open_then(ctx, *round, batch, Self::prune);
                return;
            }
            (
                Effect::Closed {
                    round,
                    participants,
                },
                _,
            ) => self.on_closed(ctx, *round, *participants),
            (Effect::Void { round, .. }, _) => self.sums.forget(*round),
            _ => {}
        }
        self.prune();
    }
}

#[cfg(test)]
mod tests {
    use protocol::bounded::Bytes;
    use protocol::round::ClosedRound;

    use super::*;

    #[test]
    fn a_closed_round_is_owed_until_our_reveal_is_in() {
        let mut state = State::default();
        let mut closed = ClosedRound {
            participants: 4,
            submissions: Vec::new(),
            reveals: Default::default(),
        };
        closed
            .reveals
            .insert(0, Bytes::new(vec![0u8; 4]).expect("fits"));
        state.awaiting.insert(7, closed.clone());
        closed
            .reveals
            .insert(1, Bytes::new(vec![0u8; 4]).expect("fits"));
        state.awaiting.insert(8, closed);
        // Server 1 revealed round 8 but not 7; server 0 revealed both; server 2 neither.
        assert_eq!(owed_reveals(&state, 1), vec![(7, 4)]);
        assert!(owed_reveals(&state, 0).is_empty());
        assert_eq!(owed_reveals(&state, 2), vec![(7, 4), (8, 4)]);
    }
}
