//! The sans-IO client core: every decision the client makes, with no I/O of its own.
//!
//! ```text
//!  engine shell ── handle_user / handle_tick(now) / handle_gossip / handle_response ──►
//!                                   ClientCore ──► poll_command: send this request to
//!                                      │             server i (with a timeout), answer
//!                                      │             this user request
//!                                      └─────────► poll_event: Event for the UI
//! ```
//! The core owns the outbox and its retries ([`outbox`]), output acceptance on f+1
//! vouches ([`vouch`]), trial decryption and reassembly ([`inbox`]), catch-up
//! bookkeeping ([`catchup`]) and the watermark that drives it (`watermark`), the local
//! copy of the directory and its sync ([`directory`]), received messages waiting for a
//! sender's name ([`names`]) and which server to ask next.
//! It reads no clock (the time is an argument), spawns nothing and owns a seeded
//! [`StdRng`], so tests are deterministic. The local store is a trait ([`LocalStore`]):
//! its answers are needed mid-decision (a new message's id, "delivered before?"), so the
//! core calls it rather than emitting store commands; the engine passes the redb store.
//!
//! Requests are independent: a paused server delays only the request waiting for it.
//! At most one status request, one submission, one catch-up step (a page from each
//! server) and one directory sync step (likewise) are out at a time, plus at most
//! [`MAX_USER_REQUESTS`] user requests. No request depends on whom the user writes to
//! or hears from: names and keys resolve in the local directory.

mod backfill;
pub mod catchup;
pub mod directory;
mod files;
pub mod inbox;
mod io;
mod jobs;
pub mod local;
pub mod local_files;
pub mod names;
pub mod outbox;
mod output;
mod queue;
mod room_files;
mod room_inbound;
mod rooms;
pub mod vouch;
mod watermark;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use protocol::seal::Sealer;
use protocol::submission::build_submission_sealed;
use protocol::wire::{ClientRequest, Register, Round, ServerIndex, SignedOutput};
use protocol::Params;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

use self::catchup::CatchUp;
use self::directory::{Directory, Parked, SyncStep};
use self::inbox::Reassembly;
use self::names::NameQueue;
use self::outbox::{Carried, Outbox};
use self::vouch::{Offer, VouchBook};
use crate::event::Event;
use crate::store::StoreError;
pub use files::{file_key, size_text, DEFAULT_MAX_FILE_BYTES};
pub use io::{Answer, Command, Failure, RequestId, Token, UserRequest};
pub use local::LocalStore;
pub use queue::BOARD_ADDRESS;
pub use rooms::RoomRequest;

/// User requests (send, register, lookups) in progress at once; more wait in the
/// engine's command channel.
pub const MAX_USER_REQUESTS: usize = 64;
/// Sends of one share to its server when it was busy or did not answer: a round
/// includes a client only if every serving server holds its share.
const SHARE_TRIES: u8 = 3;
/// How long a catch-up page may take.
const HISTORY_TIMEOUT_MS: u64 = 5_000;

/// The cluster as the core needs it (no addresses: the shell owns the network).
pub struct CoreConfig {
    /// Our identity.
    pub identity: keys::Identity,
    /// Round parameters.
    pub params: Params,
    /// Round length.
    pub round_ms: u64,
    /// Servers' x25519 keys (shares are sealed to them), by index.
    pub server_dh: Vec<PublicKey>,
    /// Servers' ed25519 keys (they sign outputs), by index.
    pub server_sign: Vec<[u8; 32]>,
}

/// What a request is for.
enum Job {
    Status,
    /// One server's share of our submission for `round`, sent `tries` times so far.
    Share {
        round: Round,
        tries: u8,
    },
    Register {
        token: Token,
        name: String,
    },
    DirectoryPage {
        server: ServerIndex,
    },
    History {
        server: ServerIndex,
    },
    /// A page of room history for a newcomer.
    Backfill {
        server: ServerIndex,
    },
}

/// A request out to a server. Asks (`rotation`) move on to the next server when one is
/// unavailable; catch-up pages go to one server.
struct InFlight {
    server: ServerIndex,
    req: ClientRequest,
    job: Job,
    rotation: Option<Rotation>,
}

/// The servers' answers to one submission's shares. It is in its round once one server
/// holds its share (the output tells whether every serving server did).
struct SharesOut {
    round: Round,
    carried: Carried,
    answered: usize,
    held: bool,
    /// The open round a server reported when it refused ours as stale.
    stale_open: Option<Round>,
    errors: Vec<String>,
}

/// Servers tried so far by one ask.
struct Rotation {
    tried: usize,
}

/// The client core. See the module doc.
pub struct ClientCore<S> {
    cfg: CoreConfig,
    store: S,
    rng: StdRng,
    /// This run's ephemeral sealing key (drawn anew every few dozen rounds).
    sealer: Sealer,
    commands: VecDeque<Command>,
    events: VecDeque<Event>,
    in_flight: HashMap<RequestId, InFlight>,
    next_request: RequestId,
    next_server: usize,
    user_requests: usize,
    outbox: Outbox,
    vouches: VouchBook,
    reassembly: Reassembly,
    /// Board posts' fragments (apart, so a private message can never pass for one).
    board_parts: Reassembly,
    /// Rooms, their MLS state and their messages' fragments; a newcomer's history fetch.
    rooms: crate::rooms::book::Book,
    mls: crate::rooms::mls::Mls,
    room_parts: crate::rooms::book::RoomParts,
    backfill: Option<backfill::Backfill>,
    directory: Directory,
    /// The directory sync step out, if any; steps started so far; when the next is due.
    sync: Option<SyncStep>,
    sync_steps: u64,
    next_sync_ms: u64,
    /// User requests waiting for the next sync step (a name not held yet).
    parked: Vec<Parked>,
    inbound: NameQueue,
    /// Outputs accepted from gossip, processed once the next submission is out
    /// ([`output`]), with when they were accepted.
    deferred: VecDeque<(protocol::wire::RoundOutput, u64)>,
    /// A submission left since the oldest deferred output: process them when the shell
    /// says it is on its way.
    flush_ready: bool,
    catchup: Option<CatchUp>,
    /// Rounds above the watermark already settled (accepted, or known void).
    settled_above: BTreeSet<Round>,
    /// The newest revealed round f+1 servers reported.
    newest_revealed: Round,
    /// Each server's latest status: (open round, last revealed round).
    reports: BTreeMap<ServerIndex, (Round, Round)>,
    /// No catch-up step starts before this time (after a step nobody answered).
    catch_up_not_before: u64,
    status_out: bool,
    /// When we last asked for status, and last accepted an output from gossip.
    last_status_ms: u64,
    last_live_output_ms: u64,
    submit_out: bool,
    /// Our submission whose shares are out: what the servers said so far.
    shares_out: Option<SharesOut>,
    connected: BTreeSet<ServerIndex>,
    leader: Option<ServerIndex>,
    open_round: Round,
    submitted_round: Round,
    /// The open round whose layout we wait for, and status answers since.
    layout_wait: (Round, u8),
    /// The watermark: every round up to it is settled (see [`catchup`]); persisted.
    last_processed: Option<Round>,
    /// The watermark as last written to the store.
    stored_watermark: Option<Round>,
    /// The largest file we send or accept.
    max_file_bytes: u64,
}

/// Conversation id of two x25519 keys (the same from both ends).
pub fn conversation_id(a: &[u8; 32], b: &[u8; 32]) -> [u8; 16] {
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

impl<S: LocalStore> ClientCore<S> {
    /// A core over `store`: restores the outbox (announced as queued) and the last
    /// round processed (a catch-up starts once a server is connected).
    pub fn new(cfg: CoreConfig, store: S, mut rng: StdRng) -> Result<Self, StoreError> {
        let last_processed = store.last_round()?;
        let mut outbox = Outbox::default();
        let slot_bytes = cfg.params.slot_bytes as usize;
        for secret in store.reply_keys().unwrap_or_default() {
            outbox.remember_reply_key(StaticSecret::from(secret));
        }
        let mut restore = Vec::new();
        for (id, rec) in store.outbox().unwrap_or_default() {
            // The one-time key is the one the message was queued with, so a resend is
            // the same message from the same key (older records had none: a fresh one).
            let reply_key = rec.anonymous.then(|| match rec.reply_secret {
                Some(k) => StaticSecret::from(k),
                None => StaticSecret::random_from_rng(&mut rng),
            });
            if rec.file.is_some() {
                restore.push((id, rec));
                continue;
            }
            outbox.add(id, rec, slot_bytes, reply_key);
        }
        let vouches = VouchBook::new(
            cfg.server_sign.clone(),
            cfg.params.f() + 1,
            cfg.params.reserve_cells,
            cfg.params.longest_slot() as u32,
        );
        let mut events: VecDeque<Event> = outbox.all_queued().into();
        let mut directory = Directory::default();
        for reg in store.directory()? {
            if let Err(e) = directory.admit_checked(&reg) {
                // Our own file disagrees with itself: keep the consistent prefix; the
                // sync fetches the rest again.
                events.push_back(Event::Error {
                    message: format!("local directory: {e}"),
                });
                break;
            }
        }
        let sealer = Sealer::new(&cfg.server_dh, &mut rng);
        let (rooms, mls) = rooms::load(&store, &cfg.identity, &mut events);
        let mut core = Self {
            cfg,
            store,
            sealer,
            rng,
            commands: VecDeque::new(),
            events,
            in_flight: HashMap::new(),
            next_request: 0,
            next_server: 0,
            user_requests: 0,
            outbox,
            vouches,
            reassembly: Reassembly::new(slot_bytes),
            board_parts: Reassembly::new(slot_bytes),
            rooms,
            mls,
            room_parts: Default::default(),
            backfill: None,
            directory,
            sync: None,
            sync_steps: 0,
            next_sync_ms: 0,
            parked: Vec::new(),
            inbound: NameQueue::default(),
            deferred: VecDeque::new(),
            flush_ready: false,
            catchup: None,
            settled_above: BTreeSet::new(),
            newest_revealed: 0,
            reports: BTreeMap::new(),
            catch_up_not_before: 0,
            status_out: false,
            last_status_ms: 0,
            last_live_output_ms: 0,
            submit_out: false,
            shares_out: None,
            connected: BTreeSet::new(),
            leader: None,
            open_round: 0,
            submitted_round: 0,
            layout_wait: (0, 0),
            last_processed,
            stored_watermark: last_processed,
            max_file_bytes: files::DEFAULT_MAX_FILE_BYTES,
        };
        for (id, rec) in restore {
            core.restore_file(id, rec);
        }
        let progress = core.outbox.file_progress();
        core.events.extend(progress);
        Ok(core)
    }

    /// How often the shell should call [`Self::handle_tick`]: a quarter round, within
    /// 25..=500 ms.
    pub fn tick_period_ms(&self) -> u64 {
        (self.cfg.round_ms / 4).clamp(25, 500)
    }

    /// Whether another user request may start now (else the shell lets it wait).
    pub fn accepts_user_requests(&self) -> bool {
        self.user_requests < MAX_USER_REQUESTS
    }

    /// Requests out to servers.
    pub fn requests_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The next thing the shell must do. Drain after every `handle_*` call, then hand
    /// the requests to the network and call [`Self::handle_sent`].
    pub fn poll_command(&mut self) -> Option<Command> {
        let cmd = self.commands.pop_front()?;
        if let Command::Request {
            req: ClientRequest::Share(_),
            ..
        } = &cmd
        {
            self.on_submission_out();
        }
        Some(cmd)
    }

    /// The next event for the user. Drain after every `handle_*` call.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The store (tests read it back).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The last round whose output was processed.
    pub fn last_processed(&self) -> Option<Round> {
        self.last_processed
    }

    /// A connection to server `i` came up.
    pub fn handle_server_up(&mut self, i: ServerIndex) {
        self.connected.insert(i);
        self.events.push_back(Event::ServerUp { server: i });
    }

    /// The connection to server `i` went down.
    pub fn handle_server_down(&mut self, i: ServerIndex) {
        self.connected.remove(&i);
        self.events.push_back(Event::ServerDown { server: i });
    }

    /// The periodic tick: a catch-up step if rounds above the watermark are unsettled,
    /// a directory sync step when one is due, and a status request when one is due
    /// (whose answer drives submissions, retries and catch-up when outputs do not).
    pub fn handle_tick(&mut self, now_ms: u64) {
        self.expire_deferred(now_ms);
        self.maybe_catch_up(now_ms);
        self.expire_parked(now_ms);
        self.maybe_sync(now_ms);
        if !self.status_out && self.status_due(now_ms) {
            self.status_out = true;
            self.last_status_ms = now_ms;
            self.ask(Job::Status, ClientRequest::Status);
        }
    }

    /// Gossiped bytes on the output topic (anything that does not decode is dropped).
    /// An output accepted here is processed after our next submission ([`output`]).
    pub fn handle_gossip(&mut self, data: &[u8], now_ms: u64) {
        if let Ok(signed) = protocol::decode::<SignedOutput>(data) {
            self.offer(signed, now_ms, true);
        }
    }

    /// One server's signed output, processed at once if it completes an output (a
    /// history page, or a test).
    pub fn handle_signed_output(&mut self, signed: SignedOutput, now_ms: u64) {
        self.offer(signed, now_ms, false);
    }

    fn offer(&mut self, signed: SignedOutput, now_ms: u64, defer: bool) {
        if let Offer::Accepted(output) = self.vouches.offer(signed, self.last_processed) {
            self.accept(output, now_ms, defer);
        }
    }

    /// A user request; its answer comes back as [`Command::Answer`].
    pub fn handle_user(&mut self, token: Token, req: UserRequest, now_ms: u64) {
        self.user_requests += 1;
        match req {
            UserRequest::Register { name } => {
                let reg = protocol::names::normalise(&name)
                    .map_err(|e| format!("invalid name {name:?}: {e}"))
                    .and_then(|name| {
                        Register::new(&name, &self.cfg.identity)
                            .map(|reg| (name, reg))
                            .map_err(|e| format!("name too long: {e}"))
                    });
                match reg {
                    Err(e) => self.answer(token, Answer::Register(Err(e))),
                    Ok((name, reg)) => {
                        self.ask(Job::Register { token, name }, ClientRequest::Register(reg))
                    }
                }
            }
            req @ (UserRequest::Lookup { .. } | UserRequest::LookupFingerprint { .. }) => {
                self.resolve_parked(token, req, false, now_ms)
            }
            UserRequest::Room(req) => self.room_request(token, req, now_ms),
            UserRequest::Files => {
                let files = self.list_files();
                self.answer(token, Answer::Files(files))
            }
            UserRequest::SendFile { to, name, data } if to.starts_with(files::ROOM_PREFIX) => {
                self.queue_file(token, to, (name, data), [0; 32], now_ms)
            }
            UserRequest::SendFile { to, name, data } => match to.strip_prefix("key:") {
                Some(hex) => match keys::identity::parse_hex32(hex) {
                    Ok(dh) => self.queue_file(token, to, (name, data), dh, now_ms),
                    Err(e) => self.answer(token, Answer::Send(Err(format!("bad key: {e}")))),
                },
                None => {
                    let req = UserRequest::SendFile { to, name, data };
                    self.resolve_parked(token, req, false, now_ms)
                }
            },
            UserRequest::Send {
                to,
                text,
                anonymous,
            } => {
                if to == BOARD_ADDRESS {
                    return self.queue_board_post(token, text, now_ms);
                }
                // `key:<hex>` addresses an x25519 key directly: how one replies to an
                // anonymous sender's one-time key, whose `reply_to` the Message event
                // carries.
                match to.strip_prefix("key:") {
                    Some(hex) => match keys::identity::parse_hex32(hex) {
                        Ok(dh) => self.queue(token, to, text, anonymous, dh, now_ms),
                        Err(e) => {
                            self.answer(token, Answer::Send(Err(format!("bad reply key: {e}"))))
                        }
                    },
                    None => {
                        let req = UserRequest::Send {
                            to,
                            text,
                            anonymous,
                        };
                        self.resolve_parked(token, req, false, now_ms)
                    }
                }
            }
        }
    }

    fn answer(&mut self, token: Token, answer: Answer) {
        self.user_requests = self.user_requests.saturating_sub(1);
        self.commands.push_back(Command::Answer { token, answer });
    }

    /// Build round `round`'s one submission and send each server its share.
    fn submit(&mut self, round: Round) {
        let rooms = &self.rooms;
        let built = self.outbox.build(
            round,
            &self.cfg.params,
            &self.cfg.identity,
            &mut self.rng,
            &|id| Self::room_keys_for(rooms, id),
        );
        if let Some(message) = built.error {
            self.events.push_back(Event::Error { message });
        }
        match build_submission_sealed(
            &self.cfg.params,
            round,
            &built.vector,
            &self.cfg.identity,
            &mut self.sealer,
            &mut self.rng,
        ) {
            Ok(sub) => {
                self.submit_out = true;
                self.shares_out = Some(SharesOut {
                    round,
                    carried: built.carried,
                    answered: 0,
                    held: false,
                    stale_open: None,
                    errors: Vec::new(),
                });
                let t = self.ask_timeout_ms();
                for up in sub.uploads() {
                    let server = up.server;
                    self.send(
                        server,
                        ClientRequest::Share(up),
                        Job::Share { round, tries: 1 },
                        None,
                        t,
                    );
                }
            }
            Err(e) => self.events.push_back(Event::Error {
                message: format!("cannot build submission: {e}"),
            }),
        }
    }

    fn ask_timeout_ms(&self) -> u64 {
        self.cfg.round_ms.max(2000)
    }

    /// Ask servers in turn (starting with the next in rotation) until one answers.
    fn ask(&mut self, job: Job, req: ClientRequest) {
        let n = self.cfg.server_sign.len().max(1);
        let server = (self.next_server % n) as ServerIndex;
        let rotation = Rotation { tried: 0 };
        self.send(server, req, job, Some(rotation), self.ask_timeout_ms());
    }

    fn send(
        &mut self,
        server: ServerIndex,
        req: ClientRequest,
        job: Job,
        rotation: Option<Rotation>,
        timeout_ms: u64,
    ) {
        self.next_request += 1;
        let id = self.next_request;
        self.commands.push_back(Command::Request {
            id,
            server,
            req: req.clone(),
            timeout_ms,
        });
        self.in_flight.insert(
            id,
            InFlight {
                server,
                req,
                job,
                rotation,
            },
        );
    }
}
