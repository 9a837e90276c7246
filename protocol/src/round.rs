//! The round state machine: pure, deterministic, no I/O and no clocks.
//!
//! Every server applies the same committed [`Command`]s in log order and so reaches the
//! same [`State`] (compare [`RoundMachine::state_hash`]). Time enters only through the
//! leader's decisions to commit `Close(r)` and `Decide(r)`.
//!
//! No share is ever in the log (round protocol v2): a client sends each server only its
//! own sealed share, and the servers hold them. The log carries, per round:
//!
//! ```text
//!  Close(r) ──► Have(r, i, [(client, digest)]) from each server ──► decided ──► Sum(r, i)
//!   (leader,     (the clients whose share i holds,      (all n lists in, or    from each
//!    deadline)    checked against the signed digests)    the leader's Decide)  serving i
//!                                                               │                  │
//!                         fewer than t+1 lists or k clients ──► void       t+1 ──► output
//! ```
//! Deciding fixes the serving set Q (the servers whose list is in) and the included
//! clients I (those every server in Q lists, with one digest). A server that missed a
//! client simply leaves it out; nothing is recovered. How sums become an output
//! (checked when more than t+1 are in, corrected where a server lies, `Finalize` when the
//! leader stops waiting) is in [`outputs`]. `Init` commits the cluster's parameters once;
//! a node whose own differ stops.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bounded::{Bytes, Key32};
use crate::limits::MAX_NAME_BYTES;
use crate::params::{Admission, Params};
use crate::wire::{
    ClientId, Command, Have, HeldEntry, PublicKeys, Register, RejectReason, Round, RoundOutput,
    ServerIndex,
};

mod checks;
mod include;
mod outputs;
pub use checks::{check_name, check_register, check_share_round, check_upload};
pub use include::{Conduct, Exclusions, Strikes};
pub use outputs::Dissent;

/// Closed rounds that may wait for lists or sums at once; older ones are abandoned so a
/// cluster that cannot reveal does not grow without bound.
pub const MAX_AWAITING_REVEAL: usize = 16;

/// Outputs the replicated state keeps in memory (the newest, at most; the node archives
/// every retained output on disk, so memory does not grow with retention).
pub const RECENT_OUTPUTS: u64 = 8;

/// Void rounds remembered for clients asking "did my round happen?".
pub const RECENT_VOID: usize = 32;

/// A closed round: collecting `Have` lists, then (decided) sums.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedRound {
    /// Each server's list of the clients whose share it holds, until decided.
    pub haves: BTreeMap<ServerIndex, Vec<HeldEntry>>,
    /// The decision, once made.
    pub decided: Option<Decision>,
    /// Sums so far (serving servers only).
    pub reveals: BTreeMap<ServerIndex, Bytes<{ crate::limits::MAX_SHARE_BYTES }>>,
    /// The footprints its message region is laid out from ([`State::open_layout`] when
    /// it closed).
    pub laid_out: Vec<u64>,
    /// Whether the round before it had published (or was void) when it closed: only then
    /// is `laid_out` the layout its honest senders proved for, and a bad proof a strike.
    #[serde(default)]
    pub layout_known: bool,
}

/// Which servers serve a round and which clients it includes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Q: the servers whose `Have` was in the log before the decision.
    pub servers: Vec<ServerIndex>,
    /// I: the clients every server in Q listed with one digest, in order.
    pub included: Vec<ClientId>,
}

/// The replicated state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The round accepting submissions (servers hold its shares; the log holds none).
    pub open_round: Round,
    /// The footprints the open round's message region is laid out from: the
    /// reservations of round `open_round − 1` ([`crate::vector::RESERVE_AHEAD`]), set
    /// when that output is applied; none if the round closes first or `open_round − 1`
    /// is void (those senders reserve again).
    pub open_layout: Vec<u64>,
    /// Whether the round before the open one has published (or was void), so that
    /// `open_layout` is final.
    #[serde(default)]
    pub open_layout_known: bool,
    /// Closed rounds awaiting lists, a decision or sums.
    pub awaiting: BTreeMap<Round, ClosedRound>,
    /// The newest outputs (void ones too), at most [`RECENT_OUTPUTS`] and within the
    /// retention window; servers archive every retained output on disk.
    pub outputs: BTreeMap<Round, RoundOutput>,
    /// Last decided round and its participants (included clients; void or not).
    pub last_closed: Option<(Round, u32)>,
    /// Rounds made void (too few clients) or abandoned, in total.
    pub void_rounds: u64,
    /// Directory: name → keys.
    pub names: BTreeMap<Bytes<MAX_NAME_BYTES>, PublicKeys>,
    /// Directory: signing key → name.
    pub by_key: BTreeMap<Key32, Bytes<MAX_NAME_BYTES>>,
    /// Directory: every registration, self-signed, in commit order. Clients copy it
    /// page by page (`ClientRequest::Directory`) and check each entry themselves.
    #[serde(default)]
    pub registrations: Vec<Register>,
    /// Directory: x25519 key → signing key (slots name senders by x25519 key).
    pub by_dh: BTreeMap<Key32, Key32>,
    /// The most recent void rounds (at most [`RECENT_VOID`]), so senders learn to retry.
    pub recent_void: std::collections::VecDeque<Round>,
    /// Probes committed.
    pub probes: u64,
    /// Commands applied.
    pub applied: u64,
    /// The parameters committed by `Init`, once the cluster is initialised.
    pub genesis: Option<Params>,
    /// Registrations committed in the open round (the `open` policy caps them).
    pub registered_this_round: u32,
    /// Servers whose reveal was off the polynomial the others agreed on.
    pub dissent: BTreeMap<ServerIndex, Dissent>,
    /// Rounds voided because their reveals disagreed beyond correction.
    pub inconsistent_rounds: u64,
    /// Outputs decoded from exactly t+1 reveals (nothing to check them against).
    pub unchecked_outputs: u64,
    /// Clients left out of rounds by reason, strikes and cooling-off.
    #[serde(default)]
    pub conduct: Conduct,
    /// Key backups: commitments, counts, epoch keys, the refresh epoch.
    #[serde(default)]
    pub backups: crate::backup::book::BackupBook,
}

impl Default for State {
    fn default() -> Self {
        Self {
            open_round: 1,
            open_layout: Vec::new(),
            open_layout_known: false,
            awaiting: BTreeMap::new(),
            outputs: BTreeMap::new(),
            last_closed: None,
            void_rounds: 0,
            names: BTreeMap::new(),
            by_key: BTreeMap::new(),
            registrations: Vec::new(),
            by_dh: BTreeMap::new(),
            recent_void: std::collections::VecDeque::new(),
            probes: 0,
            applied: 0,
            genesis: None,
            registered_this_round: 0,
            dissent: BTreeMap::new(),
            inconsistent_rounds: 0,
            unchecked_outputs: 0,
            conduct: Conduct::default(),
            backups: Default::default(),
        }
    }
}

/// What applying one command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The command was refused; state is unchanged except for the applied counter.
    Rejected(RejectReason),
    /// A round closed: servers now list the shares of it they hold.
    Closed {
        /// The round.
        round: Round,
    },
    /// A server's list was recorded; more may come.
    HaveRecorded {
        /// The round.
        round: Round,
        /// The server.
        server: ServerIndex,
    },
    /// The round is decided: the servers in `servers` now commit their sums over
    /// `included`.
    Decided {
        /// The round.
        round: Round,
        /// Q.
        servers: Vec<ServerIndex>,
        /// I, in order.
        included: Vec<ClientId>,
    },
    /// A round was decided with fewer than `k` clients (or fewer than t + 1 lists), or
    /// its sums disagreed beyond correction: nothing will be revealed.
    Void {
        /// The round.
        round: Round,
        /// Participants.
        participants: u32,
        /// What it publishes: that it was void (signed and gossiped like an output).
        output: RoundOutput,
    },
    /// A reveal was recorded; more are needed.
    RevealRecorded {
        /// The round.
        round: Round,
        /// The server.
        server: ServerIndex,
    },
    /// Enough reveals agree: the round's output.
    Output(RoundOutput),
    /// `Init` was applied and matches this node's parameters.
    Initialised,
    /// `Init` was applied and differs from this node's parameters (named): this node
    /// must stop, since it would compute different outputs from everyone else.
    ConfigMismatch(String),
    /// A name was registered.
    Registered {
        /// The name.
        name: String,
    },
    /// A probe was committed.
    Probed {
        /// Its id.
        id: u64,
    },
    /// A backup command was applied.
    Backup(crate::backup::book::BackupEffect),
}

/// Rounds ahead of a server's applied open round that it still forwards to the log (it
/// may be a close or two behind the leader).
pub const FUTURE_WINDOW: Round = 2;

/// Parameters plus state.
#[derive(Clone, Debug)]
pub struct RoundMachine {
    params: Params,
    state: State,
}

impl RoundMachine {
    /// A fresh machine.
    pub fn new(params: Params) -> Self {
        Self {
            params,
            state: State::default(),
        }
    }

    /// Rebuild from a snapshot's state.
    pub fn from_state(params: Params, state: State) -> Self {
        Self { params, state }
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// SHA-256 of the canonical encoding of the state: equal on every replica that
    /// applied the same commands.
    pub fn state_hash(&self) -> [u8; 32] {
        let mut w = HashWriter(Sha256::new());
        // Encoding into a hasher cannot fail: no limit, infallible writer.
        let _ = crate::codec::encode_into(&self.state, &mut w);
        w.0.finalize().into()
    }

    /// Refuse a share for a round this node knows is closed or too far ahead.
    pub fn precheck_share(&self, round: Round) -> Result<(), RejectReason> {
        check_share_round(round, self.state.open_round)
    }

    /// Look up a name.
    pub fn lookup_name(&self, name: &[u8]) -> Option<PublicKeys> {
        let key = Bytes::new(name.to_vec()).ok()?;
        self.state.names.get(&key).copied()
    }

    /// Look up a registered x25519 key (how slots name their senders).
    pub fn lookup_dh(&self, dh: &Key32) -> Option<(Bytes<MAX_NAME_BYTES>, PublicKeys)> {
        let sign = self.state.by_dh.get(dh)?;
        let name = self.state.by_key.get(sign)?;
        Some((name.clone(), *self.state.names.get(name)?))
    }

    /// Registrations from position `from` on, at most `limit`, and how many there are.
    pub fn directory_page(&self, from: u64, limit: usize) -> (&[Register], u64) {
        let all = &self.state.registrations;
        let start = usize::try_from(from).unwrap_or(usize::MAX).min(all.len());
        let end = start.saturating_add(limit).min(all.len());
        (&all[start..end], all.len() as u64)
    }

    /// Apply one committed command.
    pub fn apply(&mut self, cmd: &Command) -> Effect {
        self.state.applied += 1;
        let result = match cmd {
            Command::Close { round } => self.close(*round),
            Command::Have(have) => self.have(have),
            Command::Decide { round } => self.decide_now(*round),
            Command::Reveal(rev) => self.reveal(rev),
            Command::Finalize { round } => self.finalize(*round),
            Command::Register(reg) => self.register(reg),
            Command::Init(p) => Ok(self.init(p)),
            Command::Probe { id, .. } => {
                self.state.probes += 1;
                Ok(Effect::Probed { id: *id })
            }
            Command::Backup(b) => {
                let State { backups, names, .. } = &mut self.state;
                backups
                    .apply(&self.params, names, b)
                    .map(Effect::Backup)
                    .map_err(RejectReason::Backup)
            }
        };
        result.unwrap_or_else(Effect::Rejected)
    }

    fn close(&mut self, round: Round) -> Result<Effect, RejectReason> {
        let open = self.state.open_round;
        if round != open {
            return Err(RejectReason::WrongClose { got: round, open });
        }
        self.state.open_round += 1;
        self.state.registered_this_round = 0;
        if round % 64 == 0 {
            self.state.conduct.forget_before(&self.params, round);
        }
        // The next round is laid out when this one's output is applied (see `publish`).
        let laid_out = std::mem::take(&mut self.state.open_layout);
        let layout_known = std::mem::take(&mut self.state.open_layout_known);
        self.state.awaiting.insert(
            round,
            ClosedRound {
                laid_out,
                layout_known,
                ..ClosedRound::default()
            },
        );
        while self.state.awaiting.len() > MAX_AWAITING_REVEAL {
            if let Some((abandoned, _)) = self.state.awaiting.pop_first() {
                self.note_void(abandoned, 0);
            }
        }
        Ok(Effect::Closed { round })
    }

    fn have(&mut self, have: &Have) -> Result<Effect, RejectReason> {
        let Some(key) = self.params.server_keys.get(usize::from(have.server)) else {
            return Err(RejectReason::UnknownServer(have.server));
        };
        let round = have.round;
        let closed = self
            .state
            .awaiting
            .get(&round)
            .filter(|c| c.decided.is_none())
            .ok_or(RejectReason::NotAwaitingHaves { round })?;
        if closed.haves.contains_key(&have.server) {
            return Err(RejectReason::DuplicateHave {
                round,
                server: have.server,
            });
        }
        let list = have.clients.as_slice();
        if list.windows(2).any(|w| w[0].client >= w[1].client) {
            return Err(RejectReason::UnorderedHave);
        }
        if !have.signature_valid(&key.0) {
            return Err(RejectReason::BadSignature);
        }
        let all = {
            let closed = self
                .state
                .awaiting
                .get_mut(&round)
                .ok_or(RejectReason::NotAwaitingHaves { round })?;
            closed.haves.insert(have.server, list.to_vec());
            closed.haves.len() == usize::from(self.params.servers)
        };
        if all {
            return Ok(self.decide(round));
        }
        Ok(Effect::HaveRecorded {
            round,
            server: have.server,
        })
    }

    /// The leader's `Decide`: decide with the lists in.
    fn decide_now(&mut self, round: Round) -> Result<Effect, RejectReason> {
        if self
            .state
            .awaiting
            .get(&round)
            .is_none_or(|c| c.decided.is_some())
        {
            return Err(RejectReason::NotAwaitingHaves { round });
        }
        Ok(self.decide(round))
    }

    /// Fix Q and I from the lists in; void with fewer than t + 1 lists or k clients.
    fn decide(&mut self, round: Round) -> Effect {
        let needed = self.params.reveals_needed();
        let k = self.params.min_anonymity_set as usize;
        let (haves, layout_known) = match self.state.awaiting.get_mut(&round) {
            Some(closed) => (std::mem::take(&mut closed.haves), closed.layout_known),
            None => return Effect::Rejected(RejectReason::NotAwaitingHaves { round }),
        };
        let servers: Vec<ServerIndex> = haves.keys().copied().collect();
        let included: Vec<ClientId> = if servers.len() >= needed {
            self.state
                .conduct
                .include(&self.params, round, &haves, layout_known)
        } else {
            Vec::new()
        };
        let participants = included.len() as u32;
        self.state.last_closed = Some((round, participants));
        if servers.len() < needed || included.len() < k {
            self.state.awaiting.remove(&round);
            let output = self.note_void(round, participants);
            return Effect::Void {
                round,
                participants,
                output,
            };
        }
        if let Some(closed) = self.state.awaiting.get_mut(&round) {
            closed.decided = Some(Decision {
                servers: servers.clone(),
                included: included.clone(),
            });
        }
        Effect::Decided {
            round,
            servers,
            included,
        }
    }

    /// Count a void round and retain what it publishes (that it was void).
    fn note_void(&mut self, round: Round, participants: u32) -> RoundOutput {
        self.state.void_rounds += 1;
        self.state.recent_void.push_back(round);
        while self.state.recent_void.len() > RECENT_VOID {
            self.state.recent_void.pop_front();
        }
        let output = RoundOutput::void(round, participants);
        self.keep_output(output.clone());
        output
    }

    /// Refusals of a registration from the applied state, before it costs a log entry:
    /// name or keys taken, or the `open` policy's caps reached. Run after
    /// [`check_register`]. Ok for an idempotent re-registration.
    pub fn precheck_register(&self, reg: &Register) -> Result<(), RejectReason> {
        if let Some(existing) = self.state.names.get(&reg.name) {
            return if *existing == reg.keys {
                Ok(())
            } else {
                Err(RejectReason::NameTaken)
            };
        }
        if self.state.by_key.contains_key(&reg.keys.sign)
            || self.state.by_dh.contains_key(&reg.keys.dh)
        {
            return Err(RejectReason::KeysTaken);
        }
        if self.params.admission == Admission::Open {
            if self.state.names.len() as u64 >= self.params.max_names {
                return Err(RejectReason::DirectoryFull {
                    cap: self.params.max_names,
                });
            }
            if self.state.registered_this_round >= self.params.registrations_per_round {
                return Err(RejectReason::RegistrationsBusy {
                    round: self.state.open_round,
                    cap: self.params.registrations_per_round,
                });
            }
        }
        Ok(())
    }

    fn register(&mut self, reg: &Register) -> Result<Effect, RejectReason> {
        check_register(&self.params, reg)?;
        let name = check_name(reg.name.as_slice())?.to_string();
        self.precheck_register(reg)?;
        if self.state.names.contains_key(&reg.name) {
            // Re-registering the same name with the same keys is idempotent.
            return Ok(Effect::Registered { name });
        }
        self.state.registered_this_round += 1;
        self.state.names.insert(reg.name.clone(), reg.keys);
        self.state.by_key.insert(reg.keys.sign, reg.name.clone());
        self.state.by_dh.insert(reg.keys.dh, reg.keys.sign);
        self.state.registrations.push(reg.clone());
        Ok(Effect::Registered { name })
    }
}

impl RoundMachine {
    /// The first `Init` fixes the cluster's parameters; later ones must repeat them.
    fn init(&mut self, committed: &Params) -> Effect {
        match &self.state.genesis {
            Some(g) if g == committed => Effect::Initialised,
            Some(g) => Effect::Rejected(RejectReason::ConfigMismatch(
                committed
                    .first_difference(g)
                    .unwrap_or_else(|| "parameters".into()),
            )),
            None => {
                self.state.genesis = Some(committed.clone());
                self.config_mismatch()
                    .map_or(Effect::Initialised, Effect::ConfigMismatch)
            }
        }
    }

    /// How this node's parameters differ from the committed ones, if they do.
    pub fn config_mismatch(&self) -> Option<String> {
        self.state
            .genesis
            .as_ref()
            .and_then(|g| self.params.first_difference(g))
    }
}

struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
