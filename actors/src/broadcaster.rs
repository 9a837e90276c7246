//! The broadcaster actor: signs each round output this node computes and publishes it on
//! gossipsub; answers clients' history requests with signed pages of retained outputs.
//!
//! ```text
//!  dispatcher ─Committed(Output r)─► Broadcaster ─sign (blocking pool)─► Publish ─► PeerConnection
//!  dispatcher ─HandleHistory──────► Broadcaster ─read page, sign (blocking pool)─► reply
//!  dispatcher ─Gossip─────────────► Broadcaster (counted only: we compute outputs ourselves)
//! ```
//! Hashing and signing run on tokio's blocking pool, never on the actix thread. Outputs
//! are published in log order (the actor waits for each), and a full peer-connection
//! mailbox slows the broadcaster rather than growing a queue.

use std::sync::Arc;

use actix::prelude::*;
use protocol::bounded::{BoundedVec, Fixed};
use protocol::wire::{ClientResponse, OutputVouch, Round, RoundOutput, SignedOutput};
use protocol::Effect;
use tokio::sync::oneshot;

use crate::client_api::text;
use crate::messages::{Committed, Publish};
use crate::metrics::ActorStats;
use crate::peer_connection::PeerConnection;
use crate::store::SharedSm;
use crate::types::NodeId;

/// Signs outputs as this server; cheap to clone into a blocking task.
#[derive(Clone)]
struct Signer {
    me: NodeId,
    identity: Arc<keys::Identity>,
}

impl Signer {
    fn vouch(&self, output: RoundOutput) -> SignedOutput {
        let hash = output.hash();
        let signature = Fixed(
            self.identity
                .sign(&OutputVouch::signed_bytes(output.round, &hash)),
        );
        let vouch = OutputVouch {
            round: output.round,
            output_hash: Fixed(hash),
            server: self.me as u16,
            signature,
        };
        SignedOutput { output, vouch }
    }
}

/// Publishes signed round outputs and serves history.
pub struct Broadcaster {
    signer: Signer,
    stats: ActorStats,
    peer_conn: Addr<PeerConnection>,
    peer_stats: ActorStats,
    sm: SharedSm,
}

impl Broadcaster {
    /// The broadcaster of server `me`, publishing through `peer_conn`.
    pub fn new(
        me: NodeId,
        identity: keys::Identity,
        sm: SharedSm,
        peer_conn: Addr<PeerConnection>,
        stats: ActorStats,
        peer_stats: ActorStats,
    ) -> Self {
        Self {
            signer: Signer {
                me,
                identity: Arc::new(identity),
            },
            stats,
            peer_conn,
            peer_stats,
            sm,
        }
    }
}

impl Actor for Broadcaster {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::MAILBOX_CAPACITY);
    }
}

impl Handler<Committed> for Broadcaster {
    type Result = ();
    fn handle(&mut self, msg: Committed, ctx: &mut Self::Context) {
        self.stats.dequeued();
        let Effect::Output(output) = msg.0.effect else {
            return;
        };
        let signer = self.signer.clone();
        let peer_conn = self.peer_conn.clone();
        let peer_stats = self.peer_stats.clone();
        let publish = async move {
            let signed =
                tokio::task::spawn_blocking(move || protocol::encode(&signer.vouch(output)))
                    .await
                    .map_err(|_| ())?
                    .map_err(|_| ())?;
            peer_stats.enqueued();
            peer_conn.send(Publish(signed)).await.map_err(|_| ())
        };
        ctx.wait(publish.into_actor(self).map(|res, act, _| {
            if res.is_err() {
                act.stats.failed();
            }
        }));
    }
}

/// A client's request for retained outputs from `from_round` on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandleHistory {
    /// First round wanted.
    pub from_round: Round,
    /// Where the page goes.
    pub reply: oneshot::Sender<ClientResponse>,
}

impl Handler<HandleHistory> for Broadcaster {
    type Result = ();
    fn handle(&mut self, msg: HandleHistory, ctx: &mut Self::Context) {
        self.stats.dequeued();
        let (outputs, oldest_kept) = {
            let d = self.sm.read().unwrap_or_else(|p| p.into_inner());
            let outs = &d.machine.state().outputs;
            let picked: Vec<RoundOutput> = outs
                .range(msg.from_round..)
                .take(protocol::limits::MAX_HISTORY_OUTPUTS)
                .map(|(_, o)| o.clone())
                .collect();
            (picked, outs.keys().next().copied())
        };
        let signer = self.signer.clone();
        // Signing a page (up to MAX_HISTORY_OUTPUTS outputs) is the expensive part: it
        // runs on the blocking pool, one page at a time (the actor waits for it, so its
        // bounded mailbox is the only queue of history requests).
        let page = tokio::task::spawn_blocking(move || {
            let signed: Vec<SignedOutput> = outputs.into_iter().map(|o| signer.vouch(o)).collect();
            let resp = match BoundedVec::new(signed) {
                Ok(outputs) => ClientResponse::History {
                    outputs,
                    oldest_kept,
                },
                Err(_) => ClientResponse::Unavailable(text("history page too large")),
            };
            let _ = msg.reply.send(resp);
        });
        ctx.wait(page.into_actor(self).map(|res, act, _| {
            if res.is_err() {
                act.stats.failed();
            }
        }));
    }
}

/// A gossip message a peer published on the output topic.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Gossip(pub Vec<u8>);

impl Handler<Gossip> for Broadcaster {
    type Result = ();
    fn handle(&mut self, msg: Gossip, _: &mut Self::Context) {
        self.stats.dequeued();
        // Servers compute outputs themselves; peers' copies are only counted here.
        tracing::trace!(bytes = msg.0.len(), "gossip from a peer");
    }
}
