//! Files in the local store: each transfer's record, an outgoing file's content until it
//! is sent, an incoming file's chunks until they are all in, and received files written
//! into `files/` beside the store (0600, in the private data directory).

use std::path::{Path, PathBuf};

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{write_private, Store, StoreError};

/// Transfers: 16-byte file key → [`FileEntry`] (JSON).
const FILES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("files");
/// An outgoing file's content, by the outbox id of its message.
const FILE_DATA: TableDefinition<u64, &[u8]> = TableDefinition::new("file_data");
/// An incoming file's chunks as they arrived (still encrypted under the file's key):
/// file key ‖ chunk index (big-endian u16) → bytes.
const FILE_CHUNKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("file_chunks");

/// Where a transfer is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FileState {
    /// Going out, chunk by chunk.
    Sending,
    /// Every chunk is in an output.
    Sent,
    /// Coming in.
    Receiving,
    /// Put together, checked against its hash, and saved at `path`.
    Received {
        /// Where it is.
        path: String,
    },
    /// Given up (the reason in words).
    Failed {
        /// Why.
        reason: String,
    },
    /// Not accepted (the reason in words).
    Refused {
        /// Why.
        reason: String,
    },
}

/// One file transfer, either way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The transfer's id (hex of its 16-byte key).
    pub id: String,
    /// We send it.
    pub outgoing: bool,
    /// The other party (a name, or a key when unknown).
    pub peer: String,
    /// File name.
    pub name: String,
    /// Media type.
    pub mime: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Content bytes per chunk.
    pub chunk_bytes: u32,
    /// Chunks, the offer not counted.
    pub chunks: u32,
    /// Chunks done (sent in an output, or received), as a bitmap in hex.
    pub done: String,
    /// Where it is.
    #[serde(flatten)]
    pub state: FileState,
    /// The outbox id of its message (outgoing).
    pub outbox_id: Option<u64>,
    /// The chunks' key (incoming, until it is put together), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl FileEntry {
    /// Whether chunk `i` is done.
    pub fn is_done(&self, i: usize) -> bool {
        bit(&self.done, i)
    }

    /// Mark chunk `i` done.
    pub fn set_done(&mut self, i: usize) {
        let mut bytes = hex::decode(&self.done).unwrap_or_default();
        let need = (self.chunks as usize).div_ceil(8).max(i / 8 + 1);
        bytes.resize(need, 0);
        bytes[i / 8] |= 1 << (i % 8);
        self.done = hex::encode(bytes);
    }

    /// Chunks done.
    pub fn done_chunks(&self) -> usize {
        hex::decode(&self.done)
            .unwrap_or_default()
            .iter()
            .map(|b| b.count_ones() as usize)
            .sum()
    }

    /// Content bytes in the chunks done.
    pub fn done_bytes(&self) -> u64 {
        let chunk = u64::from(self.chunk_bytes);
        let full = self.done_chunks() as u64 * chunk;
        let last = self.chunks.saturating_sub(1) as usize;
        let short = (u64::from(self.chunks) * chunk).saturating_sub(self.size);
        if self.chunks > 0 && self.is_done(last) {
            full.saturating_sub(short)
        } else {
            full
        }
    }
}

fn bit(done: &str, i: usize) -> bool {
    let at = i / 8;
    done.get(2 * at..2 * at + 2)
        .and_then(|h| u8::from_str_radix(h, 16).ok())
        .is_some_and(|b| b & (1 << (i % 8)) != 0)
}

fn chunk_key(file: &[u8; 16], index: u16) -> [u8; 18] {
    let mut k = [0u8; 18];
    k[..16].copy_from_slice(file);
    k[16..].copy_from_slice(&index.to_be_bytes());
    k
}

impl Store {
    pub(super) fn open_file_tables(&self, w: &redb::WriteTransaction) -> Result<(), StoreError> {
        w.open_table(FILES).map_err(|x| self.err(x))?;
        w.open_table(FILE_DATA).map_err(|x| self.err(x))?;
        w.open_table(FILE_CHUNKS).map_err(|x| self.err(x))?;
        Ok(())
    }

    /// Write a transfer's record.
    pub fn put_file(&self, key: &[u8; 16], entry: &FileEntry) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(|x| self.err(x))?;
        {
            let mut t = w.open_table(FILES).map_err(|x| self.err(x))?;
            let bytes = serde_json::to_vec(entry).map_err(|x| self.err(x))?;
            t.insert(key.as_slice(), bytes.as_slice())
                .map_err(|x| self.err(x))?;
        }
        w.commit().map_err(|x| self.err(x))
    }

    /// A transfer's record.
    pub fn file(&self, key: &[u8; 16]) -> Result<Option<FileEntry>, StoreError> {
        let r = self.db.begin_read().map_err(|x| self.err(x))?;
        let t = r.open_table(FILES).map_err(|x| self.err(x))?;
        let v = t.get(key.as_slice()).map_err(|x| self.err(x))?;
        Ok(v.and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    /// Every transfer's record.
    pub fn files(&self) -> Result<Vec<FileEntry>, StoreError> {
        let r = self.db.begin_read().map_err(|x| self.err(x))?;
        let t = r.open_table(FILES).map_err(|x| self.err(x))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|x| self.err(x))? {
            let (_, v) = item.map_err(|x| self.err(x))?;
            if let Ok(e) = serde_json::from_slice(v.value()) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Keep (or, with `None`, drop) an outgoing file's content.
    pub fn put_file_data(&self, id: u64, data: Option<&[u8]>) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(|x| self.err(x))?;
        {
            let mut t = w.open_table(FILE_DATA).map_err(|x| self.err(x))?;
            match data {
                Some(d) => {
                    t.insert(id, d).map_err(|x| self.err(x))?;
                }
                None => {
                    t.remove(id).map_err(|x| self.err(x))?;
                }
            }
        }
        w.commit().map_err(|x| self.err(x))
    }

    /// An outgoing file's content.
    pub fn file_data(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.db.begin_read().map_err(|x| self.err(x))?;
        let t = r.open_table(FILE_DATA).map_err(|x| self.err(x))?;
        let v = t.get(id).map_err(|x| self.err(x))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// Keep one incoming chunk and the transfer's updated record, in one transaction.
    pub fn put_chunk(
        &self,
        key: &[u8; 16],
        index: u16,
        bytes: &[u8],
        entry: &FileEntry,
    ) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(|x| self.err(x))?;
        {
            let mut c = w.open_table(FILE_CHUNKS).map_err(|x| self.err(x))?;
            c.insert(chunk_key(key, index).as_slice(), bytes)
                .map_err(|x| self.err(x))?;
            let mut t = w.open_table(FILES).map_err(|x| self.err(x))?;
            let rec = serde_json::to_vec(entry).map_err(|x| self.err(x))?;
            t.insert(key.as_slice(), rec.as_slice())
                .map_err(|x| self.err(x))?;
        }
        w.commit().map_err(|x| self.err(x))
    }

    /// An incoming file's chunks, in index order.
    pub fn chunks(&self, key: &[u8; 16]) -> Result<Vec<(u16, Vec<u8>)>, StoreError> {
        let r = self.db.begin_read().map_err(|x| self.err(x))?;
        let t = r.open_table(FILE_CHUNKS).map_err(|x| self.err(x))?;
        let (lo, hi) = (chunk_key(key, 0), chunk_key(key, u16::MAX));
        let mut out = Vec::new();
        for item in t
            .range(lo.as_slice()..=hi.as_slice())
            .map_err(|x| self.err(x))?
        {
            let (k, v) = item.map_err(|x| self.err(x))?;
            let k = k.value();
            let [.., hi, lo] = k else {
                continue;
            };
            if k.len() != 18 {
                continue; // not a key this table writes
            }
            let index = u16::from_be_bytes([*hi, *lo]);
            out.push((index, v.value().to_vec()));
        }
        Ok(out)
    }

    /// Drop an incoming file's chunks.
    pub fn remove_chunks(&self, key: &[u8; 16]) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(|x| self.err(x))?;
        {
            let mut t = w.open_table(FILE_CHUNKS).map_err(|x| self.err(x))?;
            let (lo, hi) = (chunk_key(key, 0), chunk_key(key, u16::MAX));
            t.retain_in(lo.as_slice()..=hi.as_slice(), |_, _| false)
                .map_err(|x| self.err(x))?;
        }
        w.commit().map_err(|x| self.err(x))
    }

    /// Write a received file into `files/` beside the store (0600), under `name` or,
    /// if that is taken, `name (2)`, `name (3)`, …; returns its path.
    pub fn save_received(&self, name: &str, bytes: &[u8]) -> Result<String, StoreError> {
        let dir = Path::new(&self.path)
            .parent()
            .map_or_else(|| PathBuf::from("files"), |d| d.join("files"));
        super::private_dir(&dir).map_err(|x| self.err(format!("{}: {x}", dir.display())))?;
        let path = free_name(&dir, name);
        write_private(&path, bytes).map_err(|x| self.err(format!("{}: {x}", path.display())))?;
        Ok(path.display().to_string())
    }
}

/// `dir/name`, or `dir/stem (k).ext` for the first free `k`.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    (2..)
        .map(|k| dir.join(format!("{stem} ({k}){ext}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bitmap_counts_chunks_and_bytes() {
        let mut e = FileEntry {
            id: String::new(),
            outgoing: true,
            peer: "bob".into(),
            name: "a".into(),
            mime: String::new(),
            size: 25,
            sha256: String::new(),
            chunk_bytes: 10,
            chunks: 3,
            done: String::new(),
            state: FileState::Sending,
            outbox_id: None,
            key: None,
        };
        e.set_done(0);
        assert_eq!((e.done_chunks(), e.done_bytes()), (1, 10));
        e.set_done(2);
        assert!(e.is_done(2) && !e.is_done(1));
        assert_eq!((e.done_chunks(), e.done_bytes()), (2, 15));
    }

    #[test]
    fn chunks_and_files_are_kept_apart_and_saved_privately() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("store");
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let e = |id: &str| FileEntry {
            id: id.into(),
            outgoing: false,
            peer: "ann".into(),
            name: "x.txt".into(),
            mime: "text/plain".into(),
            size: 3,
            sha256: String::new(),
            chunk_bytes: 2,
            chunks: 2,
            done: String::new(),
            state: FileState::Receiving,
            outbox_id: None,
            key: None,
        };
        store.put_chunk(&a, 1, b"b", &e("a")).expect("chunk");
        store.put_chunk(&a, 0, b"a", &e("a")).expect("chunk");
        store.put_chunk(&b, 0, b"z", &e("b")).expect("chunk");
        let got = store.chunks(&a).expect("chunks");
        assert_eq!(got, vec![(0, b"a".to_vec()), (1, b"b".to_vec())]);
        store.remove_chunks(&a).expect("remove");
        assert!(store.chunks(&a).expect("chunks").is_empty());
        assert_eq!(store.chunks(&b).expect("chunks").len(), 1);
        assert_eq!(store.files().expect("files").len(), 2);
        let p1 = store.save_received("x.txt", b"one").expect("save");
        let p2 = store.save_received("x.txt", b"two").expect("save");
        assert!(p2.ends_with("x (2).txt"), "{p2}");
        assert_eq!(std::fs::read(&p1).expect("read"), b"one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p1).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
