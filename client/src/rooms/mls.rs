//! The MLS side of rooms (RFC 9420 through OpenMLS): group keys and membership, nothing
//! else. A room's messages never travel as MLS messages (MLS puts group id and epoch in
//! the clear); only commits do, inside the room envelope ([`protocol::room`]). What a
//! room uses from MLS is its membership and, per epoch, an exporter secret
//! ([`Mls::room_keys`]) from which the envelope keys come.
//!
//! A member's MLS credential is its Chorus identity: the ed25519 key (which also signs
//! for it in MLS) and the x25519 key, 64 bytes. A key package whose signature key is not
//! the first half of its credential is refused, so nobody joins under someone else's name.
//!
//! OpenMLS writes every change into its storage provider; [`Mls::snapshot`] is that whole
//! store as bytes (the client keeps it in its 0600 data file) and [`Mls::restore`] reads it.

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use protocol::room::RoomKeys;
use serde::{Deserialize, Serialize};

/// The ciphersuite every room uses.
pub const SUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519;
/// A snapshot holds at most this many entries (a file that claims more is refused).
const MAX_SNAPSHOT_ENTRIES: usize = 1 << 20;

/// A room's id: its MLS group id (16 random bytes; it never leaves the members).
pub type RoomId = [u8; 16];

/// A member as MLS knows it: its Chorus identity keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MemberKeys {
    /// ed25519 (signs for the member).
    pub sign: [u8; 32],
    /// x25519 (one-to-one messages are sealed to it).
    pub dh: [u8; 32],
}

impl MemberKeys {
    /// The keys of `identity`.
    pub fn of(identity: &keys::Identity) -> Self {
        let p = identity.public();
        Self {
            sign: p.sign,
            dh: p.dh,
        }
    }

    fn credential_bytes(&self) -> Vec<u8> {
        let mut v = self.sign.to_vec();
        v.extend_from_slice(&self.dh);
        v
    }

    fn from_credential(c: &Credential) -> Option<Self> {
        let b = c.serialized_content();
        if b.len() != 64 {
            return None;
        }
        let mut sign = [0u8; 32];
        let mut dh = [0u8; 32];
        sign.copy_from_slice(&b[..32]);
        dh.copy_from_slice(&b[32..]);
        Some(Self { sign, dh })
    }
}

/// Why an MLS step failed (a sentence for the user or the log; never key material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MlsError(pub String);

fn err(what: &str) -> impl Fn(&dyn std::fmt::Debug) -> MlsError + '_ {
    move |e| MlsError(format!("{what}: {e:?}"))
}

/// What a commit from someone else did, once merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Who committed it.
    pub committer: Option<MemberKeys>,
    /// Members it added.
    pub added: Vec<MemberKeys>,
    /// Members it removed.
    pub removed: Vec<MemberKeys>,
    /// It removed us.
    pub we_were_removed: bool,
}

/// This client's MLS state: every room's group, and key packages waiting for a Welcome.
pub struct Mls {
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    me: MemberKeys,
}

impl Mls {
    /// Fresh MLS state for `identity`.
    pub fn new(identity: &keys::Identity) -> Self {
        let seed = identity.ed25519_seed();
        let me = MemberKeys::of(identity);
        let signer =
            SignatureKeyPair::from_raw(SignatureScheme::ED25519, seed.to_vec(), me.sign.to_vec());
        Self {
            provider: OpenMlsRustCrypto::default(),
            signer,
            me,
        }
    }

    /// The state saved by [`Self::snapshot`].
    pub fn restore(identity: &keys::Identity, snapshot: &[u8]) -> Result<Self, MlsError> {
        let mls = Self::new(identity);
        let entries = decode_snapshot(snapshot)?;
        let mut values = mls
            .provider
            .storage()
            .values
            .write()
            .map_err(|_| MlsError("MLS store lock poisoned".into()))?;
        values.extend(entries);
        drop(values);
        Ok(mls)
    }

    /// Everything OpenMLS holds, as bytes (take it between operations only).
    pub fn snapshot(&self) -> Vec<u8> {
        let Ok(values) = self.provider.storage().values.read() else {
            return Vec::new();
        };
        let mut entries: Vec<(&Vec<u8>, &Vec<u8>)> = values.iter().collect();
        entries.sort();
        let mut out = Vec::new();
        for (k, v) in entries {
            for part in [k, v] {
                out.extend_from_slice(&(part.len() as u32).to_le_bytes());
                out.extend_from_slice(part);
            }
        }
        out
    }

    /// Our own keys.
    pub fn me(&self) -> MemberKeys {
        self.me
    }

    fn credential(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(self.me.credential_bytes()).into(),
            signature_key: self.signer.public().into(),
        }
    }

    fn group(&self, room: &RoomId) -> Result<MlsGroup, MlsError> {
        MlsGroup::load(self.provider.storage(), &GroupId::from_slice(room))
            .map_err(|e| err("cannot read the room's MLS state")(&e))?
            .ok_or_else(|| MlsError("no MLS state for this room".into()))
    }

    fn create_config() -> MlsGroupCreateConfig {
        MlsGroupCreateConfig::builder()
            .ciphersuite(SUITE)
            .use_ratchet_tree_extension(true)
            .build()
    }

    /// A key package to ask a member to add us with (its private keys stay in the
    /// store until the Welcome that uses it).
    pub fn key_package(&self) -> Result<Vec<u8>, MlsError> {
        let kpb = KeyPackage::builder()
            .build(SUITE, &self.provider, &self.signer, self.credential())
            .map_err(|e| err("cannot make a key package")(&e))?;
        MlsMessageOut::from(kpb.key_package().clone())
            .to_bytes()
            .map_err(|e| err("cannot encode a key package")(&e))
    }

    /// A new room with us as its only member.
    pub fn create(&self, room: RoomId) -> Result<(), MlsError> {
        MlsGroup::new_with_group_id(
            &self.provider,
            &self.signer,
            &Self::create_config(),
            GroupId::from_slice(&room),
            self.credential(),
        )
        .map(|_| ())
        .map_err(|e| err("cannot create the room")(&e))
    }

    /// The keys a key package was made for, after checking it (signature, suite, and that
    /// its credential names the key that signed it).
    pub fn check_key_package(&self, bytes: &[u8]) -> Result<(KeyPackage, MemberKeys), MlsError> {
        let msg = MlsMessageIn::tls_deserialize_exact(bytes)
            .map_err(|e| err("malformed key package")(&e))?;
        let MlsMessageBodyIn::KeyPackage(kp) = msg.extract() else {
            return Err(MlsError("not a key package".into()));
        };
        let kp = kp
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| err("invalid key package")(&e))?;
        let leaf = kp.leaf_node();
        let who = MemberKeys::from_credential(leaf.credential())
            .ok_or_else(|| MlsError("a key package without a Chorus identity".into()))?;
        if leaf.signature_key().as_slice() != who.sign {
            return Err(MlsError(
                "a key package signed by another key than its identity's".into(),
            ));
        }
        Ok((kp, who))
    }

    /// Commit adding the owner of `key_package`: (commit, welcome). The commit is pending
    /// until [`Self::merge_own`] (it won its epoch) or another commit is merged.
    pub fn add(&self, room: &RoomId, key_package: &[u8]) -> Result<(Vec<u8>, Vec<u8>), MlsError> {
        let (kp, _) = self.check_key_package(key_package)?;
        let mut g = self.group(room)?;
        let (commit, welcome, _) = g
            .add_members(&self.provider, &self.signer, &[kp])
            .map_err(|e| err("cannot add the member")(&e))?;
        let enc = |m: MlsMessageOut| m.to_bytes().map_err(|e| err("cannot encode")(&e));
        Ok((enc(commit)?, enc(welcome)?))
    }

    /// Commit removing `member`.
    pub fn remove(&self, room: &RoomId, member: &MemberKeys) -> Result<Vec<u8>, MlsError> {
        let mut g = self.group(room)?;
        let leaf = g
            .members()
            .find(|m| MemberKeys::from_credential(&m.credential).as_ref() == Some(member))
            .map(|m| m.index)
            .ok_or_else(|| MlsError("not a member of the room".into()))?;
        let (commit, _, _) = g
            .remove_members(&self.provider, &self.signer, &[leaf])
            .map_err(|e| err("cannot remove the member")(&e))?;
        commit.to_bytes().map_err(|e| err("cannot encode")(&e))
    }

    /// The epoch a commit was made in (read without processing it).
    pub fn commit_epoch(bytes: &[u8]) -> Option<u64> {
        let msg = MlsMessageIn::tls_deserialize_exact(bytes).ok()?;
        let pm = msg.try_into_protocol_message().ok()?;
        Some(pm.epoch().as_u64())
    }

    /// Our own commit came back in its epoch: it won; move to the new epoch.
    pub fn merge_own(&self, room: &RoomId) -> Result<(), MlsError> {
        let mut g = self.group(room)?;
        if g.pending_commit().is_none() {
            return Err(MlsError("no commit of ours is pending".into()));
        }
        g.merge_pending_commit(&self.provider)
            .map_err(|e| err("cannot apply our commit")(&e))
    }

    /// Drop a commit of ours that lost its epoch (if another was not merged over it).
    pub fn drop_own(&self, room: &RoomId) {
        if let Ok(mut g) = self.group(room) {
            let _ = g.clear_pending_commit(self.provider.storage());
        }
    }

    /// Whether a commit of ours waits for its epoch.
    pub fn has_pending(&self, room: &RoomId) -> bool {
        self.group(room)
            .map(|g| g.pending_commit().is_some())
            .unwrap_or(false)
    }

    /// Someone else's commit: check it, let `authorize` see who did what, and merge it
    /// if allowed. A commit for another epoch (it lost to one already merged) or one
    /// that does not verify is an error and changes nothing.
    pub fn apply(
        &self,
        room: &RoomId,
        bytes: &[u8],
        authorize: impl FnOnce(&Applied) -> bool,
    ) -> Result<Applied, MlsError> {
        let mut g = self.group(room)?;
        let msg =
            MlsMessageIn::tls_deserialize_exact(bytes).map_err(|e| err("malformed commit")(&e))?;
        let pm = msg
            .try_into_protocol_message()
            .map_err(|e| err("not a group message")(&e))?;
        let processed = g
            .process_message(&self.provider, pm)
            .map_err(|e| err("commit refused")(&e))?;
        let committer = MemberKeys::from_credential(processed.credential());
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            return Err(MlsError("not a commit".into()));
        };
        let added = staged
            .add_proposals()
            .filter_map(|p| {
                MemberKeys::from_credential(p.add_proposal().key_package().leaf_node().credential())
            })
            .collect();
        let removed = staged
            .remove_proposals()
            .filter_map(|p| g.member(p.remove_proposal().removed()))
            .filter_map(MemberKeys::from_credential)
            .collect();
        let applied = Applied {
            committer,
            added,
            removed,
            we_were_removed: staged.self_removed(),
        };
        if !authorize(&applied) {
            return Err(MlsError("commit not allowed by the room's rules".into()));
        }
        g.merge_staged_commit(&self.provider, *staged)
            .map_err(|e| err("cannot apply the commit")(&e))?;
        Ok(applied)
    }

    /// Join a room from a Welcome; returns its id.
    pub fn join(&self, welcome: &[u8]) -> Result<RoomId, MlsError> {
        let msg = MlsMessageIn::tls_deserialize_exact(welcome)
            .map_err(|e| err("malformed welcome")(&e))?;
        let MlsMessageBodyIn::Welcome(w) = msg.extract() else {
            return Err(MlsError("not a welcome".into()));
        };
        let cfg = MlsGroupJoinConfig::builder()
            .use_ratchet_tree_extension(true)
            .build();
        let g = StagedWelcome::new_from_welcome(&self.provider, &cfg, w, None)
            .and_then(|s| s.into_group(&self.provider))
            .map_err(|e| err("cannot join from the welcome")(&e))?;
        let id = g.group_id().as_slice();
        RoomId::try_from(id).map_err(|_| MlsError("a room id of the wrong length".into()))
    }

    /// The room's current epoch and its envelope keys.
    pub fn room_keys(&self, room: &RoomId) -> Result<(u64, RoomKeys), MlsError> {
        let g = self.group(room)?;
        let secret = g
            .export_secret(
                self.provider.crypto(),
                RoomKeys::EXPORTER_LABEL,
                b"",
                RoomKeys::EXPORTER_BYTES,
            )
            .map_err(|e| err("cannot derive the room's keys")(&e))?;
        Ok((g.epoch().as_u64(), RoomKeys::from_exporter(&secret)))
    }

    /// The room's members now.
    pub fn members(&self, room: &RoomId) -> Result<Vec<MemberKeys>, MlsError> {
        let g = self.group(room)?;
        Ok(g.members()
            .filter_map(|m| MemberKeys::from_credential(&m.credential))
            .collect())
    }

    /// Forget a room we left or were removed from.
    pub fn forget(&self, room: &RoomId) {
        if let Ok(mut g) = self.group(room) {
            let _ = g.delete(self.provider.storage());
        }
    }
}

/// OpenMLS's store as (key, value) pairs.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Read a snapshot: (length, bytes) pairs, every length checked against what is left.
fn decode_snapshot(mut b: &[u8]) -> Result<Entries, MlsError> {
    let bad = || MlsError("the saved MLS state is damaged".into());
    let take = |b: &mut &[u8]| -> Result<Vec<u8>, MlsError> {
        let len: [u8; 4] = b.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
        let len = u32::from_le_bytes(len) as usize;
        let part = b.get(4..4 + len).ok_or_else(bad)?.to_vec();
        *b = &b[4 + len..];
        Ok(part)
    };
    let mut out = Vec::new();
    while !b.is_empty() {
        if out.len() >= MAX_SNAPSHOT_ENTRIES {
            return Err(bad());
        }
        let k = take(&mut b)?;
        let v = take(&mut b)?;
        out.push((k, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
