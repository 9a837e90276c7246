//! Wire types: what clients and servers send each other and what Raft commits.
//!
//! Every variable-length field has its limit in its type (see [`crate::bounded`]).
//! Signatures always cover a domain-separated, canonical byte string built here, so a
//! signature for one purpose can never be replayed as another.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bounded::{BoundedVec, Bytes, Fixed, Key32, Sig64};
use crate::limits::{
    MAX_DIRECTORY_PAGE, MAX_HISTORY_OUTPUTS, MAX_NAME_BYTES, MAX_PROBE_BYTES,
    MAX_SEALED_SHARE_BYTES, MAX_SERVERS, MAX_SHARE_BYTES,
};

mod output;
mod reject;
mod shares;
pub use output::{OutputSlot, RoundOutput};
pub use reject::RejectReason;
pub use shares::{
    proof_digest, share_digest, Have, HeldEntry, ProofCheck, SealedProof, ShareUpload, Submission,
    SubmissionDigest, SUBMISSION_DIGEST_BYTES,
};

/// A round number. Rounds start at 1 and only grow.
pub type Round = u64;
/// A server's index `i` in the configured list (Shamir x-coordinate `i + 1`).
pub type ServerIndex = u16;
/// A client is named by its ed25519 public key.
pub type ClientId = Key32;

/// One share of a client's vector, sealed to one server's x25519 key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedShare {
    /// The sender's ephemeral x25519 public key for this share.
    pub ephemeral: Key32,
    /// ChaCha20-Poly1305 ciphertext of the share (encoded field elements) or, for the
    /// round's seed servers, of a 32-byte seed; plus the 16-byte tag.
    pub ciphertext: Bytes<MAX_SEALED_SHARE_BYTES>,
}

/// A server's aggregated share for a decided round: the sum of its shares of the
/// included clients (`Sum(r, i, ·)` in the design).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reveal {
    /// The round.
    pub round: Round,
    /// The revealing server.
    pub server: ServerIndex,
    /// Sum of the server's shares of every included client (encoded field
    /// elements, [`crate::field`]).
    pub sum: Bytes<MAX_SHARE_BYTES>,
    /// ed25519 signature by the revealing server over [`Reveal::signed_bytes`]: a reveal
    /// is bound to the server that made it, so no server can reveal under another's
    /// index, and a wrong sum is evidence against its signer.
    pub signature: Sig64,
}

impl Reveal {
    /// The bytes a server signs: domain, round, server index and the sum's hash.
    pub fn signed_bytes(round: Round, server: ServerIndex, sum: &[u8]) -> Vec<u8> {
        let mut v = b"chorus/reveal/v1".to_vec();
        v.extend_from_slice(&round.to_le_bytes());
        v.extend_from_slice(&server.to_le_bytes());
        v.extend_from_slice(&Sha256::digest(sum));
        v
    }

    /// Build and sign a reveal with the server's identity.
    pub fn new(
        round: Round,
        server: ServerIndex,
        sum: Bytes<MAX_SHARE_BYTES>,
        identity: &keys::Identity,
    ) -> Self {
        let signature = Fixed(identity.sign(&Self::signed_bytes(round, server, sum.as_slice())));
        Self {
            round,
            server,
            sum,
            signature,
        }
    }

    /// Check the signature against the server's ed25519 key.
    pub fn signature_valid(&self, server_key: &[u8; 32]) -> bool {
        keys::identity::verify_ed25519(
            server_key,
            &Self::signed_bytes(self.round, self.server, self.sum.as_slice()),
            &self.signature.0,
        )
    }
}

/// A server's statement "round `round` produced the output with hash `output_hash`".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputVouch {
    /// The round.
    pub round: Round,
    /// [`RoundOutput::hash`].
    pub output_hash: Key32,
    /// The signing server.
    pub server: ServerIndex,
    /// ed25519 signature by the server over [`OutputVouch::signed_bytes`].
    pub signature: Sig64,
}

impl OutputVouch {
    /// The bytes a server signs.
    pub fn signed_bytes(round: Round, output_hash: &[u8; 32]) -> Vec<u8> {
        let mut v = b"chorus/vouch/v1".to_vec();
        v.extend_from_slice(&round.to_le_bytes());
        v.extend_from_slice(output_hash);
        v
    }

    /// Check the signature against the server's ed25519 key.
    pub fn signature_valid(&self, server_key: &[u8; 32]) -> bool {
        keys::identity::verify_ed25519(
            server_key,
            &Self::signed_bytes(self.round, &self.output_hash.0),
            &self.signature.0,
        )
    }
}

/// A round output with one server's vouch, as broadcast on gossipsub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOutput {
    /// The output.
    pub output: RoundOutput,
    /// One server's signature over its hash.
    pub vouch: OutputVouch,
}

/// A registered user's public keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKeys {
    /// ed25519 (also the client id).
    pub sign: Key32,
    /// x25519 (slots are sealed to it).
    pub dh: Key32,
}

impl PublicKeys {
    /// From a key-crate identity.
    pub fn from_identity(p: &keys::PublicIdentity) -> Self {
        Self {
            sign: Fixed(p.sign),
            dh: Fixed(p.dh),
        }
    }
    /// To a key-crate identity.
    pub fn to_identity(&self) -> keys::PublicIdentity {
        keys::PublicIdentity {
            sign: self.sign.0,
            dh: self.dh.0,
        }
    }
}

/// Claim a name in the directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    /// The name (UTF-8, at most [`MAX_NAME_BYTES`] bytes).
    pub name: Bytes<MAX_NAME_BYTES>,
    /// The keys the name points to.
    pub keys: PublicKeys,
    /// ed25519 signature by `keys.sign` over [`Register::signed_bytes`].
    pub signature: Sig64,
    /// XEdDSA signature by `keys.dh` over the same bytes: proves possession of the
    /// x25519 key, so nobody can register someone else's key under their own name.
    pub dh_proof: Sig64,
}

impl Register {
    /// The bytes a registering client signs.
    pub fn signed_bytes(name: &[u8], keys: &PublicKeys) -> Vec<u8> {
        let mut v = b"chorus/register/v1".to_vec();
        v.extend_from_slice(&(name.len() as u64).to_le_bytes());
        v.extend_from_slice(name);
        v.extend_from_slice(&keys.sign.0);
        v.extend_from_slice(&keys.dh.0);
        v
    }
    /// Build and sign a registration.
    pub fn new(name: &str, identity: &keys::Identity) -> Result<Self, crate::bounded::TooLong> {
        let keys = PublicKeys::from_identity(&identity.public());
        let name = Bytes::new(name.as_bytes().to_vec())?;
        let signed = Self::signed_bytes(name.as_slice(), &keys);
        Ok(Self {
            name,
            keys,
            signature: Fixed(identity.sign(&signed)),
            dh_proof: Fixed(identity.sign_with_dh(&signed)),
        })
    }
    /// Check the ed25519 signature.
    pub fn signature_valid(&self) -> bool {
        keys::identity::verify_ed25519(
            &self.keys.sign.0,
            &Self::signed_bytes(self.name.as_slice(), &self.keys),
            &self.signature.0,
        )
    }
    /// Check the proof of possession of the x25519 key.
    pub fn dh_proof_valid(&self) -> bool {
        keys::identity::verify_xeddsa(
            &self.keys.dh.0,
            &Self::signed_bytes(self.name.as_slice(), &self.keys),
            &self.dh_proof.0,
        )
    }
}

/// A replicated command: the application data of every Raft log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// The leader closes the open round (its deadline passed).
    Close {
        /// The round to close; must be the open one.
        round: Round,
    },
    /// A server's list of the clients whose share of a closed round it holds.
    Have(Have),
    /// The leader stops waiting for `Have` lists of a closed round: the round is decided
    /// with the lists in (or void if fewer than t + 1 servers sent one).
    Decide {
        /// The round.
        round: Round,
    },
    /// A serving server's aggregated share of a decided round.
    Reveal(Reveal),
    /// The leader gives up waiting for more reveals of a closed round: decode from the
    /// reveals in, or void the round if they disagree (see [`crate::robust`]).
    Finalize {
        /// The round.
        round: Round,
    },
    /// Claim a name.
    Register(Register),
    /// The cluster's parameters and admission list, committed once when the cluster is
    /// initialised; every node compares them with its own configuration.
    Init(Box<crate::params::Params>),
    /// Opaque payload with no effect but to be committed (benchmarks and consensus tests,
    /// through the admin endpoint only; clients cannot send it).
    Probe {
        /// Caller's id for the probe.
        id: u64,
        /// Payload.
        payload: Bytes<MAX_PROBE_BYTES>,
    },
    /// Key backup: a registration, a server's count, an epoch key or a refresh deal.
    Backup(Box<crate::backup::BackupCommand>),
}

/// What a client asks a server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientRequest {
    /// This server's share of a submission for the open round (or one just ahead).
    Share(ShareUpload),
    /// Register a name.
    Register(Register),
    /// Registrations from position `from` of the directory on, in the order they were
    /// committed (at most [`MAX_DIRECTORY_PAGE`]). Clients keep the whole directory and
    /// resolve names locally: there is deliberately no request that looks up one name or
    /// key, since whom a client asks about is whom it talks to.
    Directory {
        /// First position wanted (the number of entries the client already holds).
        from: u64,
    },
    /// Outputs of rounds from `from_round` on (at most [`MAX_HISTORY_OUTPUTS`]).
    History {
        /// First round wanted.
        from_round: Round,
    },
    /// Cluster and round status.
    Status,
    /// The backup epoch and keys, and the backup `name` if given (a restore asks by
    /// name: this request tells the server which user is restoring).
    BackupInfo {
        /// The backup asked about.
        name: Option<crate::backup::BackupName>,
    },
    /// Store a backup (through the log).
    BackupCreate(Box<crate::backup::Registration>),
    /// Evaluate the passphrase OPRF on a blinded input; the server counts a guess
    /// through the log first.
    BackupEval {
        /// The backup.
        name: crate::backup::BackupName,
        /// Its version.
        version: u64,
        /// `r·H(name, passphrase)`.
        blinded: Key32,
    },
    /// Show this server's tag; the right one gets its share of `K`, sealed to `reply_to`.
    BackupUnlock {
        /// The backup.
        name: crate::backup::BackupName,
        /// Its version.
        version: u64,
        /// This server's tag.
        tag: Key32,
        /// A one-time x25519 key to seal the share to.
        reply_to: Key32,
    },
}

impl ClientRequest {
    /// The request's kind, as servers count it in `chorus_client_requests_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Share(_) => "submit",
            Self::Register(_) => "register",
            Self::Directory { .. } => "directory",
            Self::History { .. } => "history",
            Self::Status => "status",
            Self::BackupInfo { .. } => "backup_info",
            Self::BackupCreate(_) => "backup_create",
            Self::BackupEval { .. } => "backup_eval",
            Self::BackupUnlock { .. } => "backup_unlock",
        }
    }
}

/// Cluster status as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// The answering server.
    pub server: ServerIndex,
    /// Known Raft leader, if any.
    pub leader: Option<ServerIndex>,
    /// The open round.
    pub open_round: Round,
    /// Last revealed round, if any.
    pub last_revealed: Option<Round>,
    /// Participants of the last closed round.
    pub last_participants: u32,
    /// The last closed round.
    pub last_closed: Option<Round>,
    /// Recent void rounds (too few participants, or abandoned).
    pub recent_void: BoundedVec<Round, 64>,
}

/// A server's answer to a [`ClientRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientResponse {
    /// Committed and accepted into `round`.
    Accepted {
        /// The round.
        round: Round,
    },
    /// Committed but refused by the state machine, or refused before commit.
    Rejected(RejectReason),
    /// A page of the directory: the registrations at positions `from..from + len`.
    Directory {
        /// Self-signed registrations, in commit order.
        entries: BoundedVec<Register, MAX_DIRECTORY_PAGE>,
        /// Registrations this server has applied in all.
        total: u64,
    },
    /// Outputs with this server's vouches; `oldest_kept` tells of any gap.
    History {
        /// Outputs in round order.
        outputs: BoundedVec<SignedOutput, MAX_HISTORY_OUTPUTS>,
        /// Oldest round still retained.
        oldest_kept: Option<Round>,
        /// Every round up to this one is settled on this server (revealed or void), so
        /// a round up to it that the page does not hold has no output.
        settled_through: Option<Round>,
    },
    /// Status.
    Status(StatusInfo),
    /// The request could not be served right now (no leader, overloaded…).
    Unavailable(Bytes<256>),
    /// The request was malformed.
    Malformed(Bytes<256>),
    /// The backup epoch, keys and the backup asked about.
    Backup(Box<crate::backup::BackupView>),
    /// This server's OPRF evaluation and the commitments it is proved against.
    BackupEvaluated {
        /// `k_i·B` with its proof.
        eval: crate::backup::oprf::Evaluation,
        /// The OPRF key's commitments the proof is against.
        oprf_commitments: BoundedVec<Key32, MAX_SERVERS>,
        /// Guesses this server has counted (this one included).
        guesses: u32,
        /// Wrong guesses it allows.
        limit: u32,
    },
    /// This server's share of `K`, sealed to the client's one-time key.
    BackupShare {
        /// The sealed share.
        sealed: Fixed<{ crate::backup::SHARE_REPLY_BYTES }>,
        /// The commitments it lies on.
        key_commitments: BoundedVec<Key32, MAX_SERVERS>,
    },
}
