//! The file half of the core's store ([`FileStore`], a part of [`super::LocalStore`]):
//! transfer records, an outgoing file's content, an incoming file's chunks, and where a
//! received file is saved. [`crate::store::Store`] keeps them in redb and writes received
//! files beside it; [`FileMem`] keeps them in memory for tests.

use std::collections::BTreeMap;

use crate::store::{FileEntry, Store, StoreError};

/// What the core keeps about files.
pub trait FileStore {
    /// Write a transfer's record.
    fn put_file(&mut self, key: &[u8; 16], entry: &FileEntry) -> Result<(), StoreError>;
    /// A transfer's record.
    fn file(&self, key: &[u8; 16]) -> Result<Option<FileEntry>, StoreError>;
    /// Every transfer's record.
    fn files(&self) -> Result<Vec<FileEntry>, StoreError>;
    /// Keep (or drop, with `None`) an outgoing file's content under its outbox id.
    fn put_file_data(&mut self, id: u64, data: Option<&[u8]>) -> Result<(), StoreError>;
    /// An outgoing file's content.
    fn file_data(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Keep an incoming chunk with the updated record, in one write.
    fn put_chunk(
        &mut self,
        key: &[u8; 16],
        index: u16,
        bytes: &[u8],
        entry: &FileEntry,
    ) -> Result<(), StoreError>;
    /// An incoming file's chunks, by index.
    fn chunks(&self, key: &[u8; 16]) -> Result<Vec<(u16, Vec<u8>)>, StoreError>;
    /// Drop an incoming file's chunks.
    fn remove_chunks(&mut self, key: &[u8; 16]) -> Result<(), StoreError>;
    /// Save a received file; returns where it is.
    fn save_received(&mut self, name: &str, bytes: &[u8]) -> Result<String, StoreError>;
}

impl FileStore for Store {
    fn put_file(&mut self, key: &[u8; 16], entry: &FileEntry) -> Result<(), StoreError> {
        Store::put_file(self, key, entry)
    }
    fn file(&self, key: &[u8; 16]) -> Result<Option<FileEntry>, StoreError> {
        Store::file(self, key)
    }
    fn files(&self) -> Result<Vec<FileEntry>, StoreError> {
        Store::files(self)
    }
    fn put_file_data(&mut self, id: u64, data: Option<&[u8]>) -> Result<(), StoreError> {
        Store::put_file_data(self, id, data)
    }
    fn file_data(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Store::file_data(self, id)
    }
    fn put_chunk(
        &mut self,
        key: &[u8; 16],
        index: u16,
        bytes: &[u8],
        entry: &FileEntry,
    ) -> Result<(), StoreError> {
        Store::put_chunk(self, key, index, bytes, entry)
    }
    fn chunks(&self, key: &[u8; 16]) -> Result<Vec<(u16, Vec<u8>)>, StoreError> {
        Store::chunks(self, key)
    }
    fn remove_chunks(&mut self, key: &[u8; 16]) -> Result<(), StoreError> {
        Store::remove_chunks(self, key)
    }
    fn save_received(&mut self, name: &str, bytes: &[u8]) -> Result<String, StoreError> {
        Store::save_received(self, name, bytes)
    }
}

/// Files in memory ([`super::local::MemStore`]'s, for tests).
#[derive(Clone, Debug, Default)]
pub struct FileMem {
    /// Records.
    pub entries: BTreeMap<[u8; 16], FileEntry>,
    /// Outgoing contents.
    pub data: BTreeMap<u64, Vec<u8>>,
    /// Incoming chunks.
    pub chunks: BTreeMap<([u8; 16], u16), Vec<u8>>,
    /// Saved files: "path" → bytes.
    pub saved: BTreeMap<String, Vec<u8>>,
}

impl FileStore for super::local::MemStore {
    fn put_file(&mut self, key: &[u8; 16], entry: &FileEntry) -> Result<(), StoreError> {
        self.files.entries.insert(*key, entry.clone());
        Ok(())
    }
    fn file(&self, key: &[u8; 16]) -> Result<Option<FileEntry>, StoreError> {
        Ok(self.files.entries.get(key).cloned())
    }
    fn files(&self) -> Result<Vec<FileEntry>, StoreError> {
        Ok(self.files.entries.values().cloned().collect())
    }
    fn put_file_data(&mut self, id: u64, data: Option<&[u8]>) -> Result<(), StoreError> {
        match data {
            Some(d) => self.files.data.insert(id, d.to_vec()),
            None => self.files.data.remove(&id),
        };
        Ok(())
    }
    fn file_data(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.files.data.get(&id).cloned())
    }
    fn put_chunk(
        &mut self,
        key: &[u8; 16],
        index: u16,
        bytes: &[u8],
        entry: &FileEntry,
    ) -> Result<(), StoreError> {
        self.files.chunks.insert((*key, index), bytes.to_vec());
        self.files.entries.insert(*key, entry.clone());
        Ok(())
    }
    fn chunks(&self, key: &[u8; 16]) -> Result<Vec<(u16, Vec<u8>)>, StoreError> {
        Ok(self
            .files
            .chunks
            .range((*key, 0)..=(*key, u16::MAX))
            .map(|((_, i), b)| (*i, b.clone()))
            .collect())
    }
    fn remove_chunks(&mut self, key: &[u8; 16]) -> Result<(), StoreError> {
        self.files.chunks.retain(|(k, _), _| k != key);
        Ok(())
    }
    fn save_received(&mut self, name: &str, bytes: &[u8]) -> Result<String, StoreError> {
        let path = format!("mem/files/{name}");
        self.files.saved.insert(path.clone(), bytes.to_vec());
        Ok(path)
    }
}
