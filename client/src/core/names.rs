//! Sender names: received messages waiting for their sender's name.
//!
//! Slots name senders by x25519 key; the user wants a name. The local directory
//! ([`super::directory`]) answers at once for every key it holds; a message from a key
//! it does not hold yet waits here for the next directory sync (the sender may have
//! registered seconds ago), so that messages are still shown in the order their rounds
//! were accepted. Nothing here asks a server anything.

use std::collections::VecDeque;

use protocol::slot::Sender;
use protocol::wire::Round;

use super::directory::Directory;
use super::inbox::Complete;

/// Received messages waiting for a name before the oldest is shown as `unknown-…`.
pub const MAX_WAITING: usize = 1024;

/// The name shown for a key nobody registered (yet).
pub fn unknown_name(dh: &[u8; 32]) -> String {
    format!("unknown-{}", hex::encode(&dh[..4]))
}

/// The name to store for a sender now: the registered name, the anonymous label, or
/// the unknown-key label until a directory sync names it.
pub fn shown_name(sender: &Sender, dir: &Directory) -> String {
    match sender {
        Sender::ReplyKey(k) => format!("anonymous-{}", hex::encode(&k[..4])),
        Sender::Identity(k) => dir.name_of(k).cloned().unwrap_or_else(|| unknown_name(k)),
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
    /// When it arrived, and how many directory sync steps had started by then.
    since: (u64, u64),
}

/// Received messages in arrival order, each waiting for its sender's name.
#[derive(Default)]
pub struct NameQueue {
    queue: VecDeque<Inbound>,
}

impl NameQueue {
    /// Add a message (arrived at `now_ms`, after `steps` sync steps started);
    /// anonymous senders and names the directory holds need no wait.
    pub fn push(
        &mut self,
        round: Round,
        msg: Complete,
        dir: &Directory,
        history: Option<(u64, String)>,
        since: (u64, u64),
    ) {
        let from = match msg.sender {
            Sender::ReplyKey(k) => Some(format!("anonymous-{}", hex::encode(&k[..4]))),
            Sender::Identity(k) => dir.name_of(&k).cloned(),
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
            since,
        });
    }

    /// The next message whose name is known, in order.
    pub fn pop_ready(&mut self) -> Option<Inbound> {
        if self.queue.front()?.from.is_some() {
            return self.queue.pop_front();
        }
        None
    }

    /// Name waiting messages from `dir`; one it cannot name gets the unknown label if
    /// it arrived before sync step `step` started or by `cutoff_ms`. True if any
    /// message got its name.
    pub fn resolve(&mut self, dir: &Directory, step: u64, cutoff_ms: u64) -> bool {
        let mut named = false;
        for m in self.queue.iter_mut().filter(|m| m.from.is_none()) {
            let dh = m.msg.sender.reply_to();
            if let Some(name) = dir.name_of(&dh) {
                m.from = Some(name.clone());
            } else if m.since.1 < step || m.since.0 <= cutoff_ms {
                m.from = Some(unknown_name(&dh));
            } else {
                continue;
            }
            named = true;
        }
        named
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
