//! The consensus actor: wraps openraft. It serves peers' Raft RPCs and forwarded writes,
//! hands clients' calls to [`crate::client_api`], and ticks the leader's round clock.
//!
//! ```text
//!  dispatcher ─HandlePeer─►   Consensus ─task per RPC─► raft.append_entries/vote/...
//!             ─HandleClient─►    │      ─task per call (bounded by permits)─► client_api
//!                                └ every CLOCK_TICK: RoundClock::tick (acts on the leader)
//! ```
//! Handlers only route: each RPC or call runs as its own tokio task, so a slow write
//! never holds the actor (or the actix thread) and replication never queues behind it.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use openraft::error::{ClientWriteError, RaftError};
use openraft::Raft;
use protocol::wire::{ClientRequest, ClientResponse};
use tokio::sync::oneshot;

use crate::client_api::{self, ClientApi};
use crate::metrics::ActorStats;
use crate::round_clock::RoundClock;
use crate::types::{ForwardOutcome, NodeId, PeerRequest, PeerResponse, TypeConfig};

/// Client calls a server serves at once; enough for hundreds of clients submitting in
/// the same round, small enough that a flood cannot pile up unbounded tasks.
pub const MAX_CLIENT_CALLS_IN_FLIGHT: usize = 2048;

/// How often the round clock is checked: well under any sensible `round_ms`.
const CLOCK_TICK: Duration = Duration::from_millis(20);

/// Wraps openraft for the rest of the server.
pub struct Consensus {
    raft: Raft<TypeConfig>,
    api: ClientApi,
    stats: ActorStats,
    clock: RoundClock,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl Consensus {
    /// The actor over `raft`, serving clients through `api`.
    pub fn new(
        raft: Raft<TypeConfig>,
        api: ClientApi,
        clock: RoundClock,
        stats: ActorStats,
    ) -> Self {
        Self {
            raft,
            api,
            stats,
            clock,
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_CLIENT_CALLS_IN_FLIGHT)),
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

/// A client's call (anything but history, which the broadcaster serves).
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandleClient {
    /// The call.
    pub req: ClientRequest,
    /// Where the answer goes.
    pub reply: oneshot::Sender<ClientResponse>,
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

impl Handler<HandleClient> for Consensus {
    type Result = ();
    fn handle(&mut self, msg: HandleClient, _: &mut Self::Context) {
        self.stats.dequeued();
        // Each client call runs as its own task (a write may wait for an election); the
        // permit bounds how many may be in flight, and beyond that callers hear "busy".
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            self.stats.failed();
            let _ = msg.reply.send(ClientResponse::Unavailable(client_api::text(
                "server busy: too many requests in flight",
            )));
            return;
        };
        let api = self.api.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let resp = api.serve(msg.req).await;
            let _ = msg.reply.send(resp);
        });
    }
}
