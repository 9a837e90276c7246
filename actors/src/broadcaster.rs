//! The broadcaster actor: signs each round output this node computes and publishes it on
//! gossipsub; answers clients' history requests with signed pages of retained outputs,
//! read from disk ([`crate::archive`]).
//!
//! ```text
//!  dispatcher ─Committed(Output r)─► Broadcaster ─sign (blocking pool)─► Publish ─► PeerConnection
//!  dispatcher ─HandleHistory──────► Broadcaster ─read page from disk, sign (blocking pool)─► reply
//!  dispatcher ─Gossip─────────────► Broadcaster (counted only: we compute outputs ourselves)
//! ```
//! Each retained output is hashed and signed once (when it is made, or on the first
//! history request after a restart), never per request. Hashing and signing run on
//! tokio's blocking pool, never on the actix thread. Outputs
//! are published in log order (the actor waits for each), and a full peer-connection
//! mailbox slows the broadcaster rather than growing a queue.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;
use protocol::bounded::{BoundedVec, Fixed};
use protocol::wire::{ClientResponse, OutputVouch, Round, RoundOutput, SignedOutput};
use protocol::Effect;
use tokio::sync::oneshot;

use crate::archive::OutputArchive;
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
    /// Hash `output` and sign (round, hash).
    fn vouch(&self, output: &RoundOutput) -> OutputVouch {
        let hash = output.hash();
        let signature = Fixed(
            self.identity
                .sign(&OutputVouch::signed_bytes(output.round, &hash)),
        );
        OutputVouch {
            round: output.round,
            output_hash: Fixed(hash),
            server: self.me as u16,
            signature,
        }
    }
}

/// Publishes signed round outputs and serves history.
pub struct Broadcaster {
    signer: Signer,
    stats: ActorStats,
    peer_conn: Addr<PeerConnection>,
    peer_stats: ActorStats,
    sm: SharedSm,
    archive: OutputArchive,
    /// Our vouch for each retained output, computed once per round (not per history
    /// request); pruned to the retention window as outputs are made, so bounded by it.
    vouches: BTreeMap<Round, OutputVouch>,
}

impl Broadcaster {
    /// The broadcaster of server `me`, publishing through `peer_conn`.
    pub fn new(
        me: NodeId,
        identity: Arc<keys::Identity>,
        sm: SharedSm,
        archive: OutputArchive,
        peer_conn: Addr<PeerConnection>,
        stats: ActorStats,
        peer_stats: ActorStats,
    ) -> Self {
        Self {
            signer: Signer { me, identity },
            stats,
            peer_conn,
            peer_stats,
            sm,
            archive,
            vouches: BTreeMap::new(),
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
        // A void round is published too: f+1 servers' word that it was void opens the
        // next round for clients as an output does.
        let (Effect::Output(output) | Effect::Void { output, .. }) = msg.0.effect else {
            return;
        };
        let signer = self.signer.clone();
        let peer_conn = self.peer_conn.clone();
        let peer_stats = self.peer_stats.clone();
        let publish = async move {
            let (vouch, bytes) = tokio::task::spawn_blocking(move || {
                let vouch = signer.vouch(&output);
                let bytes = protocol::encode(&SignedOutput {
                    output,
                    vouch: vouch.clone(),
                });
                (vouch, bytes)
            })
            .await
            .map_err(|_| ())?;
            let bytes = bytes.map_err(|_| ())?;
            peer_stats.enqueued();
            peer_conn.send(Publish(bytes)).await.map_err(|_| ())?;
            Ok::<_, ()>(vouch)
        };
        ctx.wait(publish.into_actor(self).map(|res, act, _| match res {
            Ok(vouch) => {
                // Vouches are kept as long as their outputs are, whether or not anyone
                // asks for history.
                let keep_from = vouch.round.saturating_sub(act.archive.retention() - 1);
                act.vouches.insert(vouch.round, vouch);
                while let Some(oldest) = act.vouches.first_entry() {
                    if *oldest.key() >= keep_from {
                        break;
                    }
                    oldest.remove();
                }
            }
            Err(()) => act.stats.failed(),
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
        // Rounds below the oldest still awaiting reveals (or below the open one) are
        // revealed or void.
        let settled_through = {
            let d = self.sm.read().unwrap_or_else(|p| p.into_inner());
            let state = d.machine.state();
            state
                .awaiting
                .keys()
                .next()
                .copied()
                .unwrap_or(state.open_round)
                .checked_sub(1)
        };
        let vouches: BTreeMap<Round, OutputVouch> = self
            .vouches
            .range(msg.from_round..)
            .take(protocol::limits::MAX_HISTORY_OUTPUTS)
            .map(|(r, v)| (*r, v.clone()))
            .collect();
        let archive = self.archive.clone();
        let signer = self.signer.clone();
        // Signing is the expensive part, and only outputs we have not vouched for yet
        // (after a restart) need it: that runs on the blocking pool, one page at a time
        // (the actor waits, so its bounded mailbox is the only queue of history requests).
        let answer = tokio::task::spawn_blocking(move || {
            let page = match archive.page(msg.from_round, protocol::limits::MAX_HISTORY_OUTPUTS) {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read retained outputs");
                    let _ = msg.reply.send(ClientResponse::Unavailable(text(
                        "retained outputs unreadable here",
                    )));
                    return Vec::new();
                }
            };
            let oldest_kept = page.oldest_kept;
            // An output is applied to the state just before it is written to disk: never
            // call a round settled that this page could not yet hold, or a client would
            // count it void.
            let settled_through = settled_through.zip(page.newest).map(|(s, n)| s.min(n));
            let mut fresh = Vec::new();
            let signed: Vec<SignedOutput> = page
                .outputs
                .into_iter()
                .map(|output| {
                    let vouch = vouches.get(&output.round).cloned().unwrap_or_else(|| {
                        let v = signer.vouch(&output);
                        fresh.push(v.clone());
                        v
                    });
                    SignedOutput { output, vouch }
                })
                .collect();
            let resp = match BoundedVec::new(signed) {
                Ok(outputs) => ClientResponse::History {
                    outputs,
                    oldest_kept,
                    settled_through,
                },
                Err(_) => ClientResponse::Unavailable(text("history page too large")),
            };
            let _ = msg.reply.send(resp);
            fresh
        });
        // Vouches signed here are for retained outputs; the window prunes them as new
        // outputs are made.
        ctx.wait(answer.into_actor(self).map(|res, act, _| match res {
            Ok(fresh) => act.vouches.extend(fresh.into_iter().map(|v| (v.round, v))),
            Err(_) => act.stats.failed(),
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
