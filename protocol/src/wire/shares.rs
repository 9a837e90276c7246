//! What a client's submission is made of on the wire (round protocol v2): the shares it
//! builds, the one upload each server gets, and the signed lists of held shares servers
//! commit instead of the shares themselves.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ClientId, Round, SealedShare, ServerIndex};
use crate::bounded::{BoundedVec, Bytes, Fixed, Key32, Sig64};
use crate::limits::{MAX_PROOF_SEALED_BYTES, MAX_ROUND_CLIENTS, MAX_SERVERS};
use crate::validity::CHECK_BYTES;

/// A proof share sealed to its server (under its share's key, nonce 1): the tags' masks
/// and the validity proofs ([`crate::validity`]); empty for the round's seed servers,
/// whose proof shares grow from their seeds.
pub type SealedProof = Bytes<MAX_PROOF_SEALED_BYTES>;

/// A client's contribution to one round as it builds it: one sealed share per server,
/// signed over their digests. It never travels whole: server `i` is sent only
/// [`Submission::upload_for`]`(i)`, and the log never holds a share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// The round it is for.
    pub round: Round,
    /// The submitting client.
    pub client: ClientId,
    /// Share `i` is sealed to server `i`.
    pub shares: BoundedVec<SealedShare, MAX_SERVERS>,
    /// Proof share `i` is sealed to server `i` (empty for seed servers).
    pub proofs: BoundedVec<SealedProof, MAX_SERVERS>,
    /// ed25519 signature by `client` over [`Submission::signed_bytes`] of the shares'
    /// and the proofs' digests.
    pub signature: Sig64,
}

/// SHA-256 of one sealed share, as listed in every upload of its submission.
pub fn share_digest(share: &SealedShare) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"chorus/share-digest/v2");
    h.update(share.ephemeral.0);
    h.update((share.ciphertext.len() as u64).to_le_bytes());
    h.update(share.ciphertext.as_slice());
    h.finalize().into()
}

/// SHA-256 of one sealed proof share, as listed in every upload of its submission.
pub fn proof_digest(proof: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"chorus/proof-digest/v1");
    h.update((proof.len() as u64).to_le_bytes());
    h.update(proof);
    h.finalize().into()
}

/// Bytes of the digest of a whole submission as servers list it in `Have`.
pub const SUBMISSION_DIGEST_BYTES: usize = 16;
/// The digest of a whole submission: equal at every server that got a share of the same
/// submission, different (but for a 2^-64 chance) for any other.
pub type SubmissionDigest = Fixed<SUBMISSION_DIGEST_BYTES>;

impl Submission {
    /// The bytes the client signs: domain, round, client, every share's digest and every
    /// proof's digest, in server order.
    pub fn signed_bytes(
        round: Round,
        client: &ClientId,
        digests: &[Key32],
        proofs: &[Key32],
    ) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(b"chorus/submission/v3");
        h.update(round.to_le_bytes());
        h.update(client.0);
        for list in [digests, proofs] {
            h.update((list.len() as u64).to_le_bytes());
            for d in list {
                h.update(d.0);
            }
        }
        h.finalize().to_vec()
    }

    /// Every share's digest, in server order.
    pub fn digests(&self) -> Vec<Key32> {
        self.shares
            .as_slice()
            .iter()
            .map(|s| Fixed(share_digest(s)))
            .collect()
    }

    /// Every proof share's digest, in server order.
    pub fn proof_digests(&self) -> Vec<Key32> {
        self.proofs
            .as_slice()
            .iter()
            .map(|p| Fixed(proof_digest(p.as_slice())))
            .collect()
    }

    /// What server `server` is sent: its share, every digest, the signature.
    pub fn upload_for(&self, server: ServerIndex) -> Option<ShareUpload> {
        self.uploads().into_iter().nth(usize::from(server))
    }

    /// What every server is sent, in server order. The digests are computed once for
    /// all of them: hashing every share again for each server quadrupled a client's
    /// hashing at three servers.
    pub fn uploads(&self) -> Vec<ShareUpload> {
        // As many digests as shares (or proofs), bounded by MAX_SERVERS.
        let Ok(digests) = BoundedVec::new(self.digests()) else {
            return Vec::new();
        };
        let Ok(proof_digests) = BoundedVec::new(self.proof_digests()) else {
            return Vec::new();
        };
        self.shares
            .as_slice()
            .iter()
            .zip(self.proofs.as_slice())
            .enumerate()
            .map(|(i, (share, proof))| ShareUpload {
                round: self.round,
                client: self.client,
                server: i as ServerIndex,
                share: share.clone(),
                proof: proof.clone(),
                digests: digests.clone(),
                proof_digests: proof_digests.clone(),
                signature: self.signature,
            })
            .collect()
    }
}

/// One server's part of a client's submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareUpload {
    /// The round it is for.
    pub round: Round,
    /// The submitting client.
    pub client: ClientId,
    /// The server it is for.
    pub server: ServerIndex,
    /// Its share (or seed), sealed to that server.
    pub share: SealedShare,
    /// Its proof share, sealed under the same key (empty from a seed server's client).
    pub proof: SealedProof,
    /// [`share_digest`] of every server's share, in server order.
    pub digests: BoundedVec<Key32, MAX_SERVERS>,
    /// [`proof_digest`] of every server's proof share, in server order.
    pub proof_digests: BoundedVec<Key32, MAX_SERVERS>,
    /// ed25519 signature by `client` over [`Submission::signed_bytes`].
    pub signature: Sig64,
}

impl ShareUpload {
    /// Check the signature against the client key.
    pub fn signature_valid(&self) -> bool {
        keys::identity::verify_ed25519(&self.client.0, &self.signed_bytes(), &self.signature.0)
    }

    fn signed_bytes(&self) -> Vec<u8> {
        Submission::signed_bytes(
            self.round,
            &self.client,
            self.digests.as_slice(),
            self.proof_digests.as_slice(),
        )
    }

    /// The digest of the whole submission, which servers compare in `Have` lists.
    pub fn submission_digest(&self) -> SubmissionDigest {
        let full = self.signed_bytes();
        let mut d = [0u8; SUBMISSION_DIGEST_BYTES];
        d.copy_from_slice(&full[..SUBMISSION_DIGEST_BYTES]);
        Fixed(d)
    }
}

/// What a server reports of a client's validity proof: its verifier shares and
/// consistency tags ([`crate::validity::query`]).
pub type ProofCheck = Fixed<CHECK_BYTES>;

/// One client in a server's `Have` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HeldEntry {
    /// The client.
    pub client: ClientId,
    /// [`ShareUpload::submission_digest`] of the submission whose share the server holds.
    pub digest: SubmissionDigest,
    /// This server's check of the client's proof.
    pub check: ProofCheck,
}

/// A server's statement, after `Close(round)`: the clients whose share of `round` it
/// opened and checked against their submission's digests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Have {
    /// The round.
    pub round: Round,
    /// The server.
    pub server: ServerIndex,
    /// Clients in strictly increasing order (one entry each).
    pub clients: BoundedVec<HeldEntry, MAX_ROUND_CLIENTS>,
    /// ed25519 signature by the server over [`Have::signed_bytes`].
    pub signature: Sig64,
}

impl Have {
    /// The bytes a server signs: domain, round, server and a hash of the list.
    pub fn signed_bytes(round: Round, server: ServerIndex, clients: &[HeldEntry]) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(b"chorus/have/v2");
        h.update(round.to_le_bytes());
        h.update(server.to_le_bytes());
        h.update((clients.len() as u64).to_le_bytes());
        for e in clients {
            h.update(e.client.0);
            h.update(e.digest.0);
            h.update(e.check.0);
        }
        h.finalize().to_vec()
    }

    /// Build and sign a list (sorted and deduplicated here).
    pub fn new(
        round: Round,
        server: ServerIndex,
        mut clients: Vec<HeldEntry>,
        identity: &keys::Identity,
    ) -> Result<Self, crate::bounded::TooLong> {
        clients.sort();
        clients.dedup_by_key(|e| e.client);
        let signature = Fixed(identity.sign(&Self::signed_bytes(round, server, &clients)));
        Ok(Self {
            round,
            server,
            clients: BoundedVec::new(clients)?,
            signature,
        })
    }

    /// Check the signature against the server's ed25519 key.
    pub fn signature_valid(&self, server_key: &[u8; 32]) -> bool {
        keys::identity::verify_ed25519(
            server_key,
            &Self::signed_bytes(self.round, self.server, self.clients.as_slice()),
            &self.signature.0,
        )
    }
}
