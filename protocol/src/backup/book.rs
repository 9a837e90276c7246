//! The replicated backup state: each backup's commitments, blob hash and guess counts,
//! the servers' epoch keys, and the refresh epoch. Pure and deterministic: every server
//! applies the same commands to the same book. Nothing secret is in it: shares and
//! sub-shares are sealed in the commands, and each server keeps its own opened shares
//! apart (the server's backup-keeper).
//!
//! An epoch ends when `t + 1` dealers have committed their last part: every part
//! committed before that counts (each is a zero-sharing, so any number add up to one),
//! the dealers' next keys replace their old ones, and parts of the old epoch that come
//! later are refused. A server that did not deal keeps its key, so deals of the next
//! epoch are sealed to the last key it published.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::vss::{add_commitments, point};
use super::{
    Act, BackupAct, BackupCommand, BackupName, Deal, EpochKey, Registration, ServerSigned,
};
use crate::bounded::{Key32, Sig64};
use crate::params::Params;
use crate::wire::{PublicKeys, ServerIndex};

/// Why a backup command was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum BackupRefusal {
    /// The name is not registered to the signing key.
    #[error("the name is not registered to this key")]
    NotYourName,
    /// A bad client or server signature.
    #[error("bad signature on a backup command")]
    BadSignature,
    /// Wrong number of commitments or shares, or an invalid commitment.
    #[error("backup shape does not fit the cluster: {0}")]
    BadShape(String),
    /// Sealed to another epoch's keys, or for an epoch that is over.
    #[error("backup epoch {got} is not the current epoch {current}")]
    WrongEpoch {
        /// What the command named.
        got: u64,
        /// The book's epoch.
        current: u64,
    },
    /// Not every server has published an epoch key yet.
    #[error("server {0} has not published its backup key yet")]
    NoKey(ServerIndex),
    /// No such backup (or another version of it).
    #[error("no backup under this name")]
    NoBackup,
    /// A server's first key was already published.
    #[error("server {0} already has a backup key")]
    KeyExists(ServerIndex),
    /// The passphrase is wrong (this server's tag did not match).
    #[error("wrong passphrase: {left} guesses left before this server erases its share")]
    WrongPassphrase {
        /// Wrong guesses this server still allows.
        left: u32,
    },
    /// This server erased its share (too many wrong guesses), or the backup is gone.
    #[error("this server erased its share after too many wrong guesses")]
    Erased,
    /// This server's share cannot be used right now (it is catching up with a refresh,
    /// or missed one); ask the others.
    #[error("this server's share is not ready: {0}")]
    NotReady(String),
    /// A deal part out of order.
    #[error("deal part {got} from server {dealer}, expected {expected}")]
    PartOutOfOrder {
        /// The dealer.
        dealer: ServerIndex,
        /// The part it sent.
        got: u32,
        /// The part expected.
        expected: u32,
    },
}

impl BackupRefusal {
    /// A short stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotYourName => "backup_not_your_name",
            Self::BadSignature => "backup_bad_signature",
            Self::BadShape(_) => "backup_bad_shape",
            Self::WrongEpoch { .. } => "backup_wrong_epoch",
            Self::NoKey(_) => "backup_no_key",
            Self::NoBackup => "backup_unknown",
            Self::KeyExists(_) => "backup_key_exists",
            Self::PartOutOfOrder { .. } => "backup_part_out_of_order",
            Self::WrongPassphrase { .. } => "backup_wrong_passphrase",
            Self::Erased => "backup_erased",
            Self::NotReady(_) => "backup_not_ready",
        }
    }
}

/// One backup as every server knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Bumped on every registration in the book (a replacement gets a new one).
    pub version: u64,
    /// The owner's signing key.
    pub client: Key32,
    /// Commitments to the sharing of `K`, as refreshed so far.
    pub key_commitments: Vec<Key32>,
    /// Commitments to the sharing of the OPRF key, as refreshed so far.
    pub oprf_commitments: Vec<Key32>,
    /// SHA-256 of the encrypted blob.
    pub blob_hash: Key32,
    /// Guesses each server counted since the last unlock.
    pub guesses: Vec<u32>,
    /// Each server's last counted attempt (a retry of it is not a new guess).
    pub last_attempt: Vec<Option<Key32>>,
    /// Servers that erased their share.
    pub erased: BTreeSet<ServerIndex>,
    /// Refresh deal parts applied to it.
    pub refreshes: u64,
}

/// What applying a backup command did (for the servers' backup-keepers and metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackupEffect {
    /// A backup was stored: each server opens its sealed shares, sealed to `sealed_to`.
    Registered {
        /// The name.
        name: BackupName,
        /// Its version.
        version: u64,
        /// The epoch keys its shares are sealed to, in server order.
        sealed_to: Vec<Key32>,
    },
    /// A server's count changed.
    Counted {
        /// The backup.
        name: BackupName,
        /// The server.
        server: ServerIndex,
        /// Its count now.
        guesses: u32,
    },
    /// A server erased its share; `gone` if fewer than t + 1 hold one now (the record
    /// and blob are dropped everywhere).
    Erased {
        /// The backup.
        name: BackupName,
        /// The server.
        server: ServerIndex,
        /// Whether the backup is gone.
        gone: bool,
    },
    /// A server's first key.
    KeyPublished {
        /// The server.
        server: ServerIndex,
    },
    /// A deal part was applied to the backups it names that still exist.
    Dealt {
        /// The dealer.
        dealer: ServerIndex,
        /// The epoch it refreshed.
        epoch: u64,
        /// Indices of its entries applied (others name gone or replaced backups).
        applied: Vec<u32>,
        /// The recipients' keys its boxes are sealed to.
        sealed_to: Vec<Key32>,
        /// The epoch ended with it: the new epoch and the dealers' new keys.
        advanced: Option<(u64, Vec<(ServerIndex, Key32)>)>,
    },
}

/// The backup state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupBook {
    /// The refresh epoch.
    pub epoch: u64,
    /// Each server's current epoch key (the last it published).
    pub keys: BTreeMap<ServerIndex, Key32>,
    /// Dealers' keys for the next epoch, adopted when it starts.
    pub next_keys: BTreeMap<ServerIndex, Key32>,
    /// Next part expected from each dealer this epoch.
    pub parts: BTreeMap<ServerIndex, u32>,
    /// Dealers whose last part is in this epoch.
    pub dealt: BTreeSet<ServerIndex>,
    /// Backups by name.
    pub records: BTreeMap<BackupName, Record>,
    /// The next version number.
    pub next_version: u64,
    /// Deal parts applied, in all.
    pub deals: u64,
}

type Refused = BackupRefusal;

fn server_key(params: &Params, server: ServerIndex) -> Result<&Key32, Refused> {
    params
        .server_keys
        .get(usize::from(server))
        .ok_or(Refused::BadShape(format!("no server {server}")))
}

fn check_server_signed<T: ServerSigned>(params: &Params, cmd: &T) -> Result<(), Refused> {
    if cmd.signature_valid(server_key(params, cmd.server())?) {
        Ok(())
    } else {
        Err(Refused::BadSignature)
    }
}

impl BackupBook {
    /// Every server's current key, in order, if all have published one.
    pub fn all_keys(&self, servers: usize) -> Result<Vec<Key32>, Refused> {
        (0..servers as ServerIndex)
            .map(|i| self.keys.get(&i).copied().ok_or(Refused::NoKey(i)))
            .collect()
    }

    /// Apply one command; `names` is the directory.
    pub fn apply(
        &mut self,
        params: &Params,
        names: &BTreeMap<BackupName, PublicKeys>,
        cmd: &BackupCommand,
    ) -> Result<BackupEffect, Refused> {
        match cmd {
            BackupCommand::Register(r) => self.register(params, names, r),
            BackupCommand::Act(a) => self.act(params, a),
            BackupCommand::Key(k) => self.key(params, k),
            BackupCommand::Deal(d) => self.deal(params, d),
        }
    }

    fn register(
        &mut self,
        params: &Params,
        names: &BTreeMap<BackupName, PublicKeys>,
        r: &Registration,
    ) -> Result<BackupEffect, Refused> {
        let (n, t) = (usize::from(params.servers), usize::from(params.threshold));
        if names.get(&r.name).map(|k| k.sign) != Some(r.client) {
            return Err(Refused::NotYourName);
        }
        if !r.signature_valid() {
            return Err(Refused::BadSignature);
        }
        if r.epoch != self.epoch {
            return Err(Refused::WrongEpoch {
                got: r.epoch,
                current: self.epoch,
            });
        }
        let sealed_to = self.all_keys(n)?;
        if r.key_commitments.len() != t + 1 || r.oprf_commitments.len() != t + 1 {
            return Err(Refused::BadShape(format!(
                "{} commitments, not {}",
                r.key_commitments.len(),
                t + 1
            )));
        }
        if r.shares.len() != n {
            return Err(Refused::BadShape(format!(
                "{} sealed shares, not {n}",
                r.shares.len()
            )));
        }
        let all = r
            .key_commitments
            .as_slice()
            .iter()
            .chain(r.oprf_commitments.as_slice());
        if all.into_iter().any(|c| point(c).is_err()) {
            return Err(Refused::BadShape(
                "a commitment is not a group element".into(),
            ));
        }
        let version = self.next_version;
        self.next_version += 1;
        self.records.insert(
            r.name.clone(),
            Record {
                version,
                client: r.client,
                key_commitments: r.key_commitments.as_slice().to_vec(),
                oprf_commitments: r.oprf_commitments.as_slice().to_vec(),
                blob_hash: r.blob_hash(),
                guesses: vec![0; n],
                last_attempt: vec![None; n],
                erased: BTreeSet::new(),
                refreshes: 0,
            },
        );
        Ok(BackupEffect::Registered {
            name: r.name.clone(),
            version,
            sealed_to,
        })
    }

    fn act(&mut self, params: &Params, a: &BackupAct) -> Result<BackupEffect, Refused> {
        check_server_signed(params, a)?;
        let rec = self
            .records
            .get_mut(&a.name)
            .filter(|r| r.version == a.version)
            .ok_or(Refused::NoBackup)?;
        let i = usize::from(a.server);
        match a.act {
            Act::Guess { attempt } => {
                if rec.last_attempt[i] != Some(attempt) {
                    rec.guesses[i] = rec.guesses[i].saturating_add(1);
                    rec.last_attempt[i] = Some(attempt);
                }
            }
            Act::Unlocked => rec.guesses[i] = 0,
            Act::Erase => {
                rec.erased.insert(a.server);
                let left = usize::from(params.servers) - rec.erased.len();
                let gone = left < usize::from(params.threshold) + 1;
                if gone {
                    self.records.remove(&a.name);
                }
                return Ok(BackupEffect::Erased {
                    name: a.name.clone(),
                    server: a.server,
                    gone,
                });
            }
        }
        Ok(BackupEffect::Counted {
            name: a.name.clone(),
            server: a.server,
            guesses: rec.guesses[i],
        })
    }

    fn key(&mut self, params: &Params, k: &EpochKey) -> Result<BackupEffect, Refused> {
        check_server_signed(params, k)?;
        if self.keys.contains_key(&k.server) {
            return Err(Refused::KeyExists(k.server));
        }
        self.keys.insert(k.server, k.key);
        Ok(BackupEffect::KeyPublished { server: k.server })
    }

    fn deal(&mut self, params: &Params, d: &Deal) -> Result<BackupEffect, Refused> {
        let (n, t) = (usize::from(params.servers), usize::from(params.threshold));
        check_server_signed(params, d)?;
        if d.epoch != self.epoch {
            return Err(Refused::WrongEpoch {
                got: d.epoch,
                current: self.epoch,
            });
        }
        let expected = self.parts.get(&d.dealer).copied().unwrap_or(0);
        if d.part != expected || self.dealt.contains(&d.dealer) {
            return Err(Refused::PartOutOfOrder {
                dealer: d.dealer,
                got: d.part,
                expected,
            });
        }
        let sealed_to = self.all_keys(n)?;
        if d.boxes.len() != n {
            return Err(Refused::BadShape(format!(
                "{} boxes, not {n}",
                d.boxes.len()
            )));
        }
        // Check every entry before changing anything.
        let mut updates = Vec::new();
        for (ix, e) in d.entries.as_slice().iter().enumerate() {
            if e.key_commitments.len() != t || e.oprf_commitments.len() != t {
                return Err(Refused::BadShape("a deal entry's commitments".into()));
            }
            let Some(rec) = self.records.get(&e.name).filter(|r| r.version == e.version) else {
                continue;
            };
            let k = add_commitments(&rec.key_commitments, e.key_commitments.as_slice())
                .map_err(|e| Refused::BadShape(e.to_string()))?;
            let o = add_commitments(&rec.oprf_commitments, e.oprf_commitments.as_slice())
                .map_err(|e| Refused::BadShape(e.to_string()))?;
            updates.push((ix as u32, e.name.clone(), k, o));
        }
        let mut applied = Vec::with_capacity(updates.len());
        for (ix, name, k, o) in updates {
            if let Some(rec) = self.records.get_mut(&name) {
                rec.key_commitments = k;
                rec.oprf_commitments = o;
                rec.refreshes += 1;
            }
            applied.push(ix);
        }
        self.deals += 1;
        self.parts.insert(d.dealer, expected + 1);
        let mut advanced = None;
        if d.last {
            self.dealt.insert(d.dealer);
            self.next_keys.insert(d.dealer, d.next_key);
            if self.dealt.len() > t {
                let adopted: Vec<(ServerIndex, Key32)> =
                    std::mem::take(&mut self.next_keys).into_iter().collect();
                for (server, key) in &adopted {
                    self.keys.insert(*server, *key);
                }
                self.dealt.clear();
                self.parts.clear();
                self.epoch += 1;
                advanced = Some((self.epoch, adopted));
            }
        }
        Ok(BackupEffect::Dealt {
            dealer: d.dealer,
            epoch: d.epoch,
            applied,
            sealed_to,
            advanced,
        })
    }
}

/// An all-zero signature, filled in by [`ServerSigned::signed`].
pub const UNSIGNED: Sig64 = crate::bounded::Fixed([0; 64]);
