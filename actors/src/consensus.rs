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

use crate::metrics::ActorStats;
use crate::round_clock::RoundClock;
use crate::types::{ForwardOutcome, NodeId, PeerRequest, PeerResponse, TypeConfig};

/// How often the round clock is checked: well under any sensible `round_ms`.
const CLOCK_TICK: Duration = Duration::from_millis(20);

/// Wraps openraft for the rest of the server.
pub struct Consensus {
    raft: Raft<TypeConfig>,
    stats: ActorStats,
    clock: RoundClock,
}

impl Consensus {
    /// The actor over `raft`, with the leader's round `clock`.
    pub fn new(raft: Raft<TypeConfig>, clock: RoundClock, stats: ActorStats) -> Self {
        Self { raft, stats, clock }
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
        let stats = self.stats.clone();
        // Raft RPCs run concurrently: replication must not queue behind a slow write.
        tokio::spawn(async move {
            let resp = match msg.req {
                PeerRequest::Append(r) => PeerResponse::Append(raft.append_entries(r).await),
                PeerRequest::Vote(r) => PeerResponse::Vote(raft.vote(r).await),
                PeerRequest::Snapshot(r) => PeerResponse::Snapshot(raft.install_snapshot(r).await),
                PeerRequest::Forward(cmd) => {
                    PeerResponse::Forward(match raft.client_write(cmd).await {
                        Ok(r) => ForwardOutcome::Applied(r.data),
                        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                            ForwardOutcome::NotLeader(f.leader_id)
                        }
                        Err(e) => {
                            stats.failed();
                            ForwardOutcome::Failed(e.to_string())
                        }
                    })
                }
            };
            tracing::trace!(from = msg.from, "answered peer");
            let _ = msg.reply.send(resp);
        });
    }
}
