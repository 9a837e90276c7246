//! The client's local store (redb, one file per identity): message history, the outbox
//! (so a queued message survives a restart), what was already delivered (so catch-up
//! never delivers twice) and the last round seen.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
const DELIVERED: TableDefinition<&[u8], u64> = TableDefinition::new("delivered");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// One-time reply keys (secret bytes) by insertion order, so replies to anonymous
/// messages still open after a restart.
const REPLY_KEYS: TableDefinition<u64, &[u8]> = TableDefinition::new("reply_keys");
/// The local copy of the directory: position → encoded self-signed registration.
const DIRECTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("directory");
/// Rooms: "book" → the rooms (JSON), "mls" → the MLS state (group secrets, key
/// packages waiting for a Welcome). Written together.
const ROOMS: TableDefinition<&str, &[u8]> = TableDefinition::new("rooms");
mod files;
pub use files::{FileEntry, FileState};

/// One-time reply keys kept (the oldest is forgotten).
pub const MAX_REPLY_KEYS: usize = 64;

/// The saved rooms record and MLS state, as stored (either may be absent).
pub type SavedRooms = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Sent or received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// We sent it.
    Sent,
    /// We received it.
    Received,
}

/// One line of history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Sent or received.
    pub direction: Direction,
    /// The other party's name (or its key, hex, when unknown).
    pub peer: String,
    /// Message text.
    pub text: String,
    /// Sender's timestamp.
    pub timestamp_ms: u64,
    /// Round it was delivered in (0 while not yet sent).
    pub round: u64,
    /// Final or current state for sent messages ("sent", "failed: …"), empty for received.
    pub state: String,
}

/// A queued outgoing message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// Recipient name.
    pub to_name: String,
    /// Recipient x25519 key.
    pub to_dh: [u8; 32],
    /// Text.
    pub text: String,
    /// Conversation id.
    pub conversation: [u8; 16],
    /// Sequence number.
    pub seq: u32,
    /// When queued.
    pub timestamp_ms: u64,
    /// Send from a one-time reply key instead of our identity.
    pub anonymous: bool,
    /// That one-time key's secret, so a resend after a restart is the same message from
    /// the same key (the file is 0600, like the identity key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_secret: Option<[u8; 32]>,
    /// A room message: the room it goes to (sealed into room slots, not to `to_dh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<[u8; 16]>,
    /// The bytes sent, when they are not `text` (room messages, room requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Vec<u8>>,
    /// A file: its offer (the content is kept apart, by outbox id) and the key of its
    /// transfer record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<(protocol::file::FileOffer, [u8; 16])>,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[error("local store {path}: {message}")]
pub struct StoreError {
    path: String,
    message: String,
}

/// The store.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: String,
}

impl Store {
    /// Open or create `dir/history.redb`. The folder is made private (0700) and the
    /// file 0600, existing ones included: history, contacts and who one talks to are
    /// nobody else's business on a shared machine.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("history.redb");
        let p = path.display().to_string();
        let e = |m: String| StoreError {
            path: p.clone(),
            message: m,
        };
        private_dir(dir).map_err(|x| e(x.to_string()))?;
        private_file(&path).map_err(|x| e(x.to_string()))?;
        let db = Database::create(&path).map_err(|x| e(x.to_string()))?;
        let w = db.begin_write().map_err(|x| e(x.to_string()))?;
        {
            w.open_table(HISTORY).map_err(|x| e(x.to_string()))?;
            w.open_table(OUTBOX).map_err(|x| e(x.to_string()))?;
            w.open_table(DELIVERED).map_err(|x| e(x.to_string()))?;
            w.open_table(META).map_err(|x| e(x.to_string()))?;
            w.open_table(REPLY_KEYS).map_err(|x| e(x.to_string()))?;
            w.open_table(DIRECTORY).map_err(|x| e(x.to_string()))?;
            w.open_table(ROOMS).map_err(|x| e(x.to_string()))?;
        }
        let store = Self {
            db: Arc::new(db),
            path: p,
        };
        store.open_file_tables(&w)?;
        w.commit().map_err(|x| store.err(x))?;
        Ok(store)
    }

    fn err(&self, m: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.clone(),
            message: m.to_string(),
        }
    }

    fn next_id(&self, w: &redb::WriteTransaction) -> Result<u64, StoreError> {
        let mut meta = w.open_table(META).map_err(|x| self.err(x))?;
        let id = meta
            .get("next_id")
            .map_err(|x| self.err(x))?
            .map(|v| v.value())
            .unwrap_or(1);
        meta.insert("next_id", id + 1).map_err(|x| self.err(x))?;
        Ok(id)
    }

    /// Append a history entry; returns its id.
    pub fn add_history(&self, entry: &HistoryEntry) -> Result<u64, StoreError> {
        let w = self.db.begin_write().map_err(|x| self.err(x))?;
        let id = self.next_id(&w)?;
        {
            let mut t = w.open_table(HISTORY).map_err(|x| self.err(x))?;
            let bytes = serde_json::to_vec(entry).map_err(|x| self.err(x))?;
            t.insert(id, bytes.as_slice()).map_err(|x| self.err(x))?;
        }
        w.commit().map_err(|x| self.err(x))?;
        Ok(id)
    }

    /// Update a history entry's round and state.
    pub fn update_history(&self, id: u64, round: u64, state: &str) -> Result<(), StoreError> {
        self.edit_history(id, |e| {
            e.round = round;
            e.state = state.to_string();
        })
    }

    /// Change one history entry in place (nothing if it does not exist).
    fn edit_history(
        &self,
        id: u64,
        edit: impl FnOnce(&mut HistoryEntry),
    ) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(|x| self.err(x))?;
        {
            let mut t = w.open_table(HISTORY).map_err(|x| self.err(x))?;
            let current = t
                .get(id)
                .map_err(|x| self.err(x))?
                .map(|v| v.value().to_vec());
            if let Some(bytes) = current {
                let mut e: HistoryEntry =
                    serde_json::from_slice(&bytes).map_err(|x| self.err(x))?;
                edit(&mut e);
                let bytes = serde_json::to_vec(&e).map_err(|x| self.err(x))?;
                t.insert(id, bytes.as_slice()).map_err(|x| self.err(x))?;
            }
        }
        w.commit().map_err(|x| self.err(x))
    }

    /// All history, oldest first.
    pub fn history(&self) -> Result<Vec<(u64, HistoryEntry)>, StoreError> {
        let r = self.db.begin_read().map_err(|x| self.err(x))?;
        let t = r.open_table(HISTORY).map_err(|x| self.err(x))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|x| self.err(x))? {
            let (k, v) = item.map_err(|x| self.err(x))?;
            if let Ok(e) = serde_json::from_slice(v.value()) {
                out.push((k.value(), e));
            }
        }
        Ok(out)
    }

    /// Queue an outgoing message under the id of its history entry.
    pub fn put_outbox(&self, id: u64, rec: &OutboxRecord) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(|x| self.err(x))?;
        {
            let mut t = w.open_table(OUTBOX).map_err(|x| self.err(x))?;
            let bytes = serde_json::to_vec(rec).map_err(|x| self.err(x))?;
            t.insert(id, bytes.as_slice()).map_err(|x| self.err(x))?;
        }
        w.commit().map_err(|x| self.err(x))
    }

    /// Remove a message from the outbox (sent or failed).
    pub fn remove_outbox(&self, id: u64) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(|x| self.err(x))?;
        {
            let mut t = w.open_table(OUTBOX).map_err(|x| self.err(x))?;
            t.remove(id).map_err(|x| self.err(x))?;
        }
        w.commit().map_err(|x| self.err(x))
    }

    /// The outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<(u64, OutboxRecord)>, StoreError> {
        let r = self.db.begin_read().map_err(|x| self.err(x))?;
        let t = r.open_table(OUTBOX).map_err(|x| self.err(x))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|x| self.err(x))? {
            let (k, v) = item.map_err(|x| self.err(x))?;
            if let Ok(rec) = serde_json::from_slice(v.value()) {
                out.push((k.value(), rec));
            }
        }
        Ok(out)
    }

    /// Queue an outgoing message: its history entry and its outbox record in one
    /// transaction (a crash leaves both or neither). Returns the id they share.
    pub fn queue_outgoing(
        &self,
        entry: &HistoryEntry,
        rec: &OutboxRecord,
    ) -> Result<u64, StoreError> {
        let w = self.db.begin_write().map_err(|x| self.err(x))?;
        let id = self.next_id(&w)?;
        {
            let mut h = w.open_table(HISTORY).map_err(|x| self.err(x))?;
            let bytes = serde_json::to_vec(entry).map_err(|x| self.err(x))?;
            h.insert(id, bytes.as_slice()).map_err(|x| self.err(x))?;
            let mut o = w.open_table(OUTBOX).map_err(|x| self.err(x))?;
            let bytes = serde_json::to_vec(rec).map_err(|x| self.err(x))?;
            o.insert(id, bytes.as_slice()).map_err(|x| self.err(x))?;
        }
        w.commit().map_err(|x| self.err(x))?;
        Ok(id)
    }

    /// Deliver a received message: mark its key delivered and append its history entry
    /// in one transaction. `None` if it was delivered before (nothing written).
    pub fn deliver(
        &self,
        key: &[u8],
        round: u64,
        entry: &HistoryEntry,
    ) -> Result<Option<u64>, StoreError> {
        let w = self.db.begin_write().map_err(|x| self.err(x))?;
        {
            let d = w.open_table(DELIVERED).map_err(|x| self.err(x))?;
            if d.get(key).map_err(|x| self.err(x))?.is_some() {
                return Ok(None);
            }
        }
        let id = self.next_id(&w)?;
        {
            let mut d = w.open_table(DELIVERED).map_err(|x| self.err(x))?;
            d.insert(key, round).map_err(|x| self.err(x))?;
            let mut h = w.open_table(HISTORY).map_err(|x| self.err(x))?;
            let bytes = serde_json::to_vec(entry).map_err(|x| self.err(x))?;
            h.insert(id, bytes.as_slice()).map_err(|x| self.err(x))?;
        }
        w.commit().map_err(|x| self.err(x))?;
        Ok(Some(id))
    }

    /// Change the peer shown on a history entry (a sender's name learned later).
    pub fn set_history_peer(&self, id: u64, peer: &str) -> Result<(), StoreError> {
        self.edit_history(id, |e| e.peer = peer.to_string())
    }

    /// Record a delivered message key; false if it was already delivered.
    pub fn mark_delivered(&self, key: &[u8], round: u64) -> Result<bool, StoreError> {
        let w = self.db.begin_write().map_err(|x| self.err(x))?;
        let fresh = {
            let mut t = w.open_table(DELIVERED).map_err(|x| self.err(x))?;
            let seen = t.get(key).map_err(|x| self.err(x))?.is_some();
            if !seen {
                t.insert(key, round).map_err(|x| self.err(x))?;
            }
            !seen
        };
        w.commit().map_err(|x| self.err(x))?;
        Ok(fresh)
    }

    /// Remember a one-time reply key's secret (the newest [`MAX_REPLY_KEYS`] are kept).
    pub fn add_reply_key(&self, secret: &[u8; 32]) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(|x| self.err(x))?;
        let id = self.next_id(&w)?;
        {
            let mut t = w.open_table(REPLY_KEYS).map_err(|x| self.err(x))?;
            t.insert(id, secret.as_slice()).map_err(|x| self.err(x))?;
            while t.len().map_err(|x| self.err(x))? > MAX_REPLY_KEYS as u64 {
                t.pop_first().map_err(|x| self.err(x))?;
            }
        }
        w.commit().map_err(|x| self.err(x))
    }

    /// The one-time reply keys' secrets, oldest first.
    pub fn reply_keys(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        let r = self.db.begin_read().map_err(|x| self.err(x))?;
        let t = r.open_table(REPLY_KEYS).map_err(|x| self.err(x))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|x| self.err(x))? {
            let (_, v) = item.map_err(|x| self.err(x))?;
            if let Ok(k) = <[u8; 32]>::try_from(v.value()) {
                out.push(k);
            }
        }
        Ok(out)
    }

    /// Store directory entries at positions `from, from + 1, …` in one transaction
    /// (whatever was held from `from` on is replaced).
    pub fn append_directory(
        &self,
        from: u64,
        entries: &[protocol::wire::Register],
    ) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(|x| self.err(x))?;
        {
            let mut t = w.open_table(DIRECTORY).map_err(|x| self.err(x))?;
            t.retain_in(from.., |_, _| false).map_err(|x| self.err(x))?;
            for (pos, reg) in (from..).zip(entries) {
                let bytes = protocol::encode(reg).map_err(|x| self.err(x))?;
                t.insert(pos, bytes.as_slice()).map_err(|x| self.err(x))?;
            }
        }
        w.commit().map_err(|x| self.err(x))
    }

    /// The directory entries held, in position order, up to the first that is missing
    /// or does not decode.
    pub fn directory(&self) -> Result<Vec<protocol::wire::Register>, StoreError> {
        let r = self.db.begin_read().map_err(|x| self.err(x))?;
        let t = r.open_table(DIRECTORY).map_err(|x| self.err(x))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|x| self.err(x))? {
            let (pos, v) = item.map_err(|x| self.err(x))?;
            match protocol::decode(v.value()) {
                Ok(reg) if pos.value() == out.len() as u64 => out.push(reg),
                _ => break,
            }
        }
        Ok(out)
    }

    /// The saved rooms and MLS state, if any.
    pub fn rooms(&self) -> Result<SavedRooms, StoreError> {
        let r = self.db.begin_read().map_err(|x| self.err(x))?;
        let t = r.open_table(ROOMS).map_err(|x| self.err(x))?;
        let get = |k: &str| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(t.get(k)
                .map_err(|x| self.err(x))?
                .map(|v| v.value().to_vec()))
        };
        Ok((get("book")?, get("mls")?))
    }

    /// Save the rooms and the MLS state in one transaction.
    pub fn save_rooms(&self, book: &[u8], mls: &[u8]) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(|x| self.err(x))?;
        {
            let mut t = w.open_table(ROOMS).map_err(|x| self.err(x))?;
            t.insert("book", book).map_err(|x| self.err(x))?;
            t.insert("mls", mls).map_err(|x| self.err(x))?;
        }
        w.commit().map_err(|x| self.err(x))
    }

    /// The last round whose output we processed.
    pub fn last_round(&self) -> Result<Option<u64>, StoreError> {
        let r = self.db.begin_read().map_err(|x| self.err(x))?;
        let t = r.open_table(META).map_err(|x| self.err(x))?;
        Ok(t.get("last_round")
            .map_err(|x| self.err(x))?
            .map(|v| v.value()))
    }

    /// Remember the last round processed.
    pub fn set_last_round(&self, round: u64) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(|x| self.err(x))?;
        {
            let mut t = w.open_table(META).map_err(|x| self.err(x))?;
            t.insert("last_round", round).map_err(|x| self.err(x))?;
        }
        w.commit().map_err(|x| self.err(x))
    }
}

/// Create `dir` (and parents) if missing and make it private (0700).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    set_mode(dir, 0o700)
}

/// Create `path` if missing, and make it private (0600).
pub fn private_file(path: &Path) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)?;
    set_mode(path, 0o600)
}

/// Write `bytes` to `path` atomically (a temporary file renamed over it), 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut o = std::fs::OpenOptions::new();
    o.create(true).write(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    set_mode(&tmp, 0o600)?;
    std::fs::rename(&tmp, path)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_data_folder_is_0700_and_its_files_0600_even_if_they_existed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("mkdir");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(data.join("history.redb"), b"").expect("touch");
        std::fs::set_permissions(
            data.join("history.redb"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        let store = Store::open(&data).expect("open");
        drop(store);
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("history.redb")), 0o600);
        write_private(&data.join("contacts.json"), b"{}").expect("write");
        assert_eq!(mode(&data.join("contacts.json")), 0o600);
    }

    #[test]
    fn delivery_and_history_are_one_write() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("open");
        let entry = HistoryEntry {
            direction: Direction::Received,
            peer: "bob".into(),
            text: "hi".into(),
            timestamp_ms: 1,
            round: 3,
            state: String::new(),
        };
        let id = store.deliver(b"k", 3, &entry).expect("deliver");
        assert!(id.is_some());
        assert_eq!(store.deliver(b"k", 4, &entry).expect("again"), None);
        assert_eq!(store.history().expect("history").len(), 1);
        store
            .set_history_peer(id.unwrap_or_default(), "bobby")
            .expect("rename");
        assert_eq!(store.history().expect("history")[0].1.peer, "bobby");
    }
}
