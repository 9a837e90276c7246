//! The client engine: the async shell around [`ClientCore`].
//!
//! ```text
//!  EngineHandle ──EngineCmd (bounded)──►┐
//!  ClusterConn events (bounded) ────────►│ engine task: feeds ClientCore, executes its
//!  round tick (round_ms / 4, 25..500 ms) ►│ commands ──Event (bounded)──► UI / CLI
//!  answers of requests in flight ───────►┘   └ requests in a FuturesUnordered
//! ```
//! Every decision is the core's ([`crate::core`]); this loop only moves data. It never
//! waits for a server inside its `select!`: each request runs as a future in
//! `in_flight`, and its answer (or timeout) comes back as one more event. Requests in
//! flight are bounded by the core; user commands wait in their channel while the core
//! has [`crate::core::MAX_USER_REQUESTS`] of them in progress.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use protocol::wire::{ClientResponse, PublicKeys};
use rand::SeedableRng;
use tokio::sync::{mpsc, oneshot};

use crate::config::Settings;
use crate::conn::{ClusterConn, ConnEvent};
pub use crate::core::outbox::MAX_ATTEMPTS;
use crate::core::{
    Answer, ClientCore, Command, CoreConfig, Failure, RequestId, Token, UserRequest,
};
pub use crate::delivery::{Delivery, FailReason, RetryReason};
pub use crate::event::Event;
use crate::store::Store;

/// Events queued for the consumer before the engine waits.
const EVENT_QUEUE: usize = 1024;
/// Commands queued before callers wait.
const COMMAND_QUEUE: usize = 64;

type Reply<T> = oneshot::Sender<Result<T, String>>;

/// Where a user request's answer goes.
enum Replier {
    Send(Reply<u64>),
    Register(Reply<()>),
    Lookup(Reply<Option<PublicKeys>>),
    LookupFingerprint(Reply<Option<(String, PublicKeys)>>),
    Room(Reply<serde_json::Value>),
    Files(Reply<Vec<crate::store::FileEntry>>),
}

struct EngineCmd {
    req: UserRequest,
    reply: Replier,
}

/// Handle to a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<EngineCmd>,
    max_file_bytes: u64,
}

async fn call<T>(
    tx: &mpsc::Sender<EngineCmd>,
    req: UserRequest,
    wrap: impl FnOnce(Reply<T>) -> Replier,
) -> Result<T, String> {
    let (reply, rx) = oneshot::channel();
    tx.send(EngineCmd {
        req,
        reply: wrap(reply),
    })
    .await
    .map_err(|_| "engine stopped".to_string())?;
    rx.await.map_err(|_| "engine stopped".to_string())?
}

impl EngineHandle {
    /// Queue `text` for the user registered as `to`; returns the outbox id.
    pub async fn send(&self, to: &str, text: &str, anonymous: bool) -> Result<u64, String> {
        let req = UserRequest::Send {
            to: to.into(),
            text: text.into(),
            anonymous,
        };
        call(&self.tx, req, Replier::Send).await
    }

    /// Register `name` for our keys.
    pub async fn register(&self, name: &str) -> Result<(), String> {
        let req = UserRequest::Register { name: name.into() };
        call(&self.tx, req, Replier::Register).await
    }

    /// Look up a name.
    pub async fn lookup(&self, name: &str) -> Result<Option<PublicKeys>, String> {
        let req = UserRequest::Lookup { name: name.into() };
        call(&self.tx, req, Replier::Lookup).await
    }

    /// Look up who owns a fingerprint (the hex form users paste); returns their
    /// registered name and keys.
    pub async fn lookup_fingerprint(
        &self,
        fingerprint: [u8; 32],
    ) -> Result<Option<(String, PublicKeys)>, String> {
        let req = UserRequest::LookupFingerprint { fingerprint };
        call(&self.tx, req, Replier::LookupFingerprint).await
    }

    /// Queue file `name` (content `data`) for `to`; returns the outbox id of its
    /// message. A file over [`EngineHandle::max_file_bytes`] is refused.
    pub async fn send_file(&self, to: &str, name: &str, data: Vec<u8>) -> Result<u64, String> {
        let req = UserRequest::SendFile {
            to: to.into(),
            name: name.into(),
            data,
        };
        call(&self.tx, req, Replier::Send).await
    }

    /// Every file transfer, either way.
    pub async fn files(&self) -> Result<Vec<crate::store::FileEntry>, String> {
        call(&self.tx, UserRequest::Files, Replier::Files).await
    }

    /// The largest file this client sends or accepts (`client.max_file_bytes`).
    pub fn max_file_bytes(&self) -> u64 {
        self.max_file_bytes
    }

    /// A room request (create, join, approve, send, list…); its answer as JSON.
    pub async fn room(&self, req: crate::core::RoomRequest) -> Result<serde_json::Value, String> {
        call(&self.tx, UserRequest::Room(req), Replier::Room).await
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

type Answered = (RequestId, Result<ClientResponse, Failure>);

struct Shell {
    core: ClientCore<Store>,
    conn: ClusterConn,
    events: mpsc::Sender<Event>,
    repliers: HashMap<Token, Replier>,
    next_token: Token,
    in_flight: FuturesUnordered<Pin<Box<dyn Future<Output = Answered> + Send>>>,
}

/// Start the engine on the current tokio runtime, over the store in the data folder.
pub fn start(settings: Settings) -> anyhow::Result<(EngineHandle, mpsc::Receiver<Event>)> {
    let store = Store::open(&settings.data_dir)?;
    start_with(settings, store)
}

/// Start the engine over an open `store` (the daemon reads history from it too).
pub fn start_with(
    settings: Settings,
    store: Store,
) -> anyhow::Result<(EngineHandle, mpsc::Receiver<Event>)> {
    let Settings {
        identity,
        params,
        round_ms,
        servers,
        server_dh,
        server_sign,
        max_file_bytes,
        ..
    } = settings;
    let ident_prefix = identity.public().sign[..4].to_vec();
    let cfg = CoreConfig {
        identity,
        params,
        round_ms,
        server_dh,
        server_sign,
    };
    let mut core = ClientCore::new(cfg, store, rand::rngs::StdRng::from_entropy())?;
    core.set_max_file_bytes(max_file_bytes);
    let (conn, conn_events) = ClusterConn::connect(servers)?;
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let shell = Shell {
        core,
        conn,
        events: ev_tx,
        repliers: HashMap::new(),
        next_token: 0,
        in_flight: FuturesUnordered::new(),
    };
    // The span names the engine in logs and in the timing records (`chorus_timing`,
    // trace level: when an output was accepted and when a submission left), which the
    // `timing` benchmark reads to compare idle, sending and receiving clients.
    let span = tracing::info_span!("engine", client = %hex::encode(&ident_prefix));
    tokio::spawn(tracing::Instrument::instrument(
        shell.run(rx, conn_events),
        span,
    ));
    Ok((EngineHandle { tx, max_file_bytes }, ev_rx))
}

impl Shell {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<EngineCmd>,
        mut conn_events: mpsc::Receiver<ConnEvent>,
    ) {
        let period = Duration::from_millis(self.core.tick_period_ms());
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.execute().await;
            // One poll hands every request just started to the connection; only then
            // may the core's deferred local work run, so that a submission is never
            // held up by this client's own disk writes (see `core::output`).
            if let Some(Some((id, result))) = self.in_flight.next().now_or_never() {
                self.core.handle_response(id, result, now_ms());
                continue;
            }
            if self.core.handle_sent(now_ms()) {
                continue;
            }
            let accepting = self.core.accepts_user_requests();
            tokio::select! {
                cmd = cmds.recv(), if accepting => match cmd {
                    Some(EngineCmd { req, reply }) => {
                        self.next_token += 1;
                        self.repliers.insert(self.next_token, reply);
                        self.core.handle_user(self.next_token, req, now_ms());
                    }
                    None => break,
                },
                ev = conn_events.recv() => match ev {
                    Some(ConnEvent::ServerUp(server)) => self.core.handle_server_up(server),
                    Some(ConnEvent::ServerDown(server)) => self.core.handle_server_down(server),
                    Some(ConnEvent::Gossip { data, .. }) => {
                        let before = self.core.last_processed();
                        self.core.handle_gossip(&data, now_ms());
                        let after = self.core.last_processed();
                        if after > before {
                            tracing::trace!(target: "chorus_timing", round = after.unwrap_or(0), "output");
                        }
                    }
                    None => break,
                },
                Some((id, result)) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.core.handle_response(id, result, now_ms());
                }
                _ = tick.tick() => self.core.handle_tick(now_ms()),
            }
        }
    }

    /// Hand events to the consumer, start requests, deliver answers.
    async fn execute(&mut self) {
        while let Some(ev) = self.core.poll_event() {
            let _ = self.events.send(ev).await;
        }
        while let Some(cmd) = self.core.poll_command() {
            match cmd {
                Command::Request {
                    id,
                    server,
                    req,
                    timeout_ms,
                } => {
                    // One record per submission: its shares leave together.
                    if let protocol::wire::ClientRequest::Share(up) = &req {
                        if up.server == 0 {
                            tracing::trace!(target: "chorus_timing", round = up.round, "submit");
                        }
                    }
                    let conn = self.conn.clone();
                    self.in_flight.push(Box::pin(async move {
                        let t = Duration::from_millis(timeout_ms);
                        let r = match tokio::time::timeout(t, conn.request(server, req)).await {
                            Ok(Ok(resp)) => Ok(resp),
                            Ok(Err(e)) => Err(Failure::Conn(e.to_string())),
                            Err(_) => Err(Failure::TimedOut),
                        };
                        (id, r)
                    }));
                }
                Command::Answer { token, answer } => {
                    if let Some(replier) = self.repliers.remove(&token) {
                        deliver(replier, answer);
                    }
                }
            }
        }
    }
}

fn deliver(replier: Replier, answer: Answer) {
    match (replier, answer) {
        (Replier::Send(tx), Answer::Send(r)) => drop(tx.send(r)),
        (Replier::Register(tx), Answer::Register(r)) => drop(tx.send(r)),
        (Replier::Lookup(tx), Answer::Lookup(r)) => drop(tx.send(r)),
        (Replier::LookupFingerprint(tx), Answer::LookupFingerprint(r)) => drop(tx.send(r)),
        (Replier::Room(tx), Answer::Room(r)) => drop(tx.send(r)),
        (Replier::Files(tx), Answer::Files(r)) => drop(tx.send(r)),
        // The core answers a token with its request's kind; were it not so, dropping the
        // sender tells the caller the engine failed.
        _ => {}
    }
}
