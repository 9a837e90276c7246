//! The backup-keeper's private store: this server's epoch secrets, its shares of every
//! backup (of `K`, of the OPRF key, and its tag), each backup's encrypted blob, and the
//! last log index it processed. A redb file of its own (`backup.redb`, 0600), apart from
//! the Raft log; secrets and shares are sealed at rest under a key derived from the
//! server's identity, so the file alone holds none of them in the clear.
//!
//! Every applied entry is one write transaction that also records its log index, so an
//! entry re-applied at start-up (the state machine is rebuilt from the log) is skipped.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use rand_core::RngCore;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use sha2::Sha256;
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

const SECRETS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("epoch_secrets");
const SHARES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shares");
const BLOBS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blobs");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("pending_key");

/// A store error, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("backup store: {0}")]
pub struct StoreError(String);

fn err<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError(e.to_string())
}

/// This server's shares of one backup.
pub struct StoredShare {
    /// The backup's version.
    pub version: u64,
    /// Share of `K`.
    pub key: Zeroizing<[u8; 32]>,
    /// Share of the OPRF key.
    pub oprf: Zeroizing<[u8; 32]>,
    /// The tag a restoring client must show.
    pub tag: Zeroizing<[u8; 32]>,
    /// False once a refresh could not be applied (a bad or unopenable sub-share): the
    /// share no longer matches the commitments and is never used.
    pub valid: bool,
}

impl StoredShare {
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(105));
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&*self.key);
        out.extend_from_slice(&*self.oprf);
        out.extend_from_slice(&*self.tag);
        out.push(u8::from(self.valid));
        out
    }

    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != 105 {
            return None;
        }
        let take = |at: usize| {
            let mut out = Zeroizing::new([0u8; 32]);
            out.copy_from_slice(&b[at..at + 32]);
            out
        };
        Some(Self {
            version: u64::from_le_bytes(b[..8].try_into().ok()?),
            key: take(8),
            oprf: take(40),
            tag: take(72),
            valid: b[104] == 1,
        })
    }
}

/// The keeper's store.
pub struct BackupStore {
    db: Database,
    key: Zeroizing<[u8; 32]>,
}

/// One write transaction.
pub struct Txn<'a> {
    w: redb::WriteTransaction,
    key: &'a [u8; 32],
}

fn seal(key: &[u8; 32], table: &str, id: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = [table.as_bytes(), id].concat();
    let ct = ChaCha20Poly1305::new(key.into())
        .encrypt(
            &nonce.into(),
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        .unwrap_or_default();
    [nonce.as_slice(), &ct].concat()
}

fn unseal(key: &[u8; 32], table: &str, id: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < 12 {
        return None;
    }
    let aad = [table.as_bytes(), id].concat();
    ChaCha20Poly1305::new(key.into())
        .decrypt(
            sealed[..12].into(),
            Payload {
                msg: &sealed[12..],
                aad: &aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

impl BackupStore {
    /// Open (or create, 0600) the store at `path`, sealed under a key derived from the
    /// server's identity.
    pub fn open(path: &Path, identity: &keys::Identity) -> Result<Self, StoreError> {
        if !path.exists() {
            create_private(path)
                .map_err(|e| StoreError(format!("creating {}: {e}", path.display())))?;
        }
        let db = Database::create(path)
            .map_err(|e| StoreError(format!("opening {}: {e}", path.display())))?;
        let w = db.begin_write().map_err(err)?;
        {
            w.open_table(SECRETS).map_err(err)?;
            w.open_table(SHARES).map_err(err)?;
            w.open_table(BLOBS).map_err(err)?;
            w.open_table(META).map_err(err)?;
            w.open_table(PENDING).map_err(err)?;
        }
        w.commit().map_err(err)?;
        let hk = Hkdf::<Sha256>::new(Some(b"chorus/backup/store/v1"), &*identity.ed25519_seed());
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's maximum, so expand cannot fail.
        if hk.expand(b"at rest", &mut *key).is_err() {
            unreachable!("HKDF output length is fixed and valid");
        }
        Ok(Self { db, key })
    }

    /// The last log index processed.
    pub fn applied(&self) -> Result<u64, StoreError> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(META).map_err(err)?;
        Ok(t.get("applied")
            .map_err(err)?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    /// The epoch secret whose public key is `public`, if we still hold it.
    pub fn secret(&self, public: &[u8; 32]) -> Result<Option<StaticSecret>, StoreError> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(SECRETS).map_err(err)?;
        let Some(v) = t.get(public.as_slice()).map_err(err)? else {
            return Ok(None);
        };
        let plain = unseal(&self.key, "epoch_secrets", public, v.value()).ok_or_else(|| {
            StoreError("an epoch secret does not open under this server's key".into())
        })?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| StoreError("an epoch secret of the wrong size".into()))?;
        Ok(Some(StaticSecret::from(bytes)))
    }

    /// Epoch secrets held (current, and any dealt but not adopted yet).
    pub fn secrets_held(&self) -> Result<u64, StoreError> {
        let r = self.db.begin_read().map_err(err)?;
        r.open_table(SECRETS).map_err(err)?.len().map_err(err)
    }

    /// Our shares of the backup `name`.
    pub fn share(&self, name: &[u8]) -> Result<Option<StoredShare>, StoreError> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(SHARES).map_err(err)?;
        let Some(v) = t.get(name).map_err(err)? else {
            return Ok(None);
        };
        let plain = unseal(&self.key, "shares", name, v.value())
            .ok_or_else(|| StoreError("a share does not open under this server's key".into()))?;
        Ok(StoredShare::decode(&plain))
    }

    /// Backups we hold a share of.
    pub fn shares_held(&self) -> Result<u64, StoreError> {
        let r = self.db.begin_read().map_err(err)?;
        r.open_table(SHARES).map_err(err)?.len().map_err(err)
    }

    /// Our copy of the backup's encrypted blob and its version.
    pub fn blob(&self, name: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(BLOBS).map_err(err)?;
        let Some(v) = t.get(name).map_err(err)? else {
            return Ok(None);
        };
        let b = v.value();
        if b.len() < 8 {
            return Ok(None);
        }
        let version = u64::from_le_bytes(b[..8].try_into().map_err(err)?);
        Ok(Some((version, b[8..].to_vec())))
    }

    /// Start a write transaction.
    pub fn begin(&self) -> Result<Txn<'_>, StoreError> {
        Ok(Txn {
            w: self.db.begin_write().map_err(err)?,
            key: &self.key,
        })
    }
}

impl Txn<'_> {
    /// Keep an epoch secret.
    pub fn put_secret(&mut self, secret: &StaticSecret) -> Result<(), StoreError> {
        let public = x25519_dalek::PublicKey::from(secret).to_bytes();
        let sealed = seal(
            self.key,
            "epoch_secrets",
            &public,
            &Zeroizing::new(secret.to_bytes())[..],
        );
        let mut t = self.w.open_table(SECRETS).map_err(err)?;
        t.insert(public.as_slice(), sealed.as_slice())
            .map_err(err)?;
        Ok(())
    }

    /// Erase an epoch secret.
    pub fn erase_secret(&mut self, public: &[u8; 32]) -> Result<(), StoreError> {
        let mut t = self.w.open_table(SECRETS).map_err(err)?;
        t.remove(public.as_slice()).map_err(err)?;
        Ok(())
    }

    /// Store (replace) our shares of `name`.
    pub fn put_share(&mut self, name: &[u8], share: &StoredShare) -> Result<(), StoreError> {
        let sealed = seal(self.key, "shares", name, &share.encode());
        let mut t = self.w.open_table(SHARES).map_err(err)?;
        t.insert(name, sealed.as_slice()).map_err(err)?;
        Ok(())
    }

    /// Our shares of `name`, read inside this transaction.
    pub fn share(&self, name: &[u8]) -> Result<Option<StoredShare>, StoreError> {
        let t = self.w.open_table(SHARES).map_err(err)?;
        let Some(v) = t.get(name).map_err(err)? else {
            return Ok(None);
        };
        Ok(unseal(self.key, "shares", name, v.value()).and_then(|p| StoredShare::decode(&p)))
    }

    /// Erase our shares of `name` (and its blob if `blob`).
    pub fn erase_share(&mut self, name: &[u8], blob: bool) -> Result<(), StoreError> {
        self.w
            .open_table(SHARES)
            .map_err(err)?
            .remove(name)
            .map_err(err)?;
        if blob {
            self.w
                .open_table(BLOBS)
                .map_err(err)?
                .remove(name)
                .map_err(err)?;
        }
        Ok(())
    }

    /// Keep the backup's encrypted blob.
    pub fn put_blob(&mut self, name: &[u8], version: u64, blob: &[u8]) -> Result<(), StoreError> {
        let value = [version.to_le_bytes().as_slice(), blob].concat();
        let mut t = self.w.open_table(BLOBS).map_err(err)?;
        t.insert(name, value.as_slice()).map_err(err)?;
        Ok(())
    }

    /// The key we dealt (or published first) and are waiting to see adopted: the epoch
    /// it was dealt in (`u64::MAX` for a first key) and its public key.
    pub fn pending(&self) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        let t = self.w.open_table(PENDING).map_err(err)?;
        let Some(v) = t.get("key").map_err(err)? else {
            return Ok(None);
        };
        let b = v.value();
        if b.len() != 40 {
            return Ok(None);
        }
        let epoch = u64::from_le_bytes(b[..8].try_into().map_err(err)?);
        Ok(Some((epoch, b[8..].try_into().map_err(err)?)))
    }

    /// Set or clear the pending key.
    pub fn set_pending(&mut self, pending: Option<(u64, [u8; 32])>) -> Result<(), StoreError> {
        let mut t = self.w.open_table(PENDING).map_err(err)?;
        match pending {
            Some((epoch, public)) => {
                let v = [epoch.to_le_bytes().as_slice(), &public].concat();
                t.insert("key", v.as_slice()).map_err(err)?;
            }
            None => {
                t.remove("key").map_err(err)?;
            }
        }
        Ok(())
    }

    /// Commit without recording a log index (key generation outside apply).
    pub fn commit_only(self) -> Result<(), StoreError> {
        self.w.commit().map_err(err)
    }

    /// Record the log index processed and commit.
    pub fn commit(self, applied: u64) -> Result<(), StoreError> {
        {
            let mut t = self.w.open_table(META).map_err(err)?;
            t.insert("applied", applied).map_err(err)?;
        }
        self.w.commit().map_err(err)
    }
}

fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_secrets_are_sealed_at_rest_and_the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("backup.redb");
        let id = keys::Identity::generate(&mut rand::rngs::OsRng);
        let share = [0x5au8; 32];
        let secret = StaticSecret::from([0x3cu8; 32]);
        {
            let s = BackupStore::open(&path, &id).expect("open");
            let mut t = s.begin().expect("begin");
            t.put_secret(&secret).expect("secret");
            let stored = StoredShare {
                version: 7,
                key: Zeroizing::new(share),
                oprf: Zeroizing::new([0x6bu8; 32]),
                tag: Zeroizing::new([0x7cu8; 32]),
                valid: true,
            };
            t.put_share(b"alice", &stored).expect("share");
            t.commit(42).expect("commit");
            assert_eq!(s.applied().expect("applied"), 42);
            let back = s.share(b"alice").expect("read").expect("some");
            assert_eq!((back.version, *back.key, back.valid), (7, share, true));
            let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
            assert!(s.secret(&public).expect("read").is_some());
        }
        let bytes = std::fs::read(&path).expect("read file");
        for needle in [share, [0x6b; 32], [0x7c; 32], secret.to_bytes()] {
            assert!(
                !bytes.windows(32).any(|w| w == needle),
                "a secret is in the clear"
            );
        }
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Another server's key opens nothing.
        let other = keys::Identity::generate(&mut rand::rngs::OsRng);
        let s = BackupStore::open(&path, &other).expect("open");
        assert!(s.share(b"alice").is_err());
    }
}
