//! The local directory: a full copy of every registration, so that resolving a name or
//! a key never asks a server anything.
//!
//! A lookup at a server tells that server whom the client is about to write to, or who
//! just wrote to it. So the client copies the whole directory instead, on a fixed
//! schedule that nothing the user does changes: every [`SYNC_PERIOD_MS`] it asks every
//! server for the registrations after the ones it holds (`Directory { from }`), and
//! keeps going page by page while it makes progress. What the servers learn is that
//! this client is online and how many registrations it holds, which every client of the
//! same age shares.
//!
//! Entries are trusted neither to one server nor to the transport: a position is taken
//! only when f+1 servers return the same registration there (at least one of them is
//! honest, and honest servers hold the same committed log), and only if the entry's own
//! signatures hold (the ed25519 signature by its signing key and the XEdDSA proof by its
//! x25519 key) and it conflicts with no name or key already held. A server that lags
//! serves a shorter page; the prefix the others agree on is taken and the rest comes in
//! a later step.
//!
//! A send to a name, a lookup, or a received message from a key the copy does not hold
//! yet waits for the next sync step that starts after it ([`Parked`]): the schedule
//! stays the same, and a registration a few seconds old is found.

use std::collections::{BTreeMap, HashMap, HashSet};

use protocol::limits::MAX_DIRECTORY_PAGE;
use protocol::wire::{ClientRequest, PublicKeys, Register, ServerIndex};

use super::io::UserRequest;
use super::{ClientCore, Job, LocalStore, Token};
use crate::event::Event;

/// How often the directory is brought up to date.
pub const SYNC_PERIOD_MS: u64 = 5_000;
/// How long one page may take.
const PAGE_TIMEOUT_MS: u64 = 10_000;
/// A request or message waits this long for a sync before it is answered without one.
pub const PARK_LIMIT_MS: u64 = 60_000;

/// The copy of the directory and its indexes.
#[derive(Default)]
pub struct Directory {
    held: u64,
    by_name: HashMap<String, PublicKeys>,
    by_dh: HashMap<[u8; 32], String>,
    by_fingerprint: HashMap<[u8; 32], String>,
    signing: HashSet<[u8; 32]>,
}

impl Directory {
    /// Registrations held (the position the next sync asks from).
    pub fn len(&self) -> u64 {
        self.held
    }

    /// Nothing held yet.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// The keys registered under `name` (normal form).
    pub fn keys_of(&self, name: &str) -> Option<PublicKeys> {
        self.by_name.get(name).copied()
    }

    /// The name registered with x25519 key `dh`.
    pub fn name_of(&self, dh: &[u8; 32]) -> Option<&String> {
        self.by_dh.get(dh)
    }

    /// The name and keys with this fingerprint.
    pub fn by_fingerprint(&self, fp: &[u8; 32]) -> Option<(String, PublicKeys)> {
        let name = self.by_fingerprint.get(fp)?;
        Some((name.clone(), self.keys_of(name)?))
    }

    /// Take the next registration after checking its signatures, its name and that it
    /// claims no name or key already held.
    pub fn admit(&mut self, reg: &Register) -> Result<(), String> {
        if !reg.signature_valid() || !reg.dh_proof_valid() {
            return Err(format!("registration {} has a bad signature", self.held));
        }
        self.admit_checked(reg)
    }

    /// Take a registration read back from our own store (checked when it was stored).
    pub fn admit_checked(&mut self, reg: &Register) -> Result<(), String> {
        let name = protocol::round::check_name(reg.name.as_slice())
            .map_err(|e| format!("registration {}: {e}", self.held))?
            .to_string();
        if self.by_name.contains_key(&name)
            || self.by_dh.contains_key(&reg.keys.dh.0)
            || self.signing.contains(&reg.keys.sign.0)
        {
            return Err(format!(
                "registration {} claims a name or key already registered",
                self.held
            ));
        }
        let fp = reg.keys.to_identity().fingerprint();
        self.by_fingerprint.insert(fp.0, name.clone());
        self.by_dh.insert(reg.keys.dh.0, name.clone());
        self.signing.insert(reg.keys.sign.0);
        self.by_name.insert(name, reg.keys);
        self.held += 1;
        Ok(())
    }
}

/// One sync step: a page from position `from` asked of every server.
pub struct SyncStep {
    from: u64,
    /// Steps started before this one and it (see [`Parked`]).
    seq: u64,
    waiting: usize,
    pages: BTreeMap<ServerIndex, (Vec<Register>, u64)>,
}

impl SyncStep {
    /// A page answered (`None`: failed or malformed). True once every server answered.
    pub fn on_answer(&mut self, server: ServerIndex, page: Option<(Vec<Register>, u64)>) -> bool {
        if let Some(p) = page {
            self.pages.insert(server, p);
        }
        self.waiting = self.waiting.saturating_sub(1);
        self.waiting == 0
    }

    /// The registrations at `from, from + 1, …` that `quorum` servers returned alike,
    /// up to the first position where they do not; and whether `quorum` servers hold
    /// more than that.
    pub fn agreed(&self, quorum: usize) -> (Vec<Register>, bool) {
        let longest = self.pages.values().map(|(e, _)| e.len()).max().unwrap_or(0);
        let mut agreed = Vec::new();
        for k in 0..longest {
            let votes: Vec<&Register> = self.pages.values().filter_map(|(e, _)| e.get(k)).collect();
            let taken = votes
                .iter()
                .find(|c| votes.iter().filter(|v| v == c).count() >= quorum);
            match taken {
                Some(reg) => agreed.push((*reg).clone()),
                None => break,
            }
        }
        let reached = self.from + agreed.len() as u64;
        let ahead = self.pages.values().filter(|(_, t)| *t > reached).count();
        (agreed, ahead >= quorum)
    }
}

/// A user request waiting for a directory sync: the first step started after it
/// (numbered above `after_step`) answers it.
pub struct Parked {
    token: Token,
    req: UserRequest,
    since_ms: u64,
    after_step: u64,
}

impl<S: LocalStore> ClientCore<S> {
    /// Start a sync step if one is due, none is running and a server is connected.
    pub(super) fn maybe_sync(&mut self, now_ms: u64) {
        if self.sync.is_some() || self.connected.is_empty() || now_ms < self.next_sync_ms {
            return;
        }
        let n = self.cfg.server_sign.len();
        let from = self.directory.len();
        for server in 0..n as ServerIndex {
            let req = ClientRequest::Directory { from };
            self.send(
                server,
                req,
                Job::DirectoryPage { server },
                None,
                PAGE_TIMEOUT_MS,
            );
        }
        self.sync_steps += 1;
        self.sync = Some(SyncStep {
            from,
            seq: self.sync_steps,
            waiting: n,
            pages: BTreeMap::new(),
        });
    }

    /// A directory page (or its failure) from `server`.
    pub(super) fn on_directory_page(
        &mut self,
        server: ServerIndex,
        page: Option<(Vec<Register>, u64)>,
        now_ms: u64,
    ) {
        let Some(mut step) = self.sync.take() else {
            return;
        };
        if !step.on_answer(server, page) {
            self.sync = Some(step);
            return;
        }
        let (agreed, more) = step.agreed(self.cfg.params.f() + 1);
        let mut taken = Vec::with_capacity(agreed.len());
        for reg in agreed {
            if let Err(e) = self.directory.admit(&reg) {
                // f+1 servers agree on an entry no honest server would commit.
                self.events.push_back(Event::Error {
                    message: format!("directory sync stopped: {e}"),
                });
                break;
            }
            taken.push(reg);
        }
        if !taken.is_empty() {
            if let Err(e) = self.store.append_directory(step.from, &taken) {
                self.events.push_back(Event::Error {
                    message: format!("cannot store the directory: {e}"),
                });
            }
        }
        let full_page = taken.len() == MAX_DIRECTORY_PAGE;
        if !taken.is_empty() && (more || full_page) {
            // Still behind: the next page at once (the first sync of a new client).
            self.next_sync_ms = now_ms;
            self.maybe_sync(now_ms);
            return;
        }
        self.next_sync_ms = now_ms + SYNC_PERIOD_MS;
        self.after_sync(step.seq, now_ms);
    }

    /// Sync step `seq` is complete and the directory up to date: what waited for a
    /// step after it started gets its answer.
    fn after_sync(&mut self, seq: u64, now_ms: u64) {
        let parked = std::mem::take(&mut self.parked);
        for p in parked {
            if p.after_step < seq {
                self.resolve_parked(p.token, p.req, true, now_ms);
            } else {
                self.parked.push(p);
            }
        }
        self.inbound.resolve(&self.directory, seq, 0);
        self.flush_inbound(now_ms);
    }

    /// Requests and messages that waited [`PARK_LIMIT_MS`] for a sync (no server
    /// answered) are answered from what is held.
    pub(super) fn expire_parked(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(PARK_LIMIT_MS);
        let parked = std::mem::take(&mut self.parked);
        for p in parked {
            if p.since_ms <= cutoff {
                self.resolve_parked(p.token, p.req, true, now_ms);
            } else {
                self.parked.push(p);
            }
        }
        if self.inbound.resolve(&self.directory, 0, cutoff) {
            self.flush_inbound(now_ms);
        }
    }

    /// Answer a user request that needs the directory, or park it until the next sync
    /// (`last_chance`: answer from what is held, found or not).
    pub(super) fn resolve_parked(
        &mut self,
        token: Token,
        req: UserRequest,
        last_chance: bool,
        now_ms: u64,
    ) {
        use super::io::Answer;
        let found = match &req {
            UserRequest::Lookup { name }
            | UserRequest::Send { to: name, .. }
            | UserRequest::SendFile { to: name, .. } => match protocol::names::normalise(name) {
                Ok(key) => self.directory.keys_of(&key).map(|k| (key, k)),
                Err(e) => {
                    let e = format!("no user {name:?}: {e}");
                    let answer = match req {
                        UserRequest::Lookup { .. } => Answer::Lookup(Err(e)),
                        _ => Answer::Send(Err(e)),
                    };
                    return self.answer(token, answer);
                }
            },
            UserRequest::LookupFingerprint { fingerprint } => {
                self.directory.by_fingerprint(fingerprint)
            }
            UserRequest::Register { .. } => {
                let e = "a registration is not a directory query".to_string();
                return self.answer(token, Answer::Register(Err(e)));
            }
            UserRequest::Room(_) | UserRequest::Files => {
                let e = "not a directory query".to_string();
                return self.answer(token, Answer::Room(Err(e)));
            }
        };
        if found.is_none() && !last_chance {
            self.parked.push(Parked {
                token,
                req,
                since_ms: now_ms,
                after_step: self.sync_steps,
            });
            return;
        }
        match req {
            UserRequest::Lookup { .. } => {
                self.answer(token, Answer::Lookup(Ok(found.map(|(_, k)| k))))
            }
            UserRequest::LookupFingerprint { .. } => {
                self.answer(token, Answer::LookupFingerprint(Ok(found)))
            }
            UserRequest::Send {
                to,
                text,
                anonymous,
            } => match found {
                Some((_, keys)) => self.queue(token, to, text, anonymous, keys.dh.0, now_ms),
                None => {
                    let e = format!(
                        "no user named {to:?} in the directory ({} names held)",
                        self.directory.len()
                    );
                    self.answer(token, Answer::Send(Err(e)));
                }
            },
            UserRequest::SendFile { to, name, data } => match found {
                Some((_, keys)) => self.queue_file(token, to, (name, data), keys.dh.0, now_ms),
                None => {
                    let e = format!("no user named {to:?} in the directory");
                    self.answer(token, Answer::Send(Err(e)));
                }
            },
            UserRequest::Register { .. } | UserRequest::Room(_) | UserRequest::Files => {}
        }
    }

    /// The copy of the directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }
}
