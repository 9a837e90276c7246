//! The share-keeper actor: after `Close(r)` it commits this server's list of the clients
//! whose share of `r` it holds; once the round is decided and we serve it, it commits
//! our sum over the included clients; at the output (or void) it forgets the round.
//!
//! ```text
//!  dispatcher ─Committed(Closed r)───► ShareKeeper ─write(Have(r, me, list))──► Raft
//!             ─Committed(Decided r)──► ShareKeeper ─write(Reveal(r, me, Σ_I))─► Raft
//!             ─Committed(Output/Void)► ShareKeeper: forget r's shares (zeroized)
//! ```
//! Shares arrive through the client API ([`crate::client_api`]) into [`crate::held`];
//! none is ever in the log. A sum is never revealed before the replicated state decided
//! its round with at least k clients: the keeper reveals only on a `Decided` effect,
//! and the state machine refuses reveals for any other round or from a server outside
//! the serving set.
//!
//! A list or reveal that did not commit (its write gave up) is retried: every
//! [`REVEAL_CHECK`] the keeper looks for rounds still lacking ours, and one owed at two
//! checks in a row with no write of ours in flight is written again. A server that
//! restarted holds nothing, lists nothing, and cannot serve a round decided with it;
//! the others reveal (t + 1 of them suffice).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use openraft::Raft;
use protocol::bounded::Bytes;
use protocol::bounded::Fixed;
use protocol::validity::Validity;
use protocol::wire::{ClientId, Command, Have, HeldEntry, Reveal, Round};
use protocol::{Effect, State};

use crate::client_api::SharedHeld;
use crate::messages::Committed;
use crate::metrics::{ActorStats, KeeperMetrics};
use crate::net::NetHandle;
use crate::store::SharedSm;
use crate::types::{Applied, NodeId, TypeConfig};
use crate::write::write;

/// How often the keeper looks for rounds still owed our list or reveal. Longer than a
/// normal write takes, so the usual path is never raced.
pub const REVEAL_CHECK: Duration = Duration::from_secs(3);

/// What a round still lacks from us.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owed {
    /// Our list of held shares (the round is closed and undecided).
    Have(Round),
    /// Our sum over the included clients (the round is decided and we serve it).
    Reveal(Round, Vec<ClientId>),
}

impl Owed {
    fn round(&self) -> Round {
        match self {
            Self::Have(r) | Self::Reveal(r, _) => *r,
        }
    }
}

/// Rounds lacking our list (only those we listed here before: a restarted server that
/// holds nothing must not post an empty list) or our reveal.
pub fn owed(state: &State, me: u16, listed_here: impl Fn(Round) -> bool) -> Vec<Owed> {
    let mut out = Vec::new();
    for (round, closed) in &state.awaiting {
        match &closed.decided {
            None if !closed.haves.contains_key(&me) && listed_here(*round) => {
                out.push(Owed::Have(*round));
            }
            Some(d) if d.servers.contains(&me) && !closed.reveals.contains_key(&me) => {
                out.push(Owed::Reveal(*round, d.included.clone()));
            }
            _ => {}
        }
    }
    out
}

/// Lists our held shares and reveals our sums.
pub struct ShareKeeper {
    me: NodeId,
    held: SharedHeld,
    raft: Raft<TypeConfig>,
    net: NetHandle,
    sm: SharedSm,
    stats: ActorStats,
    metrics: KeeperMetrics,
    /// Rounds whose list or reveal write is in flight (shared with those writes' tasks).
    writing: Arc<Mutex<BTreeSet<Round>>>,
    /// What was owed at the previous check.
    owed_before: BTreeSet<Owed>,
    /// Signs our lists and reveals.
    identity: Arc<keys::Identity>,
    /// Test-only fault: reveal a wrong sum while set (see [`crate::server::Faults`]).
    wrong_reveals: Arc<std::sync::atomic::AtomicBool>,
    /// Round parameters (to lay out a round's circuit).
    params: Arc<protocol::Params>,
}

impl ShareKeeper {
    /// A keeper for server `me`.
    #[allow(clippy::too_many_arguments)] // one constructor, called once, every field needed
    pub fn new(
        me: NodeId,
        identity: Arc<keys::Identity>,
        wrong_reveals: Arc<std::sync::atomic::AtomicBool>,
        held: SharedHeld,
        raft: Raft<TypeConfig>,
        net: NetHandle,
        sm: SharedSm,
        stats: ActorStats,
        metrics: KeeperMetrics,
        params: Arc<protocol::Params>,
    ) -> Self {
        Self {
            params,
            me,
            held,
            raft,
            net,
            sm,
            stats,
            metrics,
            writing: Arc::default(),
            owed_before: BTreeSet::new(),
            identity,
            wrong_reveals,
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, crate::held::HeldShares> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write again what is still owed since the previous check (see the module doc).
    fn retry_owed(&mut self) {
        let now_owed: BTreeSet<Owed> = {
            let d = self.sm.read().unwrap_or_else(|p| p.into_inner());
            let held = self.held();
            owed(d.machine.state(), self.me as u16, |r| held.is_closed(r))
                .into_iter()
                .collect()
        };
        let in_flight = self
            .writing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let again: Vec<Owed> = now_owed.intersection(&self.owed_before).cloned().collect();
        for o in &again {
            if in_flight.contains(&o.round()) {
                continue;
            }
            tracing::info!(round = o.round(), "retrying our part of a round");
            self.metrics.reveal_retries.inc();
            match o {
                Owed::Have(r) => self.list(*r),
                Owed::Reveal(r, included) => self.reveal(*r, included),
            }
        }
        self.owed_before = now_owed;
    }

    /// Commit our list of the clients whose share of `round` we hold (none: no list),
    /// each with our check of its validity proof for the round's layout. Checks made
    /// when a share came, for the layout this node knew then, stand if the round was
    /// laid out the same; the others are made now, off the actor's thread.
    fn list(&mut self, round: Round) {
        let laid_out = self
            .sm
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .machine
            .state()
            .awaiting
            .get(&round)
            .map(|c| c.laid_out.clone())
            .unwrap_or_default();
        let (mut entries, unchecked) = self.held().close(round, &laid_out);
        if entries.is_empty() && unchecked.is_empty() {
            return;
        }
        let (me, identity, params) = (self.me as u16, self.identity.clone(), self.params.clone());
        self.metrics.late_checks.inc_by(unchecked.len() as u64);
        let list = async move {
            if !unchecked.is_empty() {
                let checks = tokio::task::spawn_blocking(move || {
                    let circuit = Validity::for_round(&params, &laid_out);
                    unchecked
                        .iter()
                        .filter_map(|u| {
                            let check = protocol::validity::query(
                                &circuit,
                                &u.share,
                                &u.proof.share,
                                &u.proof.challenge,
                            )
                            .ok()?;
                            Some(HeldEntry {
                                client: u.client,
                                digest: u.digest,
                                check: Fixed(check),
                            })
                        })
                        .collect::<Vec<_>>()
                })
                .await;
                entries.extend(checks.unwrap_or_default());
            }
            match Have::new(round, me, entries, &identity) {
                Ok(have) => Some(Command::Have(have)),
                Err(e) => {
                    tracing::error!(round, error = %e, "our list of held shares is too long");
                    None
                }
            }
        };
        self.commit_when(round, list, self.metrics.haves.clone());
    }

    /// Commit our sum over `included`, if we hold all their shares.
    fn reveal(&mut self, round: Round, included: &[ClientId]) {
        let Some(sum) = self.held().sum(round, included) else {
            self.metrics.cannot_serve.inc();
            tracing::warn!(
                round,
                "we serve this round but lack shares of it (restarted?)"
            );
            return;
        };
        let mut sum = sum.to_vec();
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
        let cmd = Command::Reveal(Reveal::new(round, self.me as u16, sum, &self.identity));
        self.commit(round, cmd, self.metrics.reveals.clone());
    }

    /// Write `cmd` for `round` in its own task, tracked so the retry check waits for it.
    fn commit(
        &self,
        round: Round,
        cmd: Command,
        done: prometheus_client::metrics::counter::Counter,
    ) {
        self.commit_when(round, async move { Some(cmd) }, done);
    }

    /// Write what `cmd` makes for `round` (nothing if it makes none) in its own task,
    /// tracked so the retry check waits for it.
    fn commit_when(
        &self,
        round: Round,
        cmd: impl std::future::Future<Output = Option<Command>> + Send + 'static,
        done: prometheus_client::metrics::counter::Counter,
    ) {
        let (raft, net, stats) = (self.raft.clone(), self.net.clone(), self.stats.clone());
        let writing = self.writing.clone();
        writing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(round);
        tokio::spawn(async move {
            let outcome = match cmd.await {
                Some(cmd) => Some(write(&raft, &net, cmd).await),
                None => None,
            };
            writing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&round);
            match outcome {
                Some(Ok(Applied::Ok { .. })) => {
                    done.inc();
                }
                // Replays after a restart meet a round already past this step: fine.
                Some(Ok(Applied::Rejected(_))) | Some(Ok(Applied::Internal)) => {}
                Some(Err(e)) => {
                    stats.failed();
                    tracing::warn!(round, error = %e, "could not commit our part of the round");
                }
                None => stats.failed(),
            }
        });
    }

    /// Bound memory: rounds far behind the open one can never be decided.
    fn prune(&mut self) {
        let open = self
            .sm
            .read()
            .map(|d| d.machine.state().open_round)
            .unwrap_or(0);
        let floor = open.saturating_sub(protocol::round::MAX_AWAITING_REVEAL as u64 + 2);
        let bytes = {
            let mut held = self.held();
            held.forget_below(floor);
            held.held_bytes()
        };
        self.metrics.held_bytes.set(bytes as i64);
    }
}

impl Actor for ShareKeeper {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::MAILBOX_CAPACITY);
        ctx.run_interval(REVEAL_CHECK, |act, _| act.retry_owed());
    }
}

impl Handler<Committed> for ShareKeeper {
    type Result = ();
    fn handle(&mut self, msg: Committed, _: &mut Self::Context) {
        self.stats.dequeued();
        match &msg.0.effect {
            Effect::Closed { round } => self.list(*round),
            Effect::Decided {
                round,
                servers,
                included,
            } if servers.contains(&(self.me as u16)) => self.reveal(*round, included),
            Effect::Output(o) => self.held().forget(o.round),
            Effect::Void { round, .. } => self.held().forget(*round),
            _ => {}
        }
        self.prune();
    }
}

#[cfg(test)]
mod tests {
    use protocol::bounded::Bytes;
    use protocol::round::{ClosedRound, Decision};

    use super::*;

    #[test]
    fn a_round_is_owed_our_list_then_our_reveal_until_they_are_in() {
        let mut state = State::default();
        let entry = HeldEntry {
            client: Fixed([1; 32]),
            digest: Fixed([2; 16]),
            check: Fixed([3; protocol::validity::CHECK_BYTES]),
        };
        // Round 7: closed, server 1 listed, we (0) have not.
        let mut listing = ClosedRound::default();
        listing.haves.insert(1, vec![entry]);
        state.awaiting.insert(7, listing.clone());
        // Round 8: decided with us serving, our reveal missing; round 9: ours is in.
        let mut decided = ClosedRound {
            decided: Some(Decision {
                servers: vec![0, 1],
                included: vec![entry.client],
            }),
            ..ClosedRound::default()
        };
        decided
            .reveals
            .insert(1, Bytes::new(vec![0u8; 8]).expect("fits"));
        state.awaiting.insert(8, decided.clone());
        decided
            .reveals
            .insert(0, Bytes::new(vec![0u8; 8]).expect("fits"));
        state.awaiting.insert(9, decided);
        assert_eq!(
            owed(&state, 0, |_| true),
            vec![Owed::Have(7), Owed::Reveal(8, vec![entry.client])]
        );
        // A server that never listed round 7 here (it restarted) owes no list.
        assert_eq!(
            owed(&state, 0, |_| false),
            vec![Owed::Reveal(8, vec![entry.client])]
        );
        // Server 2 serves none of them and owes nothing but round 7's list.
        assert_eq!(owed(&state, 2, |_| true), vec![Owed::Have(7)]);
    }
}
