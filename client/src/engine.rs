//! The client engine: one task that takes part in every round and turns round outputs
//! into messages.
//!
//! ```text
//!  EngineHandle ──EngineCmd──►┐
//!  ClusterConn events ───────►│ engine task ──Event──► UI / CLI
//!  round tick (round_ms / 4) ─►┘   │ every round: exactly one fixed-size submission
//!                                  │   (a queued fragment in a random slot, or cover)
//!                                  └ every accepted output (f+1 vouches): trial-decrypt
//!                                    all slots, reassemble, check our own slot
//! ```
//! Outbox states: queued → in round r → sent | retrying (collision or void round, random
//! backoff) | failed (after [`MAX_ATTEMPTS`] tries, with the reason).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use protocol::bounded::Fixed;
use protocol::slot::{
    fragment, inspect_slot, open_slot, seal_slot, Sender, SlotMessage, SlotState,
};
use protocol::submission::build_submission;
use protocol::wire::{
    ClientRequest, ClientResponse, PublicKeys, Register, RejectReason, Round, RoundOutput,
    SignedOutput, Submission,
};
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::config::Settings;
use crate::conn::{ClusterConn, ConnEvent};
use crate::store::{Direction, HistoryEntry, OutboxRecord, Store};

/// Tries per fragment before a message fails.
pub const MAX_ATTEMPTS: u32 = 8;
/// Rounds after which a submission with no output and no void notice counts as lost.
const LOST_AFTER_ROUNDS: u64 = 20;
/// One-time reply keys remembered (to open replies to anonymous messages).
const MAX_REPLY_KEYS: usize = 64;
/// Rounds of vouches kept while waiting for f+1 servers to agree.
const VOUCH_WINDOW: u64 = 64;
/// Partially received multi-fragment messages kept at once.
const MAX_PARTIAL_MESSAGES: usize = 1024;
/// Events queued for the consumer before the engine waits.
const EVENT_QUEUE: usize = 1024;
/// Commands queued before callers wait.
const COMMAND_QUEUE: usize = 64;

/// What the engine reports.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A message arrived.
    Message {
        /// Sender's name (or key prefix when unknown).
        from: String,
        /// Text.
        text: String,
        /// Round it arrived in.
        round: Round,
        /// Sender's clock.
        timestamp_ms: u64,
        /// From the sender queueing it to us decrypting it (both clocks; same machine in
        /// tests and demos).
        latency_ms: u64,
        /// The sender hid behind a one-time reply key.
        anonymous: bool,
        /// Address for a reply (`key:<hex>`; works for anonymous senders too).
        reply_to: String,
    },
    /// An outgoing message changed state.
    State {
        /// Outbox id.
        id: u64,
        /// Recipient.
        to: String,
        /// queued, in_round, sent, retrying, failed.
        state: String,
        /// The round involved, if any.
        round: Option<Round>,
        /// Why it is retrying or failed.
        reason: Option<String>,
        /// Slots the message takes.
        fragments: usize,
    },
    /// A server connection came up.
    ServerUp {
        /// Index.
        server: u16,
    },
    /// A server connection went down.
    ServerDown {
        /// Index.
        server: u16,
    },
    /// A round's output was accepted.
    Round {
        /// Round.
        round: Round,
        /// Anonymity set size.
        participants: u32,
        /// Known leader.
        leader: Option<u16>,
        /// Hex SHA-256 of the output, as f+1 servers vouched for it (clients can compare).
        hash: String,
    },
    /// Rounds that the servers no longer keep: messages in them are lost to us.
    Gap {
        /// First missing round.
        from_round: Round,
        /// Last missing round.
        to_round: Round,
    },
    /// Something went wrong that the user should know.
    Error {
        /// What.
        message: String,
    },
}

enum EngineCmd {
    Send {
        to: String,
        text: String,
        anonymous: bool,
        reply: oneshot::Sender<Result<u64, String>>,
    },
    Register {
        name: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Lookup {
        name: String,
        reply: oneshot::Sender<Result<Option<PublicKeys>, String>>,
    },
    LookupFingerprint {
        fingerprint: [u8; 32],
        reply: oneshot::Sender<Result<Option<(String, PublicKeys)>, String>>,
    },
}

/// Handle to a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<EngineCmd>,
}

impl EngineHandle {
    /// Queue `text` for the user registered as `to`; returns the outbox id.
    pub async fn send(&self, to: &str, text: &str, anonymous: bool) -> Result<u64, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(EngineCmd::Send {
                to: to.into(),
                text: text.into(),
                anonymous,
                reply,
            })
            .await
            .map_err(|_| "engine stopped".to_string())?;
        rx.await.map_err(|_| "engine stopped".to_string())?
    }

    /// Register `name` for our keys.
    pub async fn register(&self, name: &str) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(EngineCmd::Register {
                name: name.into(),
                reply,
            })
            .await
            .map_err(|_| "engine stopped".to_string())?;
        rx.await.map_err(|_| "engine stopped".to_string())?
    }

    /// Look up a name.
    pub async fn lookup(&self, name: &str) -> Result<Option<PublicKeys>, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(EngineCmd::Lookup {
                name: name.into(),
                reply,
            })
            .await
            .map_err(|_| "engine stopped".to_string())?;
        rx.await.map_err(|_| "engine stopped".to_string())?
    }

    /// Look up who owns a fingerprint (the hex form users paste); returns their
    /// registered name and keys.
    pub async fn lookup_fingerprint(
        &self,
        fingerprint: [u8; 32],
    ) -> Result<Option<(String, PublicKeys)>, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(EngineCmd::LookupFingerprint { fingerprint, reply })
            .await
            .map_err(|_| "engine stopped".to_string())?;
        rx.await.map_err(|_| "engine stopped".to_string())?
    }
}

struct Out {
    id: u64,
    rec: OutboxRecord,
    fragments: Vec<Vec<u8>>,
    next_fragment: usize,
    attempts: u32,
    not_before: Round,
    reply_key: Option<StaticSecret>,
}

struct Pending {
    out_id: u64,
    fragment: usize,
    slot: usize,
    bytes: Vec<u8>,
}

/// An output and the servers that vouched for its hash.
type Vouched = (RoundOutput, BTreeSet<u16>);

struct Parts {
    parts: Vec<Option<Vec<u8>>>,
    timestamp_ms: u64,
}

struct Engine {
    s: Settings,
    conn: ClusterConn,
    store: Store,
    events: mpsc::Sender<Event>,
    outbox: Vec<Out>,
    open_round: Round,
    submitted_round: Round,
    pending: BTreeMap<Round, Option<Pending>>,
    vouches: BTreeMap<Round, HashMap<[u8; 32], Vouched>>,
    accepted: BTreeSet<Round>,
    last_processed: Option<Round>,
    reassembly: HashMap<([u8; 32], [u8; 16], u32), Parts>,
    names: HashMap<[u8; 32], String>,
    reply_keys: Vec<StaticSecret>,
    leader: Option<u16>,
    next_server: usize,
    behind_ticks: u32,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn conversation_id(a: &[u8; 32], b: &[u8; 32]) -> [u8; 16] {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let d = Sha256::new()
        .chain_update(b"chorus/conversation/v1")
        .chain_update(lo)
        .chain_update(hi)
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// Start the engine on the current tokio runtime.
pub fn start(settings: Settings) -> anyhow::Result<(EngineHandle, mpsc::Receiver<Event>)> {
    let store = Store::open(&settings.data_dir)?;
    let (conn, conn_events) = ClusterConn::connect(settings.servers.clone())?;
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let last_processed = store.last_round()?;
    let mut engine = Engine {
        s: settings,
        conn,
        store,
        events: ev_tx,
        outbox: Vec::new(),
        open_round: 0,
        submitted_round: 0,
        pending: BTreeMap::new(),
        vouches: BTreeMap::new(),
        accepted: BTreeSet::new(),
        last_processed,
        reassembly: HashMap::new(),
        names: HashMap::new(),
        reply_keys: Vec::new(),
        leader: None,
        next_server: 0,
        behind_ticks: 0,
    };
    engine.load_outbox();
    tokio::spawn(engine.run(rx, conn_events));
    Ok((EngineHandle { tx }, ev_rx))
}

impl Engine {
    fn load_outbox(&mut self) {
        let slot_bytes = self.s.params.slot_bytes as usize;
        if let Ok(items) = self.store.outbox() {
            for (id, rec) in items {
                let fragments = fragment(rec.text.as_bytes(), slot_bytes).unwrap_or_default();
                let reply_key = rec
                    .anonymous
                    .then(|| StaticSecret::random_from_rng(rand_core::OsRng));
                self.outbox.push(Out {
                    id,
                    rec,
                    fragments,
                    next_fragment: 0,
                    attempts: 0,
                    not_before: 0,
                    reply_key,
                });
            }
        }
    }

    async fn emit(&self, ev: Event) {
        let _ = self.events.send(ev).await;
    }

    async fn state(&self, out_id: u64, state: &str, round: Option<Round>, reason: Option<String>) {
        let Some(o) = self.outbox.iter().find(|o| o.id == out_id) else {
            return;
        };
        self.emit(Event::State {
            id: out_id,
            to: o.rec.to_name.clone(),
            state: state.into(),
            round,
            reason,
            fragments: o.fragments.len(),
        })
        .await;
    }

    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<EngineCmd>,
        mut conn_events: mpsc::Receiver<ConnEvent>,
    ) {
        let period = Duration::from_millis((self.s.round_ms / 4).clamp(25, 500));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut caught_up = self.last_processed.is_none();
        for o in &self.outbox {
            self.emit(Event::State {
                id: o.id,
                to: o.rec.to_name.clone(),
                state: "queued".into(),
                round: None,
                reason: None,
                fragments: o.fragments.len(),
            })
            .await;
        }
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd).await,
                    None => break,
                },
                ev = conn_events.recv() => match ev {
                    Some(ConnEvent::ServerUp(server)) => self.emit(Event::ServerUp { server }).await,
                    Some(ConnEvent::ServerDown(server)) => self.emit(Event::ServerDown { server }).await,
                    Some(ConnEvent::Gossip { data, .. }) => {
                        if let Ok(signed) = protocol::decode::<SignedOutput>(&data) {
                            self.on_signed_output(signed).await;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    if !caught_up && !self.conn.connected().await.is_empty() {
                        caught_up = true;
                        self.catch_up().await;
                    }
                    self.on_tick().await;
                }
            }
        }
    }

    /// Ask servers in turn (starting with the next in rotation) until one answers.
    async fn ask(&mut self, req: ClientRequest) -> Result<ClientResponse, String> {
        let n = self.s.servers.len();
        let timeout = Duration::from_millis(self.s.round_ms.max(2000));
        let mut last = String::from("no server reachable");
        for k in 0..n {
            let server = ((self.next_server + k) % n) as u16;
            match tokio::time::timeout(timeout, self.conn.request(server, req.clone())).await {
                Ok(Ok(ClientResponse::Unavailable(why))) => {
                    last = format!(
                        "server {server}: {}",
                        String::from_utf8_lossy(why.as_slice())
                    )
                }
                Ok(Ok(resp)) => {
                    self.next_server = (server as usize + 1) % n;
                    return Ok(resp);
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = format!("server {server} timed out"),
            }
        }
        self.next_server = (self.next_server + 1) % n;
        Err(last)
    }

    async fn on_command(&mut self, cmd: EngineCmd) {
        match cmd {
            EngineCmd::Register { name, reply } => {
                let r = match Register::new(&name, &self.s.identity) {
                    Err(e) => Err(format!("name too long: {e}")),
                    Ok(reg) => match self.ask(ClientRequest::Register(reg)).await {
                        Ok(ClientResponse::Accepted { .. }) => Ok(()),
                        Ok(ClientResponse::Rejected(RejectReason::NameTaken)) => {
                            Err(format!("the name {name:?} is taken"))
                        }
                        Ok(ClientResponse::Rejected(r)) => Err(r.to_string()),
                        Ok(other) => Err(format!("unexpected answer {other:?}")),
                        Err(e) => Err(format!("cluster unreachable: {e}")),
                    },
                };
                let _ = reply.send(r);
            }
            EngineCmd::Lookup { name, reply } => {
                let _ = reply.send(self.lookup(&name).await);
            }
            EngineCmd::LookupFingerprint { fingerprint, reply } => {
                let found = self
                    .directory(ClientRequest::LookupFingerprint(Fixed(fingerprint)))
                    .await
                    .map(|o| {
                        o.map(|(name, keys)| {
                            (String::from_utf8_lossy(name.as_slice()).into_owned(), keys)
                        })
                    });
                let _ = reply.send(found);
            }
            EngineCmd::Send {
                to,
                text,
                anonymous,
                reply,
            } => {
                let _ = reply.send(self.queue(&to, &text, anonymous).await);
            }
        }
    }

    async fn lookup(&mut self, name: &str) -> Result<Option<PublicKeys>, String> {
        let Ok(key) = protocol::bounded::Bytes::new(name.as_bytes().to_vec()) else {
            return Err("name too long".into());
        };
        Ok(self
            .directory(ClientRequest::LookupName(key))
            .await?
            .map(|(_, k)| k))
    }

    /// Ask every server in turn until one knows the entry: servers answer from their own
    /// applied state, and one may not have applied a registration yet, while names never
    /// change once registered.
    async fn directory(
        &mut self,
        req: ClientRequest,
    ) -> Result<
        Option<(
            protocol::bounded::Bytes<{ protocol::limits::MAX_NAME_BYTES }>,
            PublicKeys,
        )>,
        String,
    > {
        let n = self.s.servers.len();
        let mut answered = false;
        let mut last = String::from("no server reachable");
        for _ in 0..n {
            match self.ask(req.clone()).await {
                Ok(ClientResponse::Identity(Some(found))) => return Ok(Some(found)),
                Ok(ClientResponse::Identity(None)) => answered = true,
                Ok(other) => last = format!("unexpected answer {other:?}"),
                Err(e) => last = e,
            }
        }
        if answered {
            Ok(None)
        } else {
            Err(last)
        }
    }

    async fn queue(&mut self, to: &str, text: &str, anonymous: bool) -> Result<u64, String> {
        // `key:<hex>` addresses an x25519 key directly: how one replies to an anonymous
        // sender's one-time key, whose `reply_to` the Message event carries.
        let to_dh = match to.strip_prefix("key:") {
            Some(hex) => {
                keys::identity::parse_hex32(hex).map_err(|e| format!("bad reply key: {e}"))?
            }
            None => {
                self.lookup(to)
                    .await?
                    .ok_or_else(|| format!("no user named {to:?} is registered"))?
                    .dh
                    .0
            }
        };
        let slot_bytes = self.s.params.slot_bytes as usize;
        let fragments = fragment(text.as_bytes(), slot_bytes).ok_or("message too long")?;
        let me = self.s.identity.public().dh;
        let rec = OutboxRecord {
            to_name: to.into(),
            to_dh,
            text: text.into(),
            conversation: conversation_id(&me, &to_dh),
            seq: rand::thread_rng().gen(),
            timestamp_ms: now_ms(),
            anonymous,
        };
        self.names.insert(to_dh, to.into());
        let entry = HistoryEntry {
            direction: Direction::Sent,
            peer: to.into(),
            text: text.into(),
            timestamp_ms: rec.timestamp_ms,
            round: 0,
            state: "queued".into(),
        };
        let id = self.store.add_history(&entry).map_err(|e| e.to_string())?;
        self.store.put_outbox(id, &rec).map_err(|e| e.to_string())?;
        let reply_key = anonymous.then(|| StaticSecret::random_from_rng(rand_core::OsRng));
        if let Some(k) = &reply_key {
            self.remember_reply_key(k.clone());
        }
        self.outbox.push(Out {
            id,
            rec,
            fragments,
            next_fragment: 0,
            attempts: 0,
            not_before: 0,
            reply_key,
        });
        self.state(id, "queued", None, None).await;
        Ok(id)
    }

    fn remember_reply_key(&mut self, k: StaticSecret) {
        self.reply_keys.push(k);
        if self.reply_keys.len() > MAX_REPLY_KEYS {
            self.reply_keys.remove(0);
        }
    }

    async fn on_tick(&mut self) {
        let status = match self.ask(ClientRequest::Status).await {
            Ok(ClientResponse::Status(s)) => s,
            _ => return,
        };
        self.leader = status.leader;
        if status.open_round > self.open_round {
            self.open_round = status.open_round;
        }
        // Void or lost rounds: their fragments go back to the outbox.
        let void: BTreeSet<Round> = status.recent_void.as_slice().iter().copied().collect();
        let stale: Vec<Round> = self
            .pending
            .keys()
            .copied()
            .filter(|r| void.contains(r) || r + LOST_AFTER_ROUNDS < self.open_round)
            .collect();
        for r in stale {
            if let Some(Some(p)) = self.pending.remove(&r) {
                let why = if void.contains(&r) {
                    "round was void (too few participants)"
                } else {
                    "round produced no output"
                };
                self.retry(p.out_id, r, why).await;
            }
        }
        // Missed gossip? Fetch what was revealed meanwhile.
        if let (Some(rev), Some(last)) = (status.last_revealed, self.last_processed) {
            if rev > last && !self.accepted.contains(&rev) {
                self.behind_ticks += 1;
                if self.behind_ticks >= 3 {
                    self.behind_ticks = 0;
                    self.catch_up().await;
                }
            } else {
                self.behind_ticks = 0;
            }
        }
        if self.open_round > self.submitted_round {
            self.submit(self.open_round).await;
        }
    }

    /// Build and send this round's one submission.
    async fn submit(&mut self, round: Round) {
        let slots = self.s.params.slots as usize;
        let slot_bytes = self.s.params.slot_bytes as usize;
        let mut vector = vec![0u8; self.s.params.vector_bytes()];
        let mut pending = None;
        let open = round;
        if let Some(o) = self.outbox.iter().find(|o| o.not_before <= open) {
            let msg = SlotMessage {
                sender: match &o.reply_key {
                    Some(k) => Sender::ReplyKey(PublicKey::from(k).to_bytes()),
                    None => Sender::Identity(self.s.identity.public().dh),
                },
                conversation: o.rec.conversation,
                seq: o.rec.seq,
                timestamp_ms: o.rec.timestamp_ms,
                fragment_index: o.next_fragment as u16,
                fragment_count: o.fragments.len() as u16,
                body: o
                    .fragments
                    .get(o.next_fragment)
                    .cloned()
                    .unwrap_or_default(),
            };
            let secret = o
                .reply_key
                .clone()
                .unwrap_or_else(|| self.s.identity.x25519_secret().clone());
            let to = PublicKey::from(o.rec.to_dh);
            match seal_slot(&msg, &secret, &to, slot_bytes, &mut rand_core::OsRng) {
                Ok(bytes) => {
                    let slot = rand::thread_rng().gen_range(0..slots);
                    vector[slot * slot_bytes..(slot + 1) * slot_bytes].copy_from_slice(&bytes);
                    pending = Some(Pending {
                        out_id: o.id,
                        fragment: o.next_fragment,
                        slot,
                        bytes,
                    });
                }
                Err(e) => {
                    self.emit(Event::Error {
                        message: format!("cannot seal message {}: {e}", o.id),
                    })
                    .await
                }
            }
        }
        let sub = match build_submission(
            &self.s.params,
            round,
            &vector,
            &self.s.identity,
            &self.s.server_dh,
            &mut rand_core::OsRng,
        ) {
            Ok(s) => s,
            Err(e) => {
                self.emit(Event::Error {
                    message: format!("cannot build submission: {e}"),
                })
                .await;
                return;
            }
        };
        match self.send_submission(sub).await {
            Ok(r) => {
                self.submitted_round = r;
                if let Some(p) = pending {
                    let id = p.out_id;
                    if let Some(o) = self.outbox.iter_mut().find(|o| o.id == id) {
                        o.not_before = Round::MAX; // in flight until the output says otherwise
                    }
                    self.pending.insert(r, Some(p));
                    self.state(id, "in_round", Some(r), None).await;
                }
            }
            Err(SubmitError::Stale(open)) => {
                // The round closed while we built it; next tick submits for `open`.
                self.open_round = self.open_round.max(open);
            }
            Err(SubmitError::Other(e)) => {
                self.emit(Event::Error {
                    message: format!("submission for round {round} failed: {e}"),
                })
                .await;
            }
        }
    }

    async fn send_submission(&mut self, sub: Submission) -> Result<Round, SubmitError> {
        let round = sub.round;
        match self.ask(ClientRequest::Submit(sub)).await {
            Ok(ClientResponse::Accepted { round }) => Ok(round),
            // A retry of a submission that did commit.
            Ok(ClientResponse::Rejected(RejectReason::DuplicateSubmission { .. })) => Ok(round),
            Ok(ClientResponse::Rejected(RejectReason::StaleRound { open, .. })) => {
                Err(SubmitError::Stale(open))
            }
            Ok(ClientResponse::Rejected(r)) => Err(SubmitError::Other(r.to_string())),
            Ok(other) => Err(SubmitError::Other(format!("unexpected answer {other:?}"))),
            Err(e) => Err(SubmitError::Other(e)),
        }
    }

    async fn retry(&mut self, out_id: u64, round: Round, why: &str) {
        let open = self.open_round;
        let Some(o) = self.outbox.iter_mut().find(|o| o.id == out_id) else {
            return;
        };
        o.attempts += 1;
        if o.attempts >= MAX_ATTEMPTS {
            let reason = format!("gave up after {} tries; last: {why}", o.attempts);
            let _ = self
                .store
                .update_history(out_id, round, &format!("failed: {reason}"));
            let _ = self.store.remove_outbox(out_id);
            self.state(out_id, "failed", Some(round), Some(reason))
                .await;
            self.outbox.retain(|o| o.id != out_id);
            return;
        }
        // Random backoff so that two colliding senders are unlikely to collide again.
        let window = 1u64 << o.attempts.min(4);
        o.not_before = open + rand::thread_rng().gen_range(0..window);
        self.state(out_id, "retrying", Some(round), Some(why.into()))
            .await;
    }

    async fn on_signed_output(&mut self, signed: SignedOutput) {
        let SignedOutput { output, vouch } = signed;
        let server = vouch.server as usize;
        let Some(key) = self.s.server_sign.get(server) else {
            return;
        };
        let hash = output.hash();
        if vouch.round != output.round || vouch.output_hash.0 != hash || !vouch.signature_valid(key)
        {
            return;
        }
        if output.slots != self.s.params.slots || output.slot_bytes != self.s.params.slot_bytes {
            return;
        }
        let r = output.round;
        if self.accepted.contains(&r) || self.last_processed.is_some_and(|l| r + VOUCH_WINDOW < l) {
            return;
        }
        let needed = self.s.vouches_needed();
        let entry = self
            .vouches
            .entry(r)
            .or_default()
            .entry(hash)
            .or_insert_with(|| (output, BTreeSet::new()));
        entry.1.insert(vouch.server);
        if entry.1.len() >= needed {
            let output = entry.0.clone();
            self.vouches.remove(&r);
            self.accept(output).await;
        }
        while self.vouches.len() as u64 > VOUCH_WINDOW {
            self.vouches.pop_first();
        }
    }

    async fn accept(&mut self, output: RoundOutput) {
        let r = output.round;
        self.accepted.insert(r);
        while self.accepted.len() as u64 > VOUCH_WINDOW * 4 {
            self.accepted.pop_first();
        }
        self.emit(Event::Round {
            round: r,
            participants: output.participants,
            leader: self.leader,
            hash: hex::encode(output.hash()),
        })
        .await;
        let mine = self.s.identity.x25519_secret().clone();
        for s in 0..output.slots as usize {
            let Some(slot) = output.slot(s) else { continue };
            if inspect_slot(slot) != SlotState::Intact {
                continue;
            }
            let opened = std::iter::once(&mine)
                .chain(self.reply_keys.iter())
                .find_map(|k| open_slot(slot, k).ok());
            if let Some(msg) = opened {
                self.on_fragment(r, msg).await;
            }
        }
        if let Some(Some(p)) = self.pending.remove(&r) {
            let intact = output.slot(p.slot) == Some(p.bytes.as_slice());
            if intact {
                self.fragment_sent(p, r).await;
            } else {
                self.retry(p.out_id, r, "collision: another sender used the same slot")
                    .await;
            }
        }
        if self.last_processed.is_none_or(|l| r > l) {
            self.last_processed = Some(r);
            let _ = self.store.set_last_round(r);
        }
    }

    async fn fragment_sent(&mut self, p: Pending, round: Round) {
        let Some(o) = self.outbox.iter_mut().find(|o| o.id == p.out_id) else {
            return;
        };
        o.next_fragment = p.fragment + 1;
        o.attempts = 0;
        o.not_before = 0;
        if o.next_fragment < o.fragments.len() {
            return;
        }
        let id = o.id;
        let _ = self.store.update_history(id, round, "sent");
        let _ = self.store.remove_outbox(id);
        self.state(id, "sent", Some(round), None).await;
        self.outbox.retain(|o| o.id != id);
    }

    async fn on_fragment(&mut self, round: Round, msg: SlotMessage) {
        let sender = msg.sender.reply_to();
        let key = (sender, msg.conversation, msg.seq);
        let count = usize::from(msg.fragment_count);
        if !self.reassembly.contains_key(&key) && self.reassembly.len() >= MAX_PARTIAL_MESSAGES {
            // Anyone can address slots to us: bound what half-sent messages may hold.
            if let Some(oldest) = self
                .reassembly
                .iter()
                .min_by_key(|(_, p)| p.timestamp_ms)
                .map(|(k, _)| *k)
            {
                self.reassembly.remove(&oldest);
            }
        }
        let entry = self.reassembly.entry(key).or_insert_with(|| Parts {
            parts: vec![None; count],
            timestamp_ms: msg.timestamp_ms,
        });
        if entry.parts.len() != count {
            return; // inconsistent fragment headers: ignore the stray
        }
        if let Some(slot) = entry.parts.get_mut(usize::from(msg.fragment_index)) {
            *slot = Some(msg.body);
        }
        if entry.parts.iter().any(Option::is_none) {
            return;
        }
        let Some(done) = self.reassembly.remove(&key) else {
            return;
        };
        let body: Vec<u8> = done.parts.into_iter().flatten().flatten().collect();
        let mut dedupe = Vec::with_capacity(52);
        dedupe.extend_from_slice(&sender);
        dedupe.extend_from_slice(&msg.conversation);
        dedupe.extend_from_slice(&msg.seq.to_le_bytes());
        if !self.store.mark_delivered(&dedupe, round).unwrap_or(true) {
            return; // delivered before (a catch-up overlap or a retransmission)
        }
        let anonymous = matches!(msg.sender, Sender::ReplyKey(_));
        let from = if anonymous {
            format!("anonymous-{}", hex::encode(&sender[..4]))
        } else {
            self.name_of(sender).await
        };
        let text = String::from_utf8_lossy(&body).into_owned();
        let _ = self.store.add_history(&HistoryEntry {
            direction: Direction::Received,
            peer: from.clone(),
            text: text.clone(),
            timestamp_ms: done.timestamp_ms,
            round,
            state: String::new(),
        });
        let latency_ms = now_ms().saturating_sub(done.timestamp_ms);
        self.emit(Event::Message {
            from,
            text,
            round,
            timestamp_ms: done.timestamp_ms,
            latency_ms,
            anonymous,
            reply_to: format!("key:{}", hex::encode(sender)),
        })
        .await;
    }

    async fn name_of(&mut self, dh: [u8; 32]) -> String {
        if let Some(n) = self.names.get(&dh) {
            return n.clone();
        }
        let name = match self.directory(ClientRequest::LookupDh(Fixed(dh))).await {
            Ok(Some((name, _))) => String::from_utf8_lossy(name.as_slice()).into_owned(),
            // Not cached: the sender may register later.
            _ => return format!("unknown-{}", hex::encode(&dh[..4])),
        };
        self.names.insert(dh, name.clone());
        name
    }

    /// Fetch outputs revealed since we last looked from f+1 servers (their vouches).
    async fn catch_up(&mut self) {
        let Some(last) = self.last_processed else {
            return;
        };
        let needed = self.s.vouches_needed();
        let n = self.s.servers.len();
        let mut answered = 0;
        for server in 0..n as u16 {
            if answered >= needed {
                break;
            }
            let mut from = last + 1;
            let mut ok = false;
            loop {
                let req = ClientRequest::History { from_round: from };
                let resp =
                    tokio::time::timeout(Duration::from_secs(5), self.conn.request(server, req))
                        .await;
                let Ok(Ok(ClientResponse::History {
                    outputs,
                    oldest_kept,
                })) = resp
                else {
                    break;
                };
                ok = true;
                if let Some(oldest) = oldest_kept {
                    if oldest > from && answered == 0 {
                        self.emit(Event::Gap {
                            from_round: from,
                            to_round: oldest - 1,
                        })
                        .await;
                    }
                }
                let page = outputs.into_vec();
                let full = page.len() == protocol::limits::MAX_HISTORY_OUTPUTS;
                let next = page.last().map(|o| o.output.round + 1);
                for signed in page {
                    self.on_signed_output(signed).await;
                }
                match next {
                    Some(nx) if full => from = nx,
                    _ => break,
                }
            }
            if ok {
                answered += 1;
            }
        }
    }
}

enum SubmitError {
    Stale(Round),
    Other(String),
}
