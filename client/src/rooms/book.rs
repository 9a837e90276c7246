//! Every room this client is in or waits to join, as it persists across restarts.
//!
//! A [`Room`] holds what MLS does not: the room's name and approval rule, its admins, the
//! names of members seen, pending join requests, the envelope keys of every epoch this
//! client may read (the history it was handed, then its own), and its own membership
//! changes waiting to be committed, one at a time (MLS allows one pending commit).

use std::collections::{BTreeMap, HashMap, VecDeque};

use protocol::room::{RoomFragment, RoomKeys};
use serde::{Deserialize, Serialize};

use super::mls::{MemberKeys, RoomId};
use super::wire::{Approval, PastEpoch};

/// Epochs of keys a room keeps (the oldest are forgotten: their history with them).
pub const MAX_EPOCHS: usize = 256;
/// Join requests a room holds at once (the oldest is dropped).
pub const MAX_REQUESTS: usize = 64;
/// Longest room name.
pub const MAX_ROOM_NAME: usize = 64;
/// Partial room messages held at once, and their bytes.
const MAX_PARTIAL: usize = 256;
const PARTIAL_BUDGET: usize = 2 * 1024 * 1024;
/// The longest room message (a commit or Welcome of a large room fits).
pub const MAX_ROOM_MESSAGE: usize = 64 * 1024;

/// A join request members may approve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The asker's registered name.
    pub name: String,
    /// Its keys (from its key package).
    pub member: MemberKeys,
    /// The key package.
    pub key_package: Vec<u8>,
}

/// A membership change of ours, to be committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Add the asker of this request.
    Add(Request),
    /// Remove this member.
    Remove {
        /// Name shown.
        name: String,
        /// Keys.
        member: MemberKeys,
    },
}

/// Our commit on its way: it counts once it comes back in the epoch it was made for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committing {
    /// What it does.
    pub op: Op,
    /// The epoch it was made in.
    pub epoch: u64,
    /// The Welcome to send once it wins (adds only).
    pub welcome: Option<Vec<u8>>,
}

/// One room.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Room {
    /// MLS group id (never leaves the members).
    pub id: RoomId,
    /// Its name.
    pub name: String,
    /// Who may approve newcomers.
    pub approval: Approval,
    /// Admins' ed25519 keys.
    pub admins: Vec<[u8; 32]>,
    /// Newcomers are handed the keys of earlier epochs (the room's history).
    #[serde(default = "yes")]
    pub history: bool,
    /// Names of members seen, by ed25519 key (hex).
    pub names: BTreeMap<String, String>,
    /// Keys of every epoch we may read, oldest first; the last is the current one.
    pub epochs: Vec<PastEpoch>,
    /// Join requests not yet approved or declined.
    pub requests: Vec<Request>,
    /// Our membership changes waiting to be committed.
    pub ops: VecDeque<Op>,
    /// Our commit out, if any.
    pub committing: Option<Committing>,
    /// We are a member (false once removed or gone).
    pub active: bool,
    /// Members (ed25519) who said they leave, until their removal is committed.
    #[serde(default)]
    pub leaving: std::collections::BTreeSet<[u8; 32]>,
}

impl Room {
    /// The keys of the current epoch.
    pub fn current_keys(&self) -> Option<RoomKeys> {
        self.active.then(|| keys_of(self.epochs.last()?)).flatten()
    }

    /// Every epoch's keys we hold, newest first.
    pub fn all_keys(&self) -> Vec<RoomKeys> {
        self.epochs.iter().rev().filter_map(keys_of).collect()
    }

    /// A new epoch, started by the output of `round`.
    pub fn push_epoch(&mut self, keys: &RoomKeys, round: u64) {
        self.epochs.push(PastEpoch {
            keys: keys.to_bytes().to_vec(),
            from_round: round,
        });
        if self.epochs.len() > MAX_EPOCHS {
            self.epochs.remove(0);
        }
    }

    /// The name shown for a member's ed25519 key.
    pub fn name_of(&self, sign: &[u8; 32]) -> String {
        self.names
            .get(&hex::encode(sign))
            .cloned()
            .unwrap_or_else(|| format!("unknown-{}", hex::encode(&sign[..4])))
    }

    /// Remember a member's name.
    pub fn learn(&mut self, sign: &[u8; 32], name: &str) {
        self.names.insert(hex::encode(sign), name.to_string());
    }

    /// Whether the holder of `sign` may approve, decline, remove or rename.
    pub fn may_manage(&self, sign: &[u8; 32]) -> bool {
        self.approval == Approval::AnyMember || self.admins.contains(sign)
    }

    /// The room's address in the history and in events.
    pub fn address(&self) -> String {
        address(&self.name)
    }
}

/// The history address of a room named `name`.
pub fn address(name: &str) -> String {
    format!("#room/{name}")
}

fn yes() -> bool {
    true
}

fn keys_of(e: &PastEpoch) -> Option<RoomKeys> {
    let b: [u8; 64] = e.keys.as_slice().try_into().ok()?;
    Some(RoomKeys::from_bytes(&b))
}

/// A room we asked to join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// Its name as we asked.
    pub room: String,
    /// The member we asked.
    pub via: String,
}

/// Every room, persisted as one record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Book {
    /// Rooms we are (or were) in.
    pub rooms: Vec<Room>,
    /// Rooms we asked to join.
    pub waiting: Vec<Waiting>,
}

impl Book {
    /// The active room named `name`.
    pub fn by_name(&self, name: &str) -> Option<usize> {
        self.rooms.iter().position(|r| r.active && r.name == name)
    }

    /// The room with id `id`.
    pub fn by_id(&self, id: &RoomId) -> Option<usize> {
        self.rooms.iter().position(|r| &r.id == id)
    }

    /// The name room `id` is shown under when someone else names it `wanted` (a
    /// rename, a Welcome): `None` if the name breaks the rule; suffixed with the start
    /// of the id if another of our rooms (not `except`) has it already.
    pub fn fit_name(&self, wanted: &str, id: &RoomId, except: Option<usize>) -> Option<String> {
        let name = check_name(wanted).ok()?;
        Some(match self.by_name(&name) {
            Some(j) if Some(j) != except => format!("{name} ({})", hex::encode(&id[..2])),
            _ => name,
        })
    }
}

/// A room name as typed, checked: 1 to 64 characters, no control characters.
pub fn check_name(name: &str) -> Result<String, String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > MAX_ROOM_NAME {
        return Err(format!(
            "a room name has 1 to {MAX_ROOM_NAME} characters, not {}",
            n.chars().count()
        ));
    }
    if n.chars().any(char::is_control) {
        return Err("a room name cannot hold control characters".into());
    }
    Ok(n.to_string())
}

struct Parts {
    count: u16,
    parts: BTreeMap<u16, Vec<u8>>,
    bytes: usize,
    arrived: u64,
}

/// Room message fragments, per (room, message id), bounded in count and bytes (the
/// earliest to arrive is dropped first).
#[derive(Default)]
pub struct RoomParts {
    partial: HashMap<(RoomId, u64), Parts>,
    held: usize,
    arrivals: u64,
}

impl RoomParts {
    /// Add a fragment; returns the whole message once every fragment is in.
    pub fn offer(&mut self, room: RoomId, f: RoomFragment) -> Option<Vec<u8>> {
        if f.count == 1 {
            return Some(f.body);
        }
        let max_frags = MAX_ROOM_MESSAGE.div_ceil(f.body.len().max(1)) + 1;
        if usize::from(f.count) > max_frags.max(2) || f.body.is_empty() {
            return None;
        }
        let key = (room, f.message);
        if !self.partial.contains_key(&key) {
            while self.partial.len() >= MAX_PARTIAL || self.held + f.body.len() > PARTIAL_BUDGET {
                let oldest = self
                    .partial
                    .iter()
                    .min_by_key(|(_, p)| p.arrived)
                    .map(|(k, _)| *k)?;
                if let Some(p) = self.partial.remove(&oldest) {
                    self.held -= p.bytes;
                }
            }
            self.arrivals += 1;
            self.partial.insert(
                key,
                Parts {
                    count: f.count,
                    parts: BTreeMap::new(),
                    bytes: 0,
                    arrived: self.arrivals,
                },
            );
        }
        let p = self.partial.get_mut(&key)?;
        if p.count != f.count || p.parts.contains_key(&f.index) {
            return None;
        }
        p.bytes += f.body.len();
        self.held += f.body.len();
        p.parts.insert(f.index, f.body);
        if p.parts.len() < usize::from(p.count) {
            return None;
        }
        let p = self.partial.remove(&key)?;
        self.held -= p.bytes;
        Some(p.parts.into_values().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(message: u64, index: u16, count: u16, body: &[u8]) -> RoomFragment {
        RoomFragment {
            message,
            index,
            count,
            body: body.to_vec(),
        }
    }

    #[test]
    fn fragments_reassemble_once_in_any_order() {
        let mut p = RoomParts::default();
        assert_eq!(p.offer([1; 16], frag(5, 1, 2, b"world")), None);
        assert_eq!(p.offer([1; 16], frag(5, 1, 2, b"world")), None);
        assert_eq!(
            p.offer([1; 16], frag(5, 0, 2, b"hello ")),
            Some(b"hello world".to_vec())
        );
        // The same message id in another room is another message.
        assert_eq!(p.offer([2; 16], frag(5, 0, 2, b"a")), None);
        assert_eq!(p.held, 1);
    }

    #[test]
    fn a_fragment_count_beyond_the_largest_message_is_refused() {
        let mut p = RoomParts::default();
        assert_eq!(p.offer([1; 16], frag(1, 0, u16::MAX, &[0; 100])), None);
        assert!(p.partial.is_empty());
    }

    #[test]
    fn room_names_are_checked_by_rule() {
        assert_eq!(check_name("  book club "), Ok("book club".into()));
        assert!(check_name("").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_name("a\u{7}b").is_err());
    }
}
