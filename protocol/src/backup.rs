//! Key backup across the servers (see "Key backup with proactive refresh" in DESIGN.md).
//!
//! A client encrypts its backup under a random key `K`, Shamir-shares `K` and a fresh
//! OPRF key across the servers with Feldman commitments ([`vss`]), seals each server's
//! shares and its passphrase tag to that server's epoch key ([`sealbox`]), and commits
//! one [`Registration`]. A restore evaluates the threshold OPRF ([`oprf`]) on the
//! passphrase at `t + 1` servers, each of which counts the guess through the log first
//! ([`BackupAct`]), then shows each server its tag to get its share back. Every epoch,
//! each server deals zero-sharings of every backup's two secrets ([`Deal`], sealed per
//! recipient), and the replicated [`book::BackupBook`] moves the commitments with them.

pub mod book;
#[cfg(test)]
mod flow_tests;
pub mod make;
pub mod oprf;
pub mod sealbox;
pub mod vss;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bounded::{BoundedVec, Bytes, Fixed, Key32, Sig64};
use crate::limits::{MAX_NAME_BYTES, MAX_SERVERS};
use crate::wire::ServerIndex;

/// A backup's name: the user's registered name.
pub type BackupName = Bytes<MAX_NAME_BYTES>;
/// The largest backup blob (identity, contacts, rooms), encrypted.
pub const MAX_BLOB_BYTES: usize = 64 * 1024;
/// What a server's sealed shares hold: its share of `K`, its OPRF key share, its tag.
pub const SHARES_PLAIN_BYTES: usize = 96;
/// A server's sealed shares.
pub const SHARES_BOX_BYTES: usize = SHARES_PLAIN_BYTES + sealbox::OVERHEAD;
/// Backups one deal part refreshes at most.
pub const MAX_DEAL_ENTRIES: usize = 512;
/// A recipient's sealed sub-shares in one part (two scalars per entry).
pub const MAX_DEAL_BOX_BYTES: usize = MAX_DEAL_ENTRIES * 64 + sealbox::OVERHEAD;
/// Wrong guesses a server allows before it erases its share, unless configured.
pub const DEFAULT_GUESS_LIMIT: u32 = 10;

/// A new backup (or a replacement of one's own), signed by the name's registered key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The name, registered in the directory to `client`.
    pub name: BackupName,
    /// The client's signing key.
    pub client: Key32,
    /// The backup epoch whose server keys the shares are sealed to.
    pub epoch: u64,
    /// Commitments `g^{a_0..a_t}` to the sharing of `K`.
    pub key_commitments: BoundedVec<Key32, MAX_SERVERS>,
    /// Commitments to the sharing of the OPRF key.
    pub oprf_commitments: BoundedVec<Key32, MAX_SERVERS>,
    /// Server `i`'s shares and tag, sealed to its epoch key, in server order.
    pub shares: BoundedVec<Fixed<SHARES_BOX_BYTES>, MAX_SERVERS>,
    /// The backup, encrypted under `K` (every server keeps a copy).
    pub blob: Bytes<MAX_BLOB_BYTES>,
    /// ed25519 signature by `client` over [`Registration::signed_bytes`].
    pub signature: Sig64,
}

/// What a server does to a backup's count, signed by that server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Act {
    /// A passphrase was evaluated: one guess (a repeat of the same blinded input is one).
    Guess {
        /// SHA-256 of the blinded input.
        attempt: Key32,
    },
    /// The right tag was shown: the count starts again.
    Unlocked,
    /// The limit was passed: this server's share is erased.
    Erase,
}

/// A server's act on one backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupAct {
    /// The backup.
    pub name: BackupName,
    /// Its version (a replaced backup's acts do not count for the new one).
    pub version: u64,
    /// The acting server.
    pub server: ServerIndex,
    /// What it did.
    pub act: Act,
    /// ed25519 signature by the server.
    pub signature: Sig64,
}

/// A server's first epoch key (later ones come with its deals).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochKey {
    /// The server.
    pub server: ServerIndex,
    /// Its x25519 public key.
    pub key: Key32,
    /// ed25519 signature by the server.
    pub signature: Sig64,
}

/// One backup's zero-sharings in a deal: commitments `C_1..C_t` of the sharing added to
/// `K`'s and of the one added to the OPRF key's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealEntry {
    /// The backup.
    pub name: BackupName,
    /// Its version.
    pub version: u64,
    /// For `K`.
    pub key_commitments: BoundedVec<Key32, MAX_SERVERS>,
    /// For the OPRF key.
    pub oprf_commitments: BoundedVec<Key32, MAX_SERVERS>,
}

/// One part of a server's refresh deal for an epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    /// The dealer.
    pub dealer: ServerIndex,
    /// The epoch being left.
    pub epoch: u64,
    /// Part number, from 0.
    pub part: u32,
    /// Whether this is the dealer's last part for the epoch.
    pub last: bool,
    /// The dealer's key for the next epoch.
    pub next_key: Key32,
    /// The backups this part refreshes.
    pub entries: BoundedVec<DealEntry, MAX_DEAL_ENTRIES>,
    /// Recipient `j`'s sub-shares (64 bytes an entry), sealed to its epoch key.
    pub boxes: BoundedVec<Bytes<MAX_DEAL_BOX_BYTES>, MAX_SERVERS>,
    /// ed25519 signature by the dealer.
    pub signature: Sig64,
}

/// The backup commands that go through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupCommand {
    /// A new backup.
    Register(Registration),
    /// A server counted a guess, reset the count or erased its share.
    Act(BackupAct),
    /// A server's first epoch key.
    Key(EpochKey),
    /// A refresh deal part.
    Deal(Deal),
}

fn digest_of<T: Serialize>(domain: &[u8], value: &T) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(domain);
    // Encoding into a Vec cannot fail for these types.
    h.update(crate::codec::encode(value).unwrap_or_default());
    h.finalize().to_vec()
}

impl Registration {
    /// What the client signs: everything but the signature.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = Fixed([0; 64]);
        digest_of(b"chorus/backup/register/v1", &unsigned)
    }

    /// Whether `client` signed it.
    pub fn signature_valid(&self) -> bool {
        keys::identity::verify_ed25519(&self.client.0, &self.signed_bytes(), &self.signature.0)
    }

    /// SHA-256 of the blob, which the state keeps instead of it.
    pub fn blob_hash(&self) -> Key32 {
        Fixed(Sha256::digest(self.blob.as_slice()).into())
    }
}

/// The associated data of server `server`'s sealed shares in a registration.
pub fn shares_aad(name: &[u8], epoch: u64, server: ServerIndex) -> Vec<u8> {
    let mut aad = b"chorus/backup/shares/v1".to_vec();
    aad.extend_from_slice(&epoch.to_le_bytes());
    aad.extend_from_slice(&server.to_le_bytes());
    aad.extend_from_slice(name);
    aad
}

/// The associated data of recipient `to`'s box in a deal part.
pub fn deal_aad(dealer: ServerIndex, epoch: u64, part: u32, to: ServerIndex) -> Vec<u8> {
    let mut aad = b"chorus/backup/deal/v1".to_vec();
    aad.extend_from_slice(&dealer.to_le_bytes());
    aad.extend_from_slice(&epoch.to_le_bytes());
    aad.extend_from_slice(&part.to_le_bytes());
    aad.extend_from_slice(&to.to_le_bytes());
    aad
}

/// Server-signed backup commands: what the server signs, and with which field.
pub trait ServerSigned: Clone + Serialize {
    /// The signing server.
    fn server(&self) -> ServerIndex;
    /// The signature field.
    fn signature_mut(&mut self) -> &mut Sig64;
    /// The signature.
    fn signature(&self) -> &Sig64;
    /// Domain of the signed digest.
    const DOMAIN: &'static [u8];

    /// What the server signs.
    fn signed_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        *unsigned.signature_mut() = Fixed([0; 64]);
        digest_of(Self::DOMAIN, &unsigned)
    }

    /// Sign with the server's identity.
    fn signed(mut self, identity: &keys::Identity) -> Self {
        let sig = identity.sign(&self.signed_bytes());
        *self.signature_mut() = Fixed(sig);
        self
    }

    /// Whether the server whose ed25519 key is `key` signed it.
    fn signature_valid(&self, key: &Key32) -> bool {
        keys::identity::verify_ed25519(&key.0, &self.signed_bytes(), &self.signature().0)
    }
}

macro_rules! server_signed {
    ($t:ty, $field:ident, $domain:literal) => {
        impl ServerSigned for $t {
            const DOMAIN: &'static [u8] = $domain;
            fn server(&self) -> ServerIndex {
                self.$field
            }
            fn signature_mut(&mut self) -> &mut Sig64 {
                &mut self.signature
            }
            fn signature(&self) -> &Sig64 {
                &self.signature
            }
        }
    };
}
server_signed!(BackupAct, server, b"chorus/backup/act/v1");
server_signed!(EpochKey, server, b"chorus/backup/key/v1");
server_signed!(Deal, dealer, b"chorus/backup/deal/v1");

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]

        /// Backup commands arrive in log entries and client requests: random bytes decode
        /// to an error or a value, never a panic.
        #[test]
        fn backup_command_decoder_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = crate::codec::decode::<BackupCommand>(&bytes);
        }
    }
}

/// A backup as one server shows it to a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordView {
    /// Version.
    pub version: u64,
    /// Commitments to `K`'s sharing now.
    pub key_commitments: BoundedVec<Key32, MAX_SERVERS>,
    /// Commitments to the OPRF key's sharing now.
    pub oprf_commitments: BoundedVec<Key32, MAX_SERVERS>,
    /// SHA-256 of the encrypted blob.
    pub blob_hash: Key32,
    /// Guesses each server counted since the last unlock.
    pub guesses: BoundedVec<u32, MAX_SERVERS>,
    /// Servers that erased their share.
    pub erased: BoundedVec<ServerIndex, MAX_SERVERS>,
    /// Refresh parts applied to it.
    pub refreshes: u64,
}

/// What a server answers to `BackupInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupView {
    /// The refresh epoch.
    pub epoch: u64,
    /// Every server's epoch key in order (empty until all have published one).
    pub keys: BoundedVec<Key32, MAX_SERVERS>,
    /// The backup asked about, if it exists.
    pub record: Option<RecordView>,
    /// This server's copy of its encrypted blob, if it holds one.
    pub blob: Option<Bytes<MAX_BLOB_BYTES>>,
    /// Wrong guesses this server allows before erasing its share.
    pub guess_limit: u32,
}

impl RecordView {
    /// From the book's record.
    pub fn of(r: &book::Record) -> Self {
        let cap = |v: Vec<Key32>| BoundedVec::new(v).unwrap_or_default();
        Self {
            version: r.version,
            key_commitments: cap(r.key_commitments.clone()),
            oprf_commitments: cap(r.oprf_commitments.clone()),
            blob_hash: r.blob_hash,
            guesses: BoundedVec::new(r.guesses.clone()).unwrap_or_default(),
            erased: BoundedVec::new(r.erased.iter().copied().collect()).unwrap_or_default(),
            refreshes: r.refreshes,
        }
    }
}

/// A server's share of `K`, sealed to the restoring client's one-time key.
pub const SHARE_REPLY_BYTES: usize = 32 + sealbox::OVERHEAD;

/// The associated data of a share a server seals to a restoring client.
pub fn reply_aad(name: &[u8], version: u64, server: ServerIndex) -> Vec<u8> {
    let mut aad = b"chorus/backup/reply/v1".to_vec();
    aad.extend_from_slice(&version.to_le_bytes());
    aad.extend_from_slice(&server.to_le_bytes());
    aad.extend_from_slice(name);
    aad
}
