//! Output acceptance: an output counts once `f+1` distinct servers signed its hash.
//!
//! [`super::ClientCore`] offers every signed output it sees (gossip and catch-up pages)
//! to a [`VouchBook`], which answers with the output once it is accepted. Nothing here
//! does I/O; the server keys come from the cluster config.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use protocol::wire::{Round, RoundOutput, ServerIndex, SignedOutput};

/// Vouches more than this many rounds behind the watermark are ignored (settled).
pub const VOUCH_WINDOW: u64 = 64;
/// Rounds with vouches waiting, at most: four history pages, so a catch-up step (one
/// page from every server, aligned) never has its vouches dropped.
pub const MAX_PENDING_ROUNDS: usize = 4 * protocol::limits::MAX_HISTORY_OUTPUTS;
/// Accepted rounds remembered, so late vouches for them are ignored.
const ACCEPTED_KEPT: u64 = VOUCH_WINDOW * 4;

/// An output and the servers that vouched for its hash.
struct Vouched {
    output: RoundOutput,
    servers: BTreeSet<ServerIndex>,
}

/// Why a vouch did not count (for tests and tracing; the caller just drops it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Signer index outside the configured servers.
    UnknownServer,
    /// Round or hash in the vouch do not match the output, or the signature is bad.
    BadVouch,
    /// More reservations or longer slots than the cluster's parameters allow.
    WrongShape,
    /// The round was accepted already, or is too far behind.
    Old,
    /// This server already vouched for another hash in this round.
    Equivocation,
}

/// What offering a vouch did.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Counted; not yet enough vouches.
    Counted,
    /// This vouch completed f+1: the output is accepted (once).
    Accepted(RoundOutput),
    /// Did not count.
    Refused(Refused),
}

/// Vouches per round and hash, and the rounds already accepted.
pub struct VouchBook {
    server_sign: Vec<[u8; 32]>,
    needed: usize,
    /// Reservation cells per round (an output decodes at most two per cell).
    reserve_cells: u32,
    /// The longest slot.
    slot_bytes: u32,
    /// Per round, per hash. A server counts for one hash per round, so a round holds at
    /// most `n` outputs (the bound on memory a lying server can make us keep).
    pending: BTreeMap<Round, HashMap<[u8; 32], Vouched>>,
    accepted: BTreeSet<Round>,
}

impl VouchBook {
    /// `needed` = f+1 signatures over one hash accept an output.
    pub fn new(
        server_sign: Vec<[u8; 32]>,
        needed: usize,
        reserve_cells: u32,
        slot_bytes: u32,
    ) -> Self {
        Self {
            server_sign,
            needed,
            reserve_cells,
            slot_bytes,
            pending: BTreeMap::new(),
            accepted: BTreeSet::new(),
        }
    }

    /// Was round `r` accepted (and still remembered)?
    pub fn is_accepted(&self, r: Round) -> bool {
        self.accepted.contains(&r)
    }

    /// Rounds with vouches waiting.
    pub fn pending_rounds(&self) -> usize {
        self.pending.len()
    }

    /// Is this a well-formed output with a valid vouch by a configured server?
    pub fn vouch_valid(&self, signed: &SignedOutput) -> bool {
        let Some(key) = self.server_sign.get(usize::from(signed.vouch.server)) else {
            return false;
        };
        let hash = signed.output.hash();
        signed.vouch.round == signed.output.round
            && signed.vouch.output_hash.0 == hash
            && signed.vouch.signature_valid(key)
    }

    /// Count one signed output. `last_processed` is the newest round already handled;
    /// vouches more than [`VOUCH_WINDOW`] rounds behind it are ignored.
    pub fn offer(&mut self, signed: SignedOutput, last_processed: Option<Round>) -> Offer {
        let SignedOutput { output, vouch } = signed;
        let Some(key) = self.server_sign.get(usize::from(vouch.server)) else {
            return Offer::Refused(Refused::UnknownServer);
        };
        let hash = output.hash();
        if vouch.round != output.round || vouch.output_hash.0 != hash || !vouch.signature_valid(key)
        {
            return Offer::Refused(Refused::BadVouch);
        }
        let too_long = |s: &protocol::wire::OutputSlot| s.data.len() > self.slot_bytes as usize;
        if output.reservations.len() > 2 * self.reserve_cells as usize
            || output.slots.as_slice().iter().any(too_long)
        {
            return Offer::Refused(Refused::WrongShape);
        }
        let r = output.round;
        if self.accepted.contains(&r)
            || last_processed.is_some_and(|l| r.saturating_add(VOUCH_WINDOW) < l)
        {
            return Offer::Refused(Refused::Old);
        }
        let round = self.pending.entry(r).or_default();
        if round
            .iter()
            .any(|(h, v)| *h != hash && v.servers.contains(&vouch.server))
        {
            return Offer::Refused(Refused::Equivocation);
        }
        let entry = round.entry(hash).or_insert_with(|| Vouched {
            output,
            servers: BTreeSet::new(),
        });
        entry.servers.insert(vouch.server);
        let result = if entry.servers.len() >= self.needed {
            let output = entry.output.clone();
            self.pending.remove(&r);
            self.accepted.insert(r);
            while self.accepted.len() as u64 > ACCEPTED_KEPT {
                self.accepted.pop_first();
            }
            Offer::Accepted(output)
        } else {
            Offer::Counted
        };
        while self.pending.len() > MAX_PENDING_ROUNDS {
            // The newest go first: catch-up fetches them again, while the oldest are
            // the ones a catch-up step is completing.
            self.pending.pop_last();
        }
        result
    }
}
