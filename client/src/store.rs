//! The client's local store (redb, one file per identity): message history, the outbox
//! (so a queued message survives a restart), what was already delivered (so catch-up
//! never delivers twice) and the last round seen.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
const DELIVERED: TableDefinition<&[u8], u64> = TableDefinition::new("delivered");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

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
    /// Open or create `dir/history.redb`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("history.redb");
        let p = path.display().to_string();
        let e = |m: String| StoreError {
            path: p.clone(),
            message: m,
        };
        std::fs::create_dir_all(dir).map_err(|x| e(x.to_string()))?;
        let db = Database::create(&path).map_err(|x| e(x.to_string()))?;
        let w = db.begin_write().map_err(|x| e(x.to_string()))?;
        {
            w.open_table(HISTORY).map_err(|x| e(x.to_string()))?;
            w.open_table(OUTBOX).map_err(|x| e(x.to_string()))?;
            w.open_table(DELIVERED).map_err(|x| e(x.to_string()))?;
            w.open_table(META).map_err(|x| e(x.to_string()))?;
        }
        w.commit().map_err(|x| e(x.to_string()))?;
        Ok(Self {
            db: Arc::new(db),
            path: p,
        })
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
                e.round = round;
                e.state = state.to_string();
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
