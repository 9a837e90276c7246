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
use protocol::wire::{ClientRequest, ClientResponse};
use protocol::Effect;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backup_keeper::{BackupKeeper, HandleBackup};
use crate::broadcaster::{Broadcaster, Gossip, HandleHistory};
use crate::client_api::text;
use crate::consensus::{Consensus, HandlePeer};
use crate::gateway::{ClientGateway, HandleClient};
use crate::messages::Committed;
use crate::metrics::{ActorStats, NetMetrics, NodeMetrics, ReasonLabel, ServerLabel};
use crate::net::NetEvent;
use crate::quota::PeerQuotas;
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
///
/// Each call first claims its peer's quota ([`crate::quota`]): over quota, the caller
/// hears "busy" at once; within it, the claim is held until the answer is sent.
pub fn clients(
    mut events: mpsc::Receiver<NetEvent>,
    gateway: Mailbox<ClientGateway>,
    broadcaster: Mailbox<Broadcaster>,
    backups: Mailbox<BackupKeeper>,
    net_metrics: NetMetrics,
) -> JoinHandle<()> {
    let quotas = PeerQuotas::default();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            match ev {
                NetEvent::Client { peer, req, reply } => {
                    net_metrics.client_request(req.kind());
                    // Pages and backup calls (which may cost a log entry) share the
                    // per-peer rate.
                    let page = matches!(
                        req,
                        ClientRequest::History { .. }
                            | ClientRequest::Directory { .. }
                            | ClientRequest::BackupInfo { .. }
                            | ClientRequest::BackupCreate(_)
                            | ClientRequest::BackupEval { .. }
                            | ClientRequest::BackupUnlock { .. }
                    );
                    let guard = match quotas.claim(peer, page, std::time::Instant::now()) {
                        Ok(g) => g,
                        Err(over) => {
                            net_metrics.rejected(over.label());
                            let _ = reply.send(ClientResponse::Unavailable(text(over.message())));
                            continue;
                        }
                    };
                    // The claim lives until the answer is sent (or the call is dropped).
                    let (tx, rx) = oneshot::channel();
                    tokio::spawn(async move {
                        let _guard = guard;
                        if let Ok(answer) = rx.await {
                            let _ = reply.send(answer);
                        }
                    });
                    match req {
                        ClientRequest::History { from_round } => {
                            broadcaster
                                .send(HandleHistory {
                                    from_round,
                                    reply: tx,
                                })
                                .await
                        }
                        req @ (ClientRequest::BackupInfo { .. }
                        | ClientRequest::BackupCreate(_)
                        | ClientRequest::BackupEval { .. }
                        | ClientRequest::BackupUnlock { .. }) => {
                            backups.send(HandleBackup { req, reply: tx }).await
                        }
                        req => gateway.send(HandleClient { req, reply: tx }).await,
                    }
                }
                NetEvent::Gossip(bytes) => broadcaster.send(Gossip(bytes)).await,
                // Raft traffic arrives on its own queue.
                NetEvent::Peer { .. } => {}
            }
        }
    })
}

/// Hand every applied entry, in log order, to the share-keeper and the broadcaster (and
/// backup entries to the backup-keeper), and count refusals and round outcomes.
pub fn applied(
    mut applied: mpsc::Receiver<AppliedEntry>,
    keeper: Mailbox<ShareKeeper>,
    broadcaster: Mailbox<Broadcaster>,
    backups: Mailbox<BackupKeeper>,
    metrics: NodeMetrics,
    fatal: tokio::sync::watch::Sender<Option<String>>,
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
                Effect::Decided { .. } => metrics.round_outcome("decided"),
                Effect::Void { .. } => metrics.round_outcome("void"),
                Effect::Output(_) => metrics.round_outcome("output"),
                Effect::ConfigMismatch(field) => {
                    // This node's parameters differ from the ones the cluster committed:
                    // it would compute different outputs from everyone else. Stop.
                    tracing::error!(%field, "configuration differs from the cluster's; stopping");
                    let _ = fatal.send(Some(format!(
                        "configuration differs from the cluster's: {field}"
                    )));
                }
                Effect::Backup(_) => {
                    backups.send(Committed(entry)).await;
                    continue;
                }
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
    let o = metrics.outputs.clone();
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
                if let Ok(d) = sm.read() {
                    let s = d.machine.state();
                    g.round.set(s.open_round as i64);
                    o.inconsistent_rounds.set(s.inconsistent_rounds as i64);
                    o.unchecked.set(s.unchecked_outputs as i64);
                    for (reason, count) in s.conduct.excluded.by_reason() {
                        let label = ReasonLabel {
                            reason: reason.into(),
                        };
                        o.excluded.get_or_create(&label).set(count as i64);
                    }
                    let cooling = s.conduct.cooling.values().filter(|u| **u > s.open_round);
                    o.cooling.set(cooling.count() as i64);
                    for (server, dissent) in &s.dissent {
                        let label = ServerLabel {
                            server: server.to_string(),
                        };
                        o.dissent.get_or_create(&label).set(dissent.rounds as i64);
                    }
                }
            }
            if rx.changed().await.is_err() {
                break;
            }
        }
    })
}
