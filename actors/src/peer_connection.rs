//! The peer-connection actor: owns the libp2p event loop task (see [`crate::net`]) and
//! publishes what the broadcaster hands it.
//!
//! ```text
//!  Broadcaster ─Publish─► PeerConnection ─NetHandle::publish─► net event loop ─► gossipsub
//! ```
//! Stopping the actor aborts the loop task, which closes every connection.

use actix::prelude::*;

use crate::messages::Publish;
use crate::metrics::ActorStats;
use crate::net::NetHandle;

/// Owns the swarm's event loop task.
pub struct PeerConnection {
    net: NetHandle,
    task: Option<tokio::task::JoinHandle<()>>,
    stats: ActorStats,
}

impl PeerConnection {
    /// Wrap the running loop `task`, reachable through `net`.
    pub fn new(net: NetHandle, task: tokio::task::JoinHandle<()>, stats: ActorStats) -> Self {
        Self {
            net,
            task: Some(task),
            stats,
        }
    }
}

impl Actor for PeerConnection {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::MAILBOX_CAPACITY);
    }
    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Stop the actor (and with it the network loop).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopActor;

impl Handler<StopActor> for PeerConnection {
    type Result = ();
    fn handle(&mut self, _: StopActor, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Publish> for PeerConnection {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, msg: Publish, _: &mut Self::Context) -> Self::Result {
        self.stats.dequeued();
        let net = self.net.clone();
        let stats = self.stats.clone();
        Box::pin(async move {
            if net.publish(msg.0).await.is_err() {
                stats.failed();
            }
        })
    }
}
