//! Sender names: a bounded cache of x25519 key → registered name, and the queue of
//! received messages waiting for their sender's name.
//!
//! Slots name senders by x25519 key; the user wants a name. [`super::ClientCore`] asks
//! the directory for keys it has not cached (today a server lookup; a local directory
//! can answer the same query later) while the message waits here, so that messages are
//! still shown in the order their rounds were accepted.

use std::collections::{HashMap, VecDeque};

use protocol::slot::Sender;
use protocol::wire::Round;

use super::inbox::Complete;

/// Names remembered (one per key; the oldest learned is forgotten first).
pub const MAX_NAMES: usize = 4096;
/// Received messages waiting for a name before the oldest is shown as `unknown-…`.
pub const MAX_WAITING: usize = 1024;

/// The name cache.
#[derive(Default)]
pub struct Names {
    map: HashMap<[u8; 32], String>,
    order: VecDeque<[u8; 32]>,
}

impl Names {
    /// The name of `dh`, if known.
    pub fn get(&self, dh: &[u8; 32]) -> Option<&String> {
        self.map.get(dh)
    }

    /// Remember that `dh` is `name`. Names never change once registered.
    pub fn insert(&mut self, dh: [u8; 32], name: String) {
        if self.map.insert(dh, name).is_none() {
            self.order.push_back(dh);
        }
        while self.order.len() > MAX_NAMES {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Nothing cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The name shown for a key nobody registered (not cached: it may register later).
pub fn unknown_name(dh: &[u8; 32]) -> String {
    format!("unknown-{}", hex::encode(&dh[..4]))
}

/// The name to store for a sender now: the cached name, the anonymous label, or the
/// unknown-key label until a lookup answers.
pub fn shown_name(sender: &Sender, names: &Names) -> String {
    match sender {
        Sender::ReplyKey(k) => format!("anonymous-{}", hex::encode(&k[..4])),
        Sender::Identity(k) => names.get(k).cloned().unwrap_or_else(|| unknown_name(k)),
    }
}

/// A received message on its way to the user.
#[derive(Debug)]
pub struct Inbound {
    /// Round it arrived in.
    pub round: Round,
    /// The message.
    pub msg: Complete,
    /// The sender's name once known.
    pub from: Option<String>,
    /// Its history entry and the name stored there, if it was stored.
    pub history: Option<(u64, String)>,
}

/// Received messages in arrival order, each waiting for its sender's name.
#[derive(Default)]
pub struct NameQueue {
    queue: VecDeque<Inbound>,
    asking: Option<[u8; 32]>,
}

impl NameQueue {
    /// Add a message; anonymous senders and cached names need no lookup.
    pub fn push(
        &mut self,
        round: Round,
        msg: Complete,
        names: &Names,
        history: Option<(u64, String)>,
    ) {
        let from = match msg.sender {
            Sender::ReplyKey(k) => Some(format!("anonymous-{}", hex::encode(&k[..4]))),
            Sender::Identity(k) => names.get(&k).cloned(),
        };
        if self.queue.len() >= MAX_WAITING {
            if let Some(head) = self.queue.front_mut() {
                let dh = head.msg.sender.reply_to();
                head.from.get_or_insert_with(|| unknown_name(&dh));
            }
        }
        self.queue.push_back(Inbound {
            round,
            msg,
            from,
            history,
        });
    }

    /// The next message whose name is known, in order.
    pub fn pop_ready(&mut self) -> Option<Inbound> {
        if self.queue.front()?.from.is_some() {
            return self.queue.pop_front();
        }
        None
    }

    /// The key to look up next, once: the head's, if it waits and no lookup is out.
    pub fn next_lookup(&mut self) -> Option<[u8; 32]> {
        if self.asking.is_some() {
            return None;
        }
        let head = self.queue.front()?;
        if head.from.is_some() {
            return None;
        }
        let dh = head.msg.sender.reply_to();
        self.asking = Some(dh);
        Some(dh)
    }

    /// The lookup of `dh` finished: `name` if it is registered, `None` if not (or the
    /// directory could not be asked).
    pub fn resolved(&mut self, dh: [u8; 32], name: Option<String>) {
        if self.asking == Some(dh) {
            self.asking = None;
        }
        let shown = name.unwrap_or_else(|| unknown_name(&dh));
        for m in self.queue.iter_mut() {
            if m.from.is_none() && m.msg.sender.reply_to() == dh {
                m.from = Some(shown.clone());
            }
        }
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}
