//! The client-gateway actor: takes every client call but history (which the broadcaster
//! serves) and answers it through [`crate::client_api`], one tokio task per call.
//!
//! ```text
//!  dispatch::clients ─HandleClient─► ClientGateway ─task per call (permits)─► ClientApi
//! ```
//! It has its own mailbox, apart from the consensus actor's, so a flood of client calls
//! fills this queue (and then the network loop answers "busy") without ever delaying a
//! Raft RPC. At most [`MAX_CLIENT_CALLS_IN_FLIGHT`] calls run at once; beyond that a
//! caller hears "busy" at once.

use std::sync::Arc;

use actix::prelude::*;
use protocol::wire::{ClientRequest, ClientResponse};
use tokio::sync::oneshot;

use crate::client_api::{text, ClientApi};
use crate::metrics::ActorStats;

/// Client calls a server serves at once; enough for hundreds of clients submitting in
/// the same round, small enough that a flood cannot pile up unbounded tasks.
pub const MAX_CLIENT_CALLS_IN_FLIGHT: usize = 2048;

/// Serves client calls.
pub struct ClientGateway {
    api: ClientApi,
    stats: ActorStats,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl ClientGateway {
    /// A gateway answering through `api`.
    pub fn new(api: ClientApi, stats: ActorStats) -> Self {
        Self {
            api,
            stats,
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_CLIENT_CALLS_IN_FLIGHT)),
        }
    }
}

impl Actor for ClientGateway {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::MAILBOX_CAPACITY);
    }
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

impl Handler<HandleClient> for ClientGateway {
    type Result = ();
    fn handle(&mut self, msg: HandleClient, _: &mut Self::Context) {
        self.stats.dequeued();
        // Each call runs as its own task (a write may wait for an election); the permit
        // bounds how many may be in flight, and beyond that callers hear "busy".
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            self.stats.failed();
            let _ = msg.reply.send(ClientResponse::Unavailable(text(
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
