//! The tasks between the network, the state machine and the actors.
//!
//! ```text
//!  net event loop ─raft queue───► dispatch::raft ────HandlePeer────► Consensus
//!                 ─client queue─► dispatch::clients ─HandleClient──► ClientGateway
//!                                                   ─HandleHistory/Gossip─► Broadcaster
//!  StateMachine ─AppliedEntry─► applied dispatcher ─Committed─► ShareKeeper, Broadcaster
//!                                        └ counts refusals and round outcomes
//!  raft.metrics() watch ─► gauge task ─► Raft gauges
//! ```
//! Dispatchers use `Addr::send(..).await`, so a full mailbox slows the producer instead
//! of growing without bound.

use actix::prelude::*;
use openraft::Raft;
use protocol::wire::ClientRequest;
use protocol::Effect;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::broadcaster::{Broadcaster, Gossip, HandleHistory};
use crate::consensus::{Consensus, HandlePeer};
use crate::gateway::{ClientGateway, HandleClient};
use crate::messages::Committed;
use crate::metrics::{ActorStats, NodeMetrics, ReasonLabel};
use crate::net::NetEvent;
use crate::share_keeper::ShareKeeper;
use crate::store::{AppliedEntry, SharedSm};
use crate::types::TypeConfig;

/// An actor's address with the counters its mailbox depth is tracked in.
pub struct Mailbox<A: Actor> {
    /// Where to send.
    pub addr: Addr<A>,
    /// Its counters.
    pub stats: ActorStats,
}

impl<A: Actor> Clone for Mailbox<A> {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<A: Actor> Mailbox<A> {
    /// Send `msg`, waiting while the mailbox is full.
    async fn send<M>(&self, msg: M)
    where
        A: Handler<M>,
        A::Context: actix::dev::ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        self.stats.enqueued();
        if self.addr.send(msg).await.is_err() {
            self.stats.failed();
        }
    }
}

/// Route servers' Raft RPCs to the consensus actor until the network stops.
pub fn raft(mut events: mpsc::Receiver<NetEvent>, consensus: Mailbox<Consensus>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if let NetEvent::Peer { from, req, reply } = ev {
                consensus.send(HandlePeer { from, req, reply }).await;
            }
        }
    })
}

/// Route client calls and gossip to the gateway and the broadcaster until the network
/// stops. It never touches the consensus actor's mailbox.
pub fn clients(
    mut events: mpsc::Receiver<NetEvent>,
    gateway: Mailbox<ClientGateway>,
    broadcaster: Mailbox<Broadcaster>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            match ev {
                NetEvent::Client {
                    req: ClientRequest::History { from_round },
                    reply,
                } => broadcaster.send(HandleHistory { from_round, reply }).await,
                NetEvent::Client { req, reply } => gateway.send(HandleClient { req, reply }).await,
                NetEvent::Gossip(bytes) => broadcaster.send(Gossip(bytes)).await,
                // Raft traffic arrives on its own queue.
                NetEvent::Peer { .. } => {}
            }
        }
    })
}

/// Hand every applied entry, in log order, to the share-keeper and the broadcaster, and
/// count refusals and round outcomes.
pub fn applied(
    mut applied: mpsc::Receiver<AppliedEntry>,
    keeper: Mailbox<ShareKeeper>,
    broadcaster: Mailbox<Broadcaster>,
    metrics: NodeMetrics,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(entry) = applied.recv().await {
            match &entry.effect {
                Effect::Rejected(r) => {
                    let label = ReasonLabel {
                        reason: r.label().into(),
                    };
                    metrics.rejected_commands.get_or_create(&label).inc();
                }
                Effect::Closed { .. } => metrics.round_outcome("closed"),
                Effect::Void { .. } => metrics.round_outcome("void"),
                Effect::Output(_) => metrics.round_outcome("output"),
                _ => {}
            }
            keeper.send(Committed(entry.clone())).await;
            broadcaster.send(Committed(entry)).await;
        }
    })
}

/// Mirror openraft's metrics (and the open round) into the Raft gauges.
pub fn raft_gauges(raft: &Raft<TypeConfig>, sm: SharedSm, metrics: &NodeMetrics) -> JoinHandle<()> {
    let mut rx = raft.metrics();
    let g = metrics.raft.clone();
    tokio::spawn(async move {
        loop {
            {
                let m = rx.borrow_and_update().clone();
                g.term.set(m.current_term as i64);
                g.leader
                    .set(m.current_leader.map(|l| l as i64).unwrap_or(-1));
                g.last_log_index
                    .set(m.last_log_index.map(|i| i as i64).unwrap_or(-1));
                g.applied_index
                    .set(m.last_applied.map(|l| l.index as i64).unwrap_or(-1));
                g.snapshot_index
                    .set(m.snapshot.map(|l| l.index as i64).unwrap_or(-1));
                let round = sm.read().map(|d| d.machine.state().open_round).unwrap_or(0);
                g.round.set(round as i64);
            }
            if rx.changed().await.is_err() {
                break;
            }
        }
    })
}
