//! The receiving side of a round: trial-decrypt every slot of an accepted output, and
//! put multi-fragment messages back together.
//!
//! [`super::ClientCore`] calls [`open_slots`] for each accepted output and feeds each
//! opened fragment to [`Reassembly::offer`], which returns whole messages. Anyone can
//! address slots to us, so what half-sent messages may hold is bounded: a message may
//! announce at most as many fragments as the largest message we accept
//! ([`MAX_MESSAGE_BYTES`]) needs, fragments are stored as they arrive (nothing is
//! allocated for an announced count), and partial messages are held within
//! [`MAX_PARTIAL_MESSAGES`] and [`REASSEMBLY_BUDGET_BYTES`], the earliest to arrive
//! dropped first (arrival order, never the sender-chosen timestamp).

use std::collections::{BTreeMap, HashMap};

use protocol::slot::{inspect_slot, open_slot, Sender, SlotMessage, SlotState};
use protocol::wire::RoundOutput;
use x25519_dalek::StaticSecret;

/// Partially received multi-fragment messages kept at once.
pub const MAX_PARTIAL_MESSAGES: usize = 1024;
/// The longest message body this client sends or accepts.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Bytes of fragment bodies held for partial messages, at most.
pub const REASSEMBLY_BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// Every intact slot of `output` that one of `keys` opens, in slot order.
pub fn open_slots<'a>(
    output: &RoundOutput,
    keys: impl Iterator<Item = &'a StaticSecret> + Clone,
) -> Vec<SlotMessage> {
    let mut found = Vec::new();
    for s in output.slots.as_slice() {
        let slot = s.data.as_slice();
        if inspect_slot(slot) != SlotState::Intact {
            continue;
        }
        if let Some(msg) = keys.clone().find_map(|k| open_slot(slot, k).ok()) {
            found.push(msg);
        }
    }
    found
}

/// A whole message, put together from its fragments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Complete {
    /// Who sent it (a long-term key or a one-time reply key).
    pub sender: Sender,
    /// Conversation id.
    pub conversation: [u8; 16],
    /// Sequence number.
    pub seq: u32,
    /// Sender's clock.
    pub timestamp_ms: u64,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Complete {
    /// The key the delivered-set remembers: sender, conversation, seq.
    pub fn dedupe_key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(52);
        k.extend_from_slice(&self.sender.reply_to());
        k.extend_from_slice(&self.conversation);
        k.extend_from_slice(&self.seq.to_le_bytes());
        k
    }
}

type Key = ([u8; 32], [u8; 16], u32);

struct Parts {
    count: u16,
    parts: BTreeMap<u16, Vec<u8>>,
    bytes: usize,
    timestamp_ms: u64,
    /// When its first fragment arrived (our own counter).
    arrived: u64,
}

/// Fragments received so far, per (sender, conversation, seq).
pub struct Reassembly {
    partial: HashMap<Key, Parts>,
    max: usize,
    budget: usize,
    held: usize,
    max_fragments: u16,
    arrivals: u64,
}

impl Reassembly {
    /// For slots of `slot_bytes`: the fragment cap follows from [`MAX_MESSAGE_BYTES`].
    pub fn new(slot_bytes: usize) -> Self {
        Self::with_limits(slot_bytes, MAX_PARTIAL_MESSAGES, REASSEMBLY_BUDGET_BYTES)
    }

    /// At most `max` partial messages holding `budget` bytes.
    pub fn with_limits(slot_bytes: usize, max: usize, budget: usize) -> Self {
        let cap = protocol::slot::body_capacity(slot_bytes).max(1);
        let max_fragments = MAX_MESSAGE_BYTES.div_ceil(cap).min(usize::from(u16::MAX)) as u16;
        Self {
            partial: HashMap::new(),
            max,
            budget,
            held: 0,
            max_fragments,
            arrivals: 0,
        }
    }

    /// Partial messages held.
    pub fn len(&self) -> usize {
        self.partial.len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.partial.is_empty()
    }

    /// Bytes of fragments held.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// The most fragments a message may announce.
    pub fn max_fragments(&self) -> u16 {
        self.max_fragments
    }

    fn drop_earliest(&mut self) {
        if let Some(earliest) = self
            .partial
            .iter()
            .min_by_key(|(_, p)| p.arrived)
            .map(|(k, _)| *k)
        {
            if let Some(p) = self.partial.remove(&earliest) {
                self.held -= p.bytes;
            }
        }
    }

    /// Add one fragment; returns the message once every fragment is in.
    pub fn offer(&mut self, msg: SlotMessage) -> Option<Complete> {
        let count = msg.fragment_count;
        if count == 0 || count > self.max_fragments || msg.fragment_index >= count {
            return None; // longer than any message we accept, or a stray index
        }
        let key = (msg.sender.reply_to(), msg.conversation, msg.seq);
        if count == 1 {
            return Some(Complete {
                sender: msg.sender,
                conversation: msg.conversation,
                seq: msg.seq,
                timestamp_ms: msg.timestamp_ms,
                body: msg.body,
            });
        }
        if let Some(p) = self.partial.get(&key) {
            if p.count != count || p.parts.contains_key(&msg.fragment_index) {
                return None; // inconsistent headers, or a duplicate: ignore it
            }
        } else {
            while !self.partial.is_empty() && self.partial.len() >= self.max {
                self.drop_earliest();
            }
            self.arrivals += 1;
            self.partial.insert(
                key,
                Parts {
                    count,
                    parts: BTreeMap::new(),
                    bytes: 0,
                    timestamp_ms: msg.timestamp_ms,
                    arrived: self.arrivals,
                },
            );
        }
        let len = msg.body.len();
        while self.held + len > self.budget && self.partial.len() > 1 {
            // Make room, never at the expense of the message this fragment belongs to.
            let Some(earliest) = self
                .partial
                .iter()
                .filter(|(k, _)| **k != key)
                .min_by_key(|(_, p)| p.arrived)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some(p) = self.partial.remove(&earliest) {
                self.held -= p.bytes;
            }
        }
        if self.held + len > self.budget {
            // This message alone exceeds the budget: give it up.
            if let Some(p) = self.partial.remove(&key) {
                self.held -= p.bytes;
            }
            return None;
        }
        let entry = self.partial.get_mut(&key)?;
        entry.parts.insert(msg.fragment_index, msg.body);
        entry.bytes += len;
        self.held += len;
        if entry.parts.len() < usize::from(count) {
            return None;
        }
        let done = self.partial.remove(&key)?;
        self.held -= done.bytes;
        Some(Complete {
            sender: msg.sender,
            conversation: msg.conversation,
            seq: msg.seq,
            timestamp_ms: done.timestamp_ms,
            body: done.parts.into_values().flatten().collect(),
        })
    }
}
