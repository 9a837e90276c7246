//! What the window shows, independent of iced: contacts, conversations, delivery states
//! and cluster health. The `update` in `app.rs` only moves data between the engine and
//! these types; everything here is plain data with unit-testable rules.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use client::delivery::Delivery as EngineDelivery;
use client::store::{Direction, HistoryEntry};
use serde::{Deserialize, Serialize};

/// Where a message bubble stands, as the engine reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Handed to the engine; no outbox id yet.
    Handing,
    /// In the outbox, waiting for a round.
    Queued,
    /// Submitted in this round; waiting for its output.
    InRound(u64),
    /// Seen in the round's output: delivered to the recipient's slot.
    Sent(u64),
    /// Collided or the round was void; will be tried again.
    Retrying(String),
    /// Gave up, with the reason.
    Failed(String),
    /// A message we received in this round.
    Received(u64),
}

impl Delivery {
    /// From the engine's typed state (reasons become the words shown).
    pub fn from_engine(d: &EngineDelivery) -> Self {
        match d {
            EngineDelivery::Queued => Self::Queued,
            EngineDelivery::InRound(r) => Self::InRound(*r),
            EngineDelivery::Sent(r) => Self::Sent(*r),
            EngineDelivery::Retrying { reason, .. } => Self::Retrying(reason.to_string()),
            EngineDelivery::Failed { reason, .. } => Self::Failed(reason.to_string()),
        }
    }

    /// The words under a bubble.
    pub fn label(&self) -> String {
        match self {
            Self::Handing => "sending…".into(),
            Self::Queued => "queued".into(),
            Self::InRound(r) => format!("in round {r}"),
            Self::Sent(r) => format!("sent · round {r}"),
            Self::Retrying(why) => format!("retrying: {why}"),
            Self::Failed(why) => format!("failed: {why}"),
            Self::Received(r) => format!("round {r}"),
        }
    }

    /// Final states do not change any more.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Sent(_) | Self::Failed(_) | Self::Received(_))
    }
}

/// One message in a conversation.
#[derive(Clone, Debug)]
pub struct Bubble {
    /// We wrote it.
    pub outgoing: bool,
    /// Text.
    pub text: String,
    /// Sender's clock, ms since the epoch.
    pub timestamp_ms: u64,
    /// Delivery state.
    pub delivery: Delivery,
    /// Slots it takes (1 for short messages).
    pub fragments: usize,
    /// Outbox / history id of an outgoing message.
    pub outbox_id: Option<u64>,
    /// Our own id for a message not yet in the outbox.
    pub local_id: u64,
}

/// A contact as saved in `contacts.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// What we show.
    pub name: String,
    /// What the engine sends to: a registered name, or `key:<hex>` for someone who wrote
    /// from a key we cannot name.
    pub address: String,
    /// ed25519 key, hex, once looked up.
    #[serde(default)]
    pub sign: Option<String>,
    /// x25519 key, hex, once looked up.
    #[serde(default)]
    pub dh: Option<String>,
    /// The user compared safety numbers and marked it verified.
    #[serde(default)]
    pub verified: bool,
    /// Messages received and not yet looked at.
    #[serde(default)]
    pub unread: u32,
}

impl Contact {
    /// A contact known only by name or address.
    pub fn new(name: &str, address: &str) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
            sign: None,
            dh: None,
            verified: false,
            unread: 0,
        }
    }

    /// The public board's entry (pinned first, never saved, never verified).
    pub fn is_board(&self) -> bool {
        self.address == BOARD
    }

    /// The fingerprint, if we know both keys.
    pub fn fingerprint(&self) -> Option<keys::Fingerprint> {
        let sign = keys::identity::parse_hex32(self.sign.as_deref()?).ok()?;
        let dh = keys::identity::parse_hex32(self.dh.as_deref()?).ok()?;
        Some(keys::Fingerprint::of(&keys::PublicIdentity { sign, dh }))
    }
}

/// The public board's address: its posts are a conversation like any other in the
/// window, under a pinned entry.
pub const BOARD: &str = client::core::BOARD_ADDRESS;
/// What the board's entry is called.
pub const BOARD_NAME: &str = "Public board";

/// The contact list and every conversation, keyed by contact address.
#[derive(Default)]
pub struct Book {
    /// Contacts in the order they were added.
    pub contacts: Vec<Contact>,
    /// Bubbles per contact address, oldest first.
    pub conversations: HashMap<String, Vec<Bubble>>,
    /// Where the contacts are saved (None in tests).
    pub path: Option<PathBuf>,
}

/// Most bubbles kept per conversation in memory (the store keeps everything).
const MAX_BUBBLES: usize = 2000;

impl Book {
    /// Load `contacts.json` from `data_dir` (a missing file is an empty book).
    pub fn load(data_dir: &Path) -> Result<Self, String> {
        let path = data_dir.join("contacts.json");
        let contacts = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Vec<Contact>>(&bytes)
                .map_err(|e| format!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut book = Self {
            contacts,
            conversations: HashMap::new(),
            path: Some(path),
        };
        book.pin_board();
        Ok(book)
    }

    /// Put the public board first in the list (once).
    pub fn pin_board(&mut self) {
        self.contacts.retain(|c| !c.is_board());
        self.contacts.insert(0, Contact::new(BOARD_NAME, BOARD));
    }

    /// Write the contacts atomically (temp file + rename), readable only by the user
    /// (0600): whom one talks to is private.
    pub fn save(&self) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        // The board and rooms are pinned from the engine's state, not saved as contacts.
        let saved: Vec<&Contact> = self
            .contacts
            .iter()
            .filter(|c| !c.address.starts_with('#'))
            .collect();
        let json = serde_json::to_vec_pretty(&saved).map_err(|e| e.to_string())?;
        client::store::write_private(path, &json).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The index of the contact with this address.
    pub fn find(&self, address: &str) -> Option<usize> {
        self.contacts.iter().position(|c| c.address == address)
    }

    /// The contact for `address`, added if new. Returns its index.
    pub fn ensure(&mut self, name: &str, address: &str) -> usize {
        match self.find(address) {
            Some(i) => i,
            None => {
                self.contacts.push(Contact::new(name, address));
                self.contacts.len() - 1
            }
        }
    }

    /// Add or update a contact found in the directory.
    pub fn upsert_found(&mut self, name: &str, sign: [u8; 32], dh: [u8; 32]) -> usize {
        let i = self.ensure(name, name);
        let c = &mut self.contacts[i];
        let (sign, dh) = (hex::encode(sign), hex::encode(dh));
        if c.sign.as_deref() != Some(&sign) || c.dh.as_deref() != Some(&dh) {
            // New keys: whatever was verified before no longer holds.
            c.verified = false;
        }
        c.sign = Some(sign);
        c.dh = Some(dh);
        i
    }

    /// Append a bubble to a conversation.
    pub fn push(&mut self, address: &str, bubble: Bubble) {
        let list = self.conversations.entry(address.to_string()).or_default();
        list.push(bubble);
        if list.len() > MAX_BUBBLES {
            let extra = list.len() - MAX_BUBBLES;
            list.drain(..extra);
        }
    }

    /// The outgoing bubble with this outbox id, anywhere.
    pub fn by_outbox_id(&mut self, id: u64) -> Option<&mut Bubble> {
        self.conversations
            .values_mut()
            .flat_map(|l| l.iter_mut())
            .find(|b| b.outbox_id == Some(id))
    }

    /// The outgoing bubble with this local id, anywhere.
    pub fn by_local_id(&mut self, local: u64) -> Option<&mut Bubble> {
        self.conversations
            .values_mut()
            .flat_map(|l| l.iter_mut())
            .find(|b| b.outbox_id.is_none() && b.local_id == local)
    }

    /// Rebuild conversations from the stored history (oldest first); peers in history
    /// that are not contacts yet become contacts.
    pub fn load_history(&mut self, entries: Vec<(u64, HistoryEntry)>) {
        for (id, e) in entries {
            let name = match (e.peer.strip_prefix("key:"), e.peer.strip_prefix("#room/")) {
                (Some(k), _) => format!("key {}", k.chars().take(8).collect::<String>()),
                (_, Some(room)) => format!("# {room}"),
                _ => e.peer.clone(),
            };
            self.ensure(&name, &e.peer);
            let outgoing = e.direction == Direction::Sent;
            let delivery = if outgoing {
                Delivery::from_engine(&EngineDelivery::from_stored(&e.state, e.round))
            } else {
                Delivery::Received(e.round)
            };
            self.push(
                &e.peer,
                Bubble {
                    outgoing,
                    text: e.text,
                    timestamp_ms: e.timestamp_ms,
                    delivery,
                    fragments: 1,
                    outbox_id: outgoing.then_some(id),
                    local_id: 0,
                },
            );
        }
    }
}

/// Which servers are up, the latest round, and whether outputs can be confirmed.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    /// Per server: connected.
    pub up: Vec<bool>,
    /// Tolerated faults (f); outputs need f+1 matching vouches.
    pub f: usize,
    /// Last accepted round.
    pub round: Option<u64>,
    /// Participants in that round (the anonymity set).
    pub participants: u32,
    /// Leader as last reported.
    pub leader: Option<u16>,
}

impl ClusterView {
    /// A view of `n` servers, all down until they connect.
    pub fn new(n: usize, f: usize) -> Self {
        Self {
            up: vec![false; n],
            f,
            ..Self::default()
        }
    }

    /// Servers connected now.
    pub fn reachable(&self) -> usize {
        self.up.iter().filter(|u| **u).count()
    }

    /// Fewer than f+1 servers reachable: no output can gather enough vouches.
    pub fn cannot_confirm(&self) -> bool {
        self.reachable() < self.f + 1
    }
}

/// `HH:MM` in UTC for a bubble (the engine's clocks are UTC milliseconds).
pub fn clock(ms: u64) -> String {
    let secs = ms / 1000;
    format!("{:02}:{:02}", (secs / 3600) % 24, (secs / 60) % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_states_map_to_labels() {
        use client::delivery::{FailReason, RetryReason};
        assert_eq!(
            Delivery::from_engine(&EngineDelivery::Queued).label(),
            "queued"
        );
        assert_eq!(
            Delivery::from_engine(&EngineDelivery::InRound(7)).label(),
            "in round 7"
        );
        assert_eq!(
            Delivery::from_engine(&EngineDelivery::Sent(9)).label(),
            "sent · round 9"
        );
        assert_eq!(
            Delivery::from_engine(&EngineDelivery::Failed {
                round: 9,
                reason: FailReason::Recorded("collision 8 times".into())
            })
            .label(),
            "failed: collision 8 times"
        );
        assert_eq!(
            Delivery::from_engine(&EngineDelivery::Retrying {
                round: 9,
                reason: RetryReason::Collision
            })
            .label(),
            "retrying: collision: another sender used the same slot"
        );
        assert_eq!(
            Delivery::from_engine(&EngineDelivery::from_stored(
                "failed: no user named \"x\"",
                0
            )),
            Delivery::Failed("no user named \"x\"".into())
        );
    }

    #[test]
    fn new_keys_clear_verification() {
        let mut b = Book::default();
        let i = b.upsert_found("bob", [1; 32], [2; 32]);
        b.contacts[i].verified = true;
        assert_eq!(b.upsert_found("bob", [1; 32], [2; 32]), i);
        assert!(b.contacts[i].verified);
        b.upsert_found("bob", [3; 32], [2; 32]);
        assert!(!b.contacts[i].verified);
    }

    #[test]
    fn contacts_round_trip_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut b = Book::load(dir.path()).expect("empty");
        let bob = b.upsert_found("bob", [1; 32], [2; 32]);
        b.contacts[bob].unread = 3;
        b.save().expect("save");
        let again = Book::load(dir.path()).expect("load");
        assert_eq!(again.contacts, b.contacts);
        std::fs::write(dir.path().join("contacts.json"), b"{not json").expect("write");
        let err = Book::load(dir.path()).err().expect("refused");
        assert!(err.contains("contacts.json"), "{err}");
    }

    #[test]
    fn stored_history_becomes_conversations_after_a_restart() {
        let entry = |direction, peer: &str, text: &str, round, state: &str| HistoryEntry {
            direction,
            peer: peer.into(),
            text: text.into(),
            timestamp_ms: 1_000 * round,
            round,
            state: state.into(),
        };
        let mut b = Book::default();
        b.load_history(vec![
            (1, entry(Direction::Sent, "bob", "hi bob", 3, "sent")),
            (2, entry(Direction::Received, "bob", "hi alice", 4, "")),
            (
                3,
                entry(
                    Direction::Sent,
                    "key:00aa11bb22",
                    "to a key",
                    0,
                    "failed: gave up",
                ),
            ),
            (4, entry(Direction::Sent, "bob", "later", 0, "queued")),
        ]);
        assert_eq!(b.contacts.len(), 2);
        let bob = &b.conversations["bob"];
        assert_eq!(bob.len(), 3);
        assert_eq!(bob[0].delivery, Delivery::Sent(3));
        assert_eq!(bob[0].outbox_id, Some(1));
        assert_eq!(bob[1].delivery, Delivery::Received(4));
        assert!(!bob[1].outgoing);
        assert_eq!(bob[2].delivery, Delivery::Queued);
        // The engine re-announces queued messages by outbox id after a restart.
        b.by_outbox_id(4).expect("found by id").delivery = Delivery::Sent(9);
        assert_eq!(b.conversations["bob"][2].delivery, Delivery::Sent(9));
        let anon = &b.contacts[b.find("key:00aa11bb22").expect("contact")];
        assert_eq!(anon.name, "key 00aa11bb");
        assert_eq!(
            b.conversations["key:00aa11bb22"][0].delivery,
            Delivery::Failed("gave up".into())
        );
    }

    #[test]
    fn the_board_is_pinned_first_and_never_saved_as_a_contact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut b = Book::load(dir.path()).expect("empty");
        assert_eq!(b.contacts.len(), 1);
        assert!(b.contacts[0].is_board());
        b.upsert_found("bob", [1; 32], [2; 32]);
        b.save().expect("save");
        let saved = std::fs::read_to_string(dir.path().join("contacts.json")).expect("read");
        assert!(!saved.contains(BOARD), "{saved}");
        let again = Book::load(dir.path()).expect("load");
        assert_eq!(again.contacts.len(), 2);
        assert!(again.contacts[0].is_board());
        assert_eq!(again.contacts[1].name, "bob");
        // Board posts in the history land under the pinned entry.
        let mut b = again;
        b.load_history(vec![(
            1,
            HistoryEntry {
                direction: Direction::Received,
                peer: BOARD.into(),
                text: "hello all".into(),
                timestamp_ms: 1,
                round: 4,
                state: String::new(),
            },
        )]);
        assert_eq!(b.contacts.len(), 2);
        assert_eq!(b.conversations[BOARD][0].text, "hello all");
    }

    #[test]
    fn fewer_than_f_plus_one_servers_cannot_confirm() {
        let mut v = ClusterView::new(3, 1);
        assert!(v.cannot_confirm());
        v.up[0] = true;
        assert!(v.cannot_confirm());
        v.up[2] = true;
        assert!(!v.cannot_confirm());
    }
}
