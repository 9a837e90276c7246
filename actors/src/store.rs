//! Durable Raft storage on redb: the log (with vote, committed id and purge point) and
//! the state machine's snapshots.
//!
//! ```text
//!  openraft core ──append/truncate/purge/vote──► LogStore ──► redb (Durability::Immediate)
//!  openraft sm worker ──apply──► StateMachine (RoundMachine in memory) ──effects──► consensus actor
//!                      │                        └─outputs──► redb "outputs" (crate::archive)
//!                      └─build/install snapshot──► redb "snapshot" table
//! ```
//! The state machine lives in memory and is rebuilt at start-up from the last snapshot
//! plus the committed log (openraft re-applies `(last_applied, committed]` because we
//! persist the committed id). `LogFlushed` is signalled only after the redb commit, i.e.
//! after the fsync.

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, RwLock};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use protocol::{Effect, Params, RoundMachine, State};
use redb::{Database, Durability, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::types::{Applied, NodeId, ServerNode, TypeConfig};

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");

type SErr = StorageError<NodeId>;

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Encoding into a Vec has no limit and cannot fail for our types.
    let _ = protocol::codec::encode_into(v, &mut out);
    out
}

fn dec<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, std::io::Error> {
    protocol::codec::decode_large(b)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn io_err<E: std::error::Error + 'static>(e: E) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Open (or create) the node's redb file with all tables present.
pub fn open_db(path: &std::path::Path) -> Result<Arc<Database>, std::io::Error> {
    let db = Database::create(path).map_err(io_err)?;
    let w = db.begin_write().map_err(io_err)?;
    {
        w.open_table(LOGS).map_err(io_err)?;
        w.open_table(META).map_err(io_err)?;
        w.open_table(SNAPSHOT).map_err(io_err)?;
        w.open_table(crate::archive::OUTPUTS).map_err(io_err)?;
    }
    w.commit().map_err(io_err)?;
    Ok(Arc::new(db))
}

/// The Raft log on redb.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    /// A log store over `db`.
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, std::io::Error> {
        let r = self.db.begin_read().map_err(io_err)?;
        let t = r.open_table(META).map_err(io_err)?;
        match t.get(key).map_err(io_err)? {
            Some(v) => Ok(Some(dec(v.value())?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: Serialize>(&self, key: &str, v: &T) -> Result<(), std::io::Error> {
        self.put_meta_with(key, v, Durability::Immediate)
    }

    fn put_meta_with<T: Serialize>(
        &self,
        key: &str,
        v: &T,
        durability: Durability,
    ) -> Result<(), std::io::Error> {
        let mut w = self.db.begin_write().map_err(io_err)?;
        w.set_durability(durability);
        {
            let mut t = w.open_table(META).map_err(io_err)?;
            t.insert(key, enc(v).as_slice()).map_err(io_err)?;
        }
        w.commit().map_err(io_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        let read = || -> Result<Vec<Entry<TypeConfig>>, std::io::Error> {
            let r = self.db.begin_read().map_err(io_err)?;
            let t = r.open_table(LOGS).map_err(io_err)?;
            let bounds: (Bound<u64>, Bound<u64>) =
                (range.start_bound().cloned(), range.end_bound().cloned());
            let mut out = Vec::new();
            for item in t.range(bounds).map_err(io_err)? {
                let (_, v) = item.map_err(io_err)?;
                let entry: Entry<TypeConfig> = dec(v.value())?;
                out.push(entry);
            }
            Ok(out)
        };
        read().map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let last_purged: Option<LogId<NodeId>> = self
            .get_meta("last_purged")
            .map_err(|e| StorageIOError::read_logs(&e))?;
        let last = (|| -> Result<Option<LogId<NodeId>>, std::io::Error> {
            let r = self.db.begin_read().map_err(io_err)?;
            let t = r.open_table(LOGS).map_err(io_err)?;
            let last = match t.last().map_err(io_err)? {
                Some((_, v)) => Some(dec::<Entry<TypeConfig>>(v.value())?.log_id),
                None => None,
            };
            Ok(last)
        })()
        .map_err(|e| StorageIOError::read_logs(&e))?;
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SErr> {
        self.put_meta("vote", vote)
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SErr> {
        self.get_meta("vote")
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SErr> {
        // The committed id is a hint for re-applying the log at start-up; a stale value is
        // safe (the leader re-establishes commitment), so it rides on the next durable
        // commit instead of costing an fsync of its own.
        self.put_meta_with("committed", &committed, Durability::None)
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SErr> {
        Ok(self
            .get_meta::<Option<LogId<NodeId>>>("committed")
            .map_err(|e| StorageIOError::read(&e))?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write = || -> Result<(), std::io::Error> {
            let mut w = self.db.begin_write().map_err(io_err)?;
            w.set_durability(Durability::Immediate);
            {
                let mut t = w.open_table(LOGS).map_err(io_err)?;
                for e in entries {
                    t.insert(e.log_id.index, enc(&e).as_slice())
                        .map_err(io_err)?;
                }
            }
            // commit() with Durability::Immediate returns after the fsync.
            w.commit().map_err(io_err)
        };
        match write() {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => Err(StorageIOError::write_logs(&e).into()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        self.remove_range(log_id.index..)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        self.put_meta("last_purged", &log_id)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.remove_range(..=log_id.index)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

impl LogStore {
    fn remove_range<R: RangeBounds<u64>>(&self, range: R) -> Result<(), std::io::Error> {
        let mut w = self.db.begin_write().map_err(io_err)?;
        w.set_durability(Durability::Immediate);
        {
            let mut t = w.open_table(LOGS).map_err(io_err)?;
            let bounds: (Bound<u64>, Bound<u64>) =
                (range.start_bound().cloned(), range.end_bound().cloned());
            let keys: Vec<u64> = t
                .range(bounds)
                .map_err(io_err)?
                .map(|item| item.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(io_err)?;
            for k in keys {
                t.remove(k).map_err(io_err)?;
            }
        }
        w.commit().map_err(io_err)
    }
}

/// One applied command, handed to the consensus actor for the share-keeper and
/// broadcaster.
#[derive(Debug, Clone)]
pub struct AppliedEntry {
    /// Log index.
    pub index: u64,
    /// The command.
    pub command: protocol::Command,
    /// What it did.
    pub effect: Effect,
}

/// What a snapshot holds.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    state: State,
}

/// The in-memory state machine, readable by the rest of the node.
pub struct SmData {
    /// The round machine.
    pub machine: RoundMachine,
    /// Last applied log id.
    pub last_applied: Option<LogId<NodeId>>,
    /// Last membership.
    pub membership: StoredMembership<NodeId, ServerNode>,
}

/// Shared read access to the state machine.
pub type SharedSm = Arc<RwLock<SmData>>;

/// The state machine.
pub struct StateMachine {
    db: Arc<Database>,
    data: SharedSm,
    archive: crate::archive::OutputArchive,
    params: Params,
    applied_tx: Option<mpsc::Sender<AppliedEntry>>,
    snapshot_seq: u64,
}

impl StateMachine {
    /// Load the last snapshot (if any) from `db`.
    pub fn open(
        db: Arc<Database>,
        params: Params,
        applied_tx: Option<mpsc::Sender<AppliedEntry>>,
    ) -> Result<Self, std::io::Error> {
        let mut machine = RoundMachine::new(params.clone());
        let mut last_applied = None;
        let mut membership = StoredMembership::default();
        if let Some((meta, bytes)) = read_snapshot(&db)? {
            let body: SnapshotBody = dec(&bytes)?;
            machine = RoundMachine::from_state(params.clone(), body.state);
            last_applied = meta.last_log_id;
            membership = meta.last_membership;
        }
        Ok(Self {
            archive: crate::archive::OutputArchive::new(db.clone(), params.retention_rounds),
            db,
            data: Arc::new(RwLock::new(SmData {
                machine,
                last_applied,
                membership,
            })),
            params,
            applied_tx,
            snapshot_seq: 0,
        })
    }

    /// A handle for readers.
    pub fn shared(&self) -> SharedSm {
        self.data.clone()
    }

    /// The retained outputs on disk.
    pub fn archive(&self) -> crate::archive::OutputArchive {
        self.archive.clone()
    }
}

/// A stored snapshot: its meta and its bytes.
type StoredSnapshot = (SnapshotMeta<NodeId, ServerNode>, Vec<u8>);

fn read_snapshot(db: &Database) -> Result<Option<StoredSnapshot>, std::io::Error> {
    let r = db.begin_read().map_err(io_err)?;
    let t = r.open_table(SNAPSHOT).map_err(io_err)?;
    let meta = match t.get("meta").map_err(io_err)? {
        Some(v) => dec(v.value())?,
        None => return Ok(None),
    };
    let data = match t.get("data").map_err(io_err)? {
        Some(v) => v.value().to_vec(),
        None => return Ok(None),
    };
    Ok(Some((meta, data)))
}

fn write_snapshot(
    db: &Database,
    meta: &SnapshotMeta<NodeId, ServerNode>,
    data: &[u8],
) -> Result<(), std::io::Error> {
    let mut w = db.begin_write().map_err(io_err)?;
    w.set_durability(Durability::Immediate);
    {
        let mut t = w.open_table(SNAPSHOT).map_err(io_err)?;
        t.insert("meta", enc(meta).as_slice()).map_err(io_err)?;
        t.insert("data", data).map_err(io_err)?;
    }
    w.commit().map_err(io_err)
}

/// Builds snapshots from a consistent copy of the state.
pub struct SnapshotBuilder {
    db: Arc<Database>,
    data: SharedSm,
    seq: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let (bytes, last_applied, membership) = {
            let d = self.data.read().unwrap_or_else(|p| p.into_inner());
            let body = SnapshotBody {
                state: d.machine.state().clone(),
            };
            (enc(&body), d.last_applied, d.membership.clone())
        };
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, self.seq),
            None => format!("none-{}", self.seq),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        write_snapshot(&self.db, &meta, &bytes)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, ServerNode>), SErr> {
        let d = self.data.read().unwrap_or_else(|p| p.into_inner());
        Ok((d.last_applied, d.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        let mut out = Vec::new();
        {
            let mut d = self.data.write().unwrap_or_else(|p| p.into_inner());
            for entry in entries {
                d.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => replies.push(Applied::Internal),
                    EntryPayload::Membership(m) => {
                        d.membership = StoredMembership::new(Some(entry.log_id), m);
                        replies.push(Applied::Internal);
                    }
                    EntryPayload::Normal(cmd) => {
                        let effect = d.machine.apply(&cmd);
                        replies.push(Applied::from(&effect));
                        out.push(AppliedEntry {
                            index: entry.log_id.index,
                            command: cmd,
                            effect,
                        });
                    }
                }
            }
        }
        // Outputs go to disk before anything is told of them (and before a snapshot can
        // cover them). A failed write costs this server those rounds' history only:
        // clients take them from the others.
        let outputs: Vec<&protocol::wire::RoundOutput> = out
            .iter()
            .filter_map(|a| match &a.effect {
                Effect::Output(o) | Effect::Void { output: o, .. } => Some(o),
                _ => None,
            })
            .collect();
        if let Err(e) = self.archive.keep(&outputs) {
            tracing::warn!(error = %e, "could not archive round outputs");
        }
        if let Some(tx) = &self.applied_tx {
            for a in out {
                // Bounded: if the actors fall behind, applying waits for them.
                let _ = tx.send(a).await;
            }
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        SnapshotBuilder {
            db: self.db.clone(),
            data: self.data.clone(),
            seq: self.snapshot_seq,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, ServerNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let bytes = snapshot.into_inner();
        let body: SnapshotBody =
            dec(&bytes).map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        write_snapshot(&self.db, meta, &bytes)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let mut d = self.data.write().unwrap_or_else(|p| p.into_inner());
        d.machine = RoundMachine::from_state(self.params.clone(), body.state);
        d.last_applied = meta.last_log_id;
        d.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        let snap = read_snapshot(&self.db).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(snap.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::testing::{StoreBuilder, Suite};

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), SErr> {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = open_db(&dir.path().join("raft.redb")).expect("db");
            let params =
                Params::new(3, 1, 1, 256, 1, 4, protocol::Admission::Open).expect("params");
            let sm = StateMachine::open(db.clone(), params, None).expect("sm");
            Ok((dir, LogStore::new(db), sm))
        }
    }

    /// openraft's own storage conformance suite, run against our redb store.
    #[test]
    fn openraft_storage_suite_passes() {
        Suite::test_all(Builder).expect("storage suite");
    }
}
