//! The receiving side of a round: trial-decrypt every slot of an accepted output, and
//! put multi-fragment messages back together.
//!
//! [`super::ClientCore`] calls [`open_slots`] for each accepted output and feeds each
//! opened fragment to [`Reassembly::offer`], which returns whole messages. Anyone can
//! address slots to us, so what half-sent messages may hold is bounded
//! ([`MAX_PARTIAL_MESSAGES`]).

use std::collections::HashMap;

use protocol::slot::{inspect_slot, open_slot, Sender, SlotMessage, SlotState};
use protocol::wire::RoundOutput;
use x25519_dalek::StaticSecret;

/// Partially received multi-fragment messages kept at once.
pub const MAX_PARTIAL_MESSAGES: usize = 1024;

/// Every intact slot of `output` that one of `keys` opens, in slot order.
pub fn open_slots<'a>(
    output: &RoundOutput,
    keys: impl Iterator<Item = &'a StaticSecret> + Clone,
) -> Vec<SlotMessage> {
    let mut found = Vec::new();
    for s in 0..output.slots as usize {
        let Some(slot) = output.slot(s) else { continue };
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
    parts: Vec<Option<Vec<u8>>>,
    timestamp_ms: u64,
}

/// Fragments received so far, per (sender, conversation, seq).
pub struct Reassembly {
    partial: HashMap<Key, Parts>,
    max: usize,
}

impl Default for Reassembly {
    fn default() -> Self {
        Self::with_limit(MAX_PARTIAL_MESSAGES)
    }
}

impl Reassembly {
    /// Keep at most `max` partial messages (the oldest by sender clock is dropped).
    pub fn with_limit(max: usize) -> Self {
        Self {
            partial: HashMap::new(),
            max,
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

    /// Add one fragment; returns the message once every fragment is in.
    pub fn offer(&mut self, msg: SlotMessage) -> Option<Complete> {
        let key = (msg.sender.reply_to(), msg.conversation, msg.seq);
        let count = usize::from(msg.fragment_count);
        if !self.partial.contains_key(&key) && self.partial.len() >= self.max {
            if let Some(oldest) = self
                .partial
                .iter()
                .min_by_key(|(_, p)| p.timestamp_ms)
                .map(|(k, _)| *k)
            {
                self.partial.remove(&oldest);
            }
        }
        let entry = self.partial.entry(key).or_insert_with(|| Parts {
            parts: vec![None; count],
            timestamp_ms: msg.timestamp_ms,
        });
        if entry.parts.len() != count {
            return None; // inconsistent fragment headers: ignore the stray
        }
        if let Some(slot) = entry.parts.get_mut(usize::from(msg.fragment_index)) {
            *slot = Some(msg.body);
        }
        if entry.parts.iter().any(Option::is_none) {
            return None;
        }
        let done = self.partial.remove(&key)?;
        Some(Complete {
            sender: msg.sender,
            conversation: msg.conversation,
            seq: msg.seq,
            timestamp_ms: done.timestamp_ms,
            body: done.parts.into_iter().flatten().flatten().collect(),
        })
    }
}
