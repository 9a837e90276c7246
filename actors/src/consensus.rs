//! The consensus actor: wraps openraft. It serves peers' Raft RPCs and forwarded writes,
//! and ticks the leader's round clock. Client calls never reach its mailbox (they go to
//! [`crate::gateway`]), so no client traffic can queue in front of a heartbeat.
//!
//! ```text
//!  dispatch::raft ─HandlePeer─► Consensus ─task per RPC─► raft.append_entries/vote/...
//!                                  └ every CLOCK_TICK: RoundClock::tick (acts on the leader)
//! ```
//! The handler only routes: each RPC runs as its own tokio task, so replication never
//! queues behind a slow forwarded write, and the actix thread never waits on Raft.

use std::time::Duration;

use actix::prelude::*;
use openraft::error::{ClientWriteError, RaftError};
use openraft::Raft;
use tokio::sync::oneshot;

use crate::in_flight::InFlight;
use crate::metrics::ActorStats;
use crate::round_clock::RoundClock;
use crate::types::{Applied, ForwardOutcome, NodeId, PeerRequest, PeerResponse, TypeConfig};
use protocol::wire::{Command, RejectReason};

/// How often the round clock is checked: well under any sensible `round_ms`.
const CLOCK_TICK: Duration = Duration::from_millis(20);

/// Wraps openraft for the rest of the server.
pub struct Consensus {
    raft: Raft<TypeConfig>,
    stats: ActorStats,
    clock: RoundClock,
    in_flight: InFlight,
}

impl Consensus {
    /// The actor over `raft`, with the leader's round `clock`; forwarded submissions
    /// pass through `in_flight`, like the ones clients hand us directly.
    pub fn new(
        raft: Raft<TypeConfig>,
        clock: RoundClock,
        in_flight: InFlight,
        stats: ActorStats,
    ) -> Self {
        Self {
            raft,
            stats,
            clock,
            in_flight,
        }
    }
}

impl Actor for Consensus {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::MAILBOX_CAPACITY);
        ctx.run_interval(CLOCK_TICK, |act, _| act.clock.tick());
    }
}

/// A Raft RPC or forwarded write from server `from`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandlePeer {
    /// The sending server.
    pub from: NodeId,
    /// Its request.
    pub req: PeerRequest,
    /// Where the answer goes.
    pub reply: oneshot::Sender<PeerResponse>,
}

impl Handler<HandlePeer> for Consensus {
    type Result = ();
    fn handle(&mut self, msg: HandlePeer, _: &mut Self::Context) {
        self.stats.dequeued();
        let raft = self.raft.clone();
        let in_flight = self.in_flight.clone();
        let stats = self.stats.clone();
        // Raft RPCs run concurrently: replication must not queue behind a slow write.
        tokio::spawn(async move {
            let resp = match msg.req {
                PeerRequest::Append(r) => PeerResponse::Append(raft.append_entries(r).await),
                PeerRequest::Vote(r) => PeerResponse::Vote(raft.vote(r).await),
                PeerRequest::Snapshot(r) => PeerResponse::Snapshot(raft.install_snapshot(r).await),
                PeerRequest::Forward(cmd) => {
                    // Copies of one submission forwarded by different servers at once
                    // are written once: the first holds the claim until it commits.
                    let claim = match &cmd {
                        Command::Submit(sub) => match in_flight.claim(sub.client, sub.round) {
                            Some(c) => Some(c),
                            None => {
                                let dup = RejectReason::DuplicateSubmission { round: sub.round };
                                let _ =
                                    msg.reply
                                        .send(PeerResponse::Forward(ForwardOutcome::Applied(
                                            Applied::Rejected(dup),
                                        )));
                                return;
                            }
                        },
                        _ => None,
                    };
                    let outcome = PeerResponse::Forward(match raft.client_write(cmd).await {
                        Ok(r) => ForwardOutcome::Applied(r.data),
                        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                            ForwardOutcome::NotLeader(f.leader_id)
                        }
                        Err(e) => {
                            stats.failed();
                            ForwardOutcome::Failed(e.to_string())
                        }
                    });
                    drop(claim);
                    outcome
                }
            };
            tracing::trace!(from = msg.from, "answered peer");
            let _ = msg.reply.send(resp);
        });
    }
}
