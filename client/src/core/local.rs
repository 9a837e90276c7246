//! The core's view of the local store: a small synchronous trait.
//!
//! The core needs answers from the store in the middle of a decision (the id of a new
//! history entry becomes the outbox id; "was this message delivered before?" decides
//! whether it is shown), so it takes the store as a trait instead of emitting store
//! commands. The engine shell passes the redb [`crate::store::Store`]; unit tests pass
//! [`MemStore`].

use std::collections::{BTreeMap, BTreeSet};

use protocol::wire::Register;

use crate::store::{HistoryEntry, OutboxRecord, SavedRooms, Store, StoreError};

/// What the core reads and writes locally. Errors are reported, never fatal.
pub trait LocalStore: super::local_files::FileStore {
    /// Append a history entry; returns its id (also the outbox id).
    fn add_history(&mut self, entry: &HistoryEntry) -> Result<u64, StoreError>;
    /// Record a sent message's final round and state text.
    fn update_history(&mut self, id: u64, round: u64, state: &str) -> Result<(), StoreError>;
    /// Queue an outgoing message under its history id.
    fn put_outbox(&mut self, id: u64, rec: &OutboxRecord) -> Result<(), StoreError>;
    /// Drop a message from the outbox (sent or failed).
    fn remove_outbox(&mut self, id: u64) -> Result<(), StoreError>;
    /// The outbox, oldest first.
    fn outbox(&self) -> Result<Vec<(u64, OutboxRecord)>, StoreError>;
    /// Record a delivered message key; false if it was delivered before.
    fn mark_delivered(&mut self, key: &[u8], round: u64) -> Result<bool, StoreError>;
    /// Queue an outgoing message: history entry and outbox record in one transaction.
    fn queue_outgoing(
        &mut self,
        entry: &HistoryEntry,
        rec: &OutboxRecord,
    ) -> Result<u64, StoreError>;
    /// Mark a received message delivered and append its history entry in one
    /// transaction; `None` if it was delivered before.
    fn deliver(
        &mut self,
        key: &[u8],
        round: u64,
        entry: &HistoryEntry,
    ) -> Result<Option<u64>, StoreError>;
    /// Change the peer shown on a history entry.
    fn set_history_peer(&mut self, id: u64, peer: &str) -> Result<(), StoreError>;
    /// Remember a one-time reply key's secret.
    fn add_reply_key(&mut self, secret: &[u8; 32]) -> Result<(), StoreError>;
    /// The remembered one-time reply keys' secrets, oldest first.
    fn reply_keys(&self) -> Result<Vec<[u8; 32]>, StoreError>;
    /// Store directory entries from position `from` on (replacing any held there).
    fn append_directory(&mut self, from: u64, entries: &[Register]) -> Result<(), StoreError>;
    /// The directory entries held, in position order.
    fn directory(&self) -> Result<Vec<Register>, StoreError>;
    /// The last round processed.
    fn last_round(&self) -> Result<Option<u64>, StoreError>;
    /// Remember the last round processed.
    fn set_last_round(&mut self, round: u64) -> Result<(), StoreError>;
    /// The saved rooms record and MLS state.
    fn rooms(&self) -> Result<SavedRooms, StoreError>;
    /// Save both in one write.
    fn save_rooms(&mut self, book: &[u8], mls: &[u8]) -> Result<(), StoreError>;
}

impl LocalStore for Store {
    fn add_history(&mut self, entry: &HistoryEntry) -> Result<u64, StoreError> {
        Store::add_history(self, entry)
    }
    fn update_history(&mut self, id: u64, round: u64, state: &str) -> Result<(), StoreError> {
        Store::update_history(self, id, round, state)
    }
    fn put_outbox(&mut self, id: u64, rec: &OutboxRecord) -> Result<(), StoreError> {
        Store::put_outbox(self, id, rec)
    }
    fn remove_outbox(&mut self, id: u64) -> Result<(), StoreError> {
        Store::remove_outbox(self, id)
    }
    fn outbox(&self) -> Result<Vec<(u64, OutboxRecord)>, StoreError> {
        Store::outbox(self)
    }
    fn mark_delivered(&mut self, key: &[u8], round: u64) -> Result<bool, StoreError> {
        Store::mark_delivered(self, key, round)
    }
    fn queue_outgoing(
        &mut self,
        entry: &HistoryEntry,
        rec: &OutboxRecord,
    ) -> Result<u64, StoreError> {
        Store::queue_outgoing(self, entry, rec)
    }
    fn deliver(
        &mut self,
        key: &[u8],
        round: u64,
        entry: &HistoryEntry,
    ) -> Result<Option<u64>, StoreError> {
        Store::deliver(self, key, round, entry)
    }
    fn set_history_peer(&mut self, id: u64, peer: &str) -> Result<(), StoreError> {
        Store::set_history_peer(self, id, peer)
    }
    fn add_reply_key(&mut self, secret: &[u8; 32]) -> Result<(), StoreError> {
        Store::add_reply_key(self, secret)
    }
    fn reply_keys(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        Store::reply_keys(self)
    }
    fn append_directory(&mut self, from: u64, entries: &[Register]) -> Result<(), StoreError> {
        Store::append_directory(self, from, entries)
    }
    fn directory(&self) -> Result<Vec<Register>, StoreError> {
        Store::directory(self)
    }
    fn last_round(&self) -> Result<Option<u64>, StoreError> {
        Store::last_round(self)
    }
    fn set_last_round(&mut self, round: u64) -> Result<(), StoreError> {
        Store::set_last_round(self, round)
    }
    fn rooms(&self) -> Result<SavedRooms, StoreError> {
        Store::rooms(self)
    }
    fn save_rooms(&mut self, book: &[u8], mls: &[u8]) -> Result<(), StoreError> {
        Store::save_rooms(self, book, mls)
    }
}

/// An in-memory store with the same rules, for deterministic tests.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    /// History by id.
    pub history: BTreeMap<u64, HistoryEntry>,
    /// Outbox by id.
    pub outbox: BTreeMap<u64, OutboxRecord>,
    /// Delivered message keys.
    pub delivered: BTreeSet<Vec<u8>>,
    /// Last round processed.
    pub last_round: Option<u64>,
    /// One-time reply keys' secrets.
    pub reply_keys: Vec<[u8; 32]>,
    /// The directory copy.
    pub directory: Vec<Register>,
    /// Write transactions so far (each would be a disk sync in the real store).
    pub writes: usize,
    /// The rooms record and MLS state.
    pub rooms: SavedRooms,
    /// Files.
    pub files: super::local_files::FileMem,
    next_id: u64,
}

impl LocalStore for MemStore {
    fn add_history(&mut self, entry: &HistoryEntry) -> Result<u64, StoreError> {
        self.writes += 1;
        self.next_id += 1;
        self.history.insert(self.next_id, entry.clone());
        Ok(self.next_id)
    }
    fn update_history(&mut self, id: u64, round: u64, state: &str) -> Result<(), StoreError> {
        self.writes += 1;
        if let Some(e) = self.history.get_mut(&id) {
            e.round = round;
            e.state = state.to_string();
        }
        Ok(())
    }
    fn put_outbox(&mut self, id: u64, rec: &OutboxRecord) -> Result<(), StoreError> {
        self.writes += 1;
        self.outbox.insert(id, rec.clone());
        Ok(())
    }
    fn remove_outbox(&mut self, id: u64) -> Result<(), StoreError> {
        self.writes += 1;
        self.outbox.remove(&id);
        Ok(())
    }
    fn outbox(&self) -> Result<Vec<(u64, OutboxRecord)>, StoreError> {
        Ok(self.outbox.iter().map(|(k, v)| (*k, v.clone())).collect())
    }
    fn mark_delivered(&mut self, key: &[u8], _round: u64) -> Result<bool, StoreError> {
        self.writes += 1;
        Ok(self.delivered.insert(key.to_vec()))
    }
    fn queue_outgoing(
        &mut self,
        entry: &HistoryEntry,
        rec: &OutboxRecord,
    ) -> Result<u64, StoreError> {
        let id = self.add_history(entry)?;
        self.outbox.insert(id, rec.clone());
        Ok(id)
    }
    fn deliver(
        &mut self,
        key: &[u8],
        _round: u64,
        entry: &HistoryEntry,
    ) -> Result<Option<u64>, StoreError> {
        if !self.delivered.insert(key.to_vec()) {
            return Ok(None);
        }
        self.add_history(entry).map(Some)
    }
    fn set_history_peer(&mut self, id: u64, peer: &str) -> Result<(), StoreError> {
        self.writes += 1;
        if let Some(e) = self.history.get_mut(&id) {
            e.peer = peer.to_string();
        }
        Ok(())
    }
    fn add_reply_key(&mut self, secret: &[u8; 32]) -> Result<(), StoreError> {
        self.writes += 1;
        self.reply_keys.push(*secret);
        if self.reply_keys.len() > crate::store::MAX_REPLY_KEYS {
            self.reply_keys.remove(0);
        }
        Ok(())
    }
    fn reply_keys(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        Ok(self.reply_keys.clone())
    }
    fn append_directory(&mut self, from: u64, entries: &[Register]) -> Result<(), StoreError> {
        self.writes += 1;
        self.directory
            .truncate(usize::try_from(from).unwrap_or(usize::MAX));
        self.directory.extend_from_slice(entries);
        Ok(())
    }
    fn directory(&self) -> Result<Vec<Register>, StoreError> {
        Ok(self.directory.clone())
    }
    fn last_round(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.last_round)
    }
    fn set_last_round(&mut self, round: u64) -> Result<(), StoreError> {
        self.writes += 1;
        self.last_round = Some(round);
        Ok(())
    }
    fn rooms(&self) -> Result<SavedRooms, StoreError> {
        Ok(self.rooms.clone())
    }
    fn save_rooms(&mut self, book: &[u8], mls: &[u8]) -> Result<(), StoreError> {
        self.writes += 1;
        self.rooms = (Some(book.to_vec()), Some(mls.to_vec()));
        Ok(())
    }
}
