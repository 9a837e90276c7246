//! Retained round outputs, on disk: what clients that were away catch up from.
//!
//! The replicated state keeps only the last few outputs in memory
//! ([`protocol::round::RECENT_OUTPUTS`]); every output (and void output) this node applies
//! is also written here, in the node's redb file, and rounds older than the newest minus
//! `retention_rounds` are deleted in the same transaction. So a server's memory does not
//! grow with retention or traffic, its disk is bounded by retention × the largest output,
//! and history pages are read from disk one page at a time.
//!
//! ```text
//!  StateMachine::apply ─Output/Void effects─► OutputArchive::keep (one redb commit per batch)
//!  Broadcaster (history request) ─► OutputArchive::page(from, MAX_HISTORY_OUTPUTS)
//! ```
//! A node that installs a snapshot has no outputs for the rounds the snapshot skipped; it
//! serves the rest, and clients take those rounds from the f+1 servers that have them.

use std::sync::Arc;

use protocol::wire::{Round, RoundOutput};
use redb::{Database, Durability, ReadableTable, TableDefinition};

/// Round → encoded [`RoundOutput`].
pub const OUTPUTS: TableDefinition<u64, &[u8]> = TableDefinition::new("outputs");

fn io_err<E: std::error::Error + 'static>(e: E) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// The retained outputs of one node.
#[derive(Clone)]
pub struct OutputArchive {
    db: Arc<Database>,
    retention: u64,
}

/// A page of retained outputs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// Outputs from the asked-for round on, in round order.
    pub outputs: Vec<RoundOutput>,
    /// The oldest round retained at all.
    pub oldest_kept: Option<Round>,
    /// The newest round retained.
    pub newest: Option<Round>,
}

impl OutputArchive {
    /// The archive in `db` (its table is created by [`crate::store::open_db`]), keeping
    /// `retention` rounds.
    pub fn new(db: Arc<Database>, retention: u64) -> Self {
        Self {
            db,
            retention: retention.max(1),
        }
    }

    /// Rounds retained.
    pub fn retention(&self) -> u64 {
        self.retention
    }

    /// Write `outputs` and drop rounds beyond retention, in one durable commit: once a
    /// snapshot covers an output, the output is on disk.
    pub fn keep(&self, outputs: &[&RoundOutput]) -> std::io::Result<()> {
        if outputs.is_empty() {
            return Ok(());
        }
        let mut w = self.db.begin_write().map_err(io_err)?;
        w.set_durability(Durability::Immediate);
        {
            let mut t = w.open_table(OUTPUTS).map_err(io_err)?;
            for o in outputs {
                let bytes = protocol::encode(o).map_err(io_err)?;
                t.insert(o.round, bytes.as_slice()).map_err(io_err)?;
            }
            let newest = t.last().map_err(io_err)?.map(|(k, _)| k.value());
            if let Some(newest) = newest {
                let keep_from = newest.saturating_sub(self.retention - 1);
                t.retain_in(..keep_from, |_, _| false).map_err(io_err)?;
            }
        }
        w.commit().map_err(io_err)
    }

    /// At most `limit` outputs from round `from` on. An entry that does not decode (a
    /// damaged file) is skipped, not served.
    pub fn page(&self, from: Round, limit: usize) -> std::io::Result<Page> {
        let r = self.db.begin_read().map_err(io_err)?;
        let t = r.open_table(OUTPUTS).map_err(io_err)?;
        let oldest_kept = t.first().map_err(io_err)?.map(|(k, _)| k.value());
        let newest = t.last().map_err(io_err)?.map(|(k, _)| k.value());
        let mut outputs = Vec::new();
        for entry in t.range(from..).map_err(io_err)? {
            if outputs.len() >= limit {
                break;
            }
            let (_, v) = entry.map_err(io_err)?;
            if let Ok(o) = protocol::decode::<RoundOutput>(v.value()) {
                outputs.push(o);
            }
        }
        Ok(Page {
            outputs,
            oldest_kept,
            newest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(retention: u64) -> (tempfile::TempDir, OutputArchive) {
        let dir = tempfile::tempdir().expect("dir");
        let db = crate::store::open_db(&dir.path().join("raft.redb")).expect("db");
        (dir, OutputArchive::new(db, retention))
    }

    #[test]
    fn keeps_retention_rounds_and_serves_them_in_pages() {
        let (_dir, a) = archive(100);
        for r in 1..=250u64 {
            a.keep(&[&RoundOutput::empty(r, 3)]).expect("keep");
        }
        let all = a.page(0, usize::MAX).expect("page");
        assert_eq!(all.oldest_kept, Some(151));
        let rounds: Vec<Round> = all.outputs.iter().map(|o| o.round).collect();
        assert_eq!(rounds, (151..=250).collect::<Vec<_>>());
        let page = a.page(200, 16).expect("page");
        assert_eq!(page.outputs.len(), 16);
        assert_eq!(page.outputs[0].round, 200);
        assert_eq!(a.page(251, 16).expect("page").outputs, Vec::new());
    }

    #[test]
    fn a_replayed_output_is_written_once_and_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("raft.redb");
        {
            let a = OutputArchive::new(crate::store::open_db(&path).expect("db"), 10);
            let void = RoundOutput::void(7, 1);
            a.keep(&[&RoundOutput::empty(6, 3), &void]).expect("keep");
            a.keep(&[&void]).expect("replay");
        }
        let a = OutputArchive::new(crate::store::open_db(&path).expect("db"), 10);
        let page = a.page(0, 16).expect("page");
        assert_eq!(page.outputs.len(), 2);
        assert!(page.outputs[1].void);
    }
}
