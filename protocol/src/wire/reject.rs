//! Why a command or request was refused: one named reason each, for metrics and for the
//! client's error.

use serde::{Deserialize, Serialize};

use super::{Round, ServerIndex};

/// Why a submission, reveal or registration was refused. Each reason is named so it
/// shows in metrics and in the client's error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RejectReason {
    /// For a round already closed (including replays of old submissions).
    #[error("stale round {got}: round {open} is open")]
    StaleRound {
        /// The round in the submission.
        got: Round,
        /// The open round.
        open: Round,
    },
    /// For a round not yet open.
    #[error("future round {got}: round {open} is open")]
    FutureRound {
        /// The round in the submission.
        got: Round,
        /// The open round.
        open: Round,
    },
    /// The client already has a submission in this round (a replay or a second try).
    #[error("duplicate submission: this client already submitted in round {round}")]
    DuplicateSubmission {
        /// The round.
        round: Round,
    },
    /// The signature does not verify against the claimed client key.
    #[error("bad signature")]
    BadSignature,
    /// Admission policy is `listed` and this client is not listed.
    #[error("unknown client")]
    UnknownClient,
    /// Not one share per server.
    #[error("wrong share count: expected {expected}, got {got}")]
    WrongShareCount {
        /// n.
        expected: u32,
        /// Shares in the submission.
        got: u32,
    },
    /// A share's ciphertext has the wrong length for `S * L`.
    #[error("wrong share size: expected {expected} bytes, got {got}")]
    WrongShareSize {
        /// Expected ciphertext bytes.
        expected: u32,
        /// Actual.
        got: u32,
    },
    /// A reveal for a round that is not decided, is void, or already revealed.
    #[error("round {round} is not awaiting reveals")]
    NotAwaitingReveal {
        /// The round.
        round: Round,
    },
    /// A server revealed twice for a round.
    #[error("server {server} already revealed round {round}")]
    DuplicateReveal {
        /// The round.
        round: Round,
        /// The server.
        server: ServerIndex,
    },
    /// A reveal from a server index outside the configured set.
    #[error("unknown server {0}")]
    UnknownServer(ServerIndex),
    /// Close for a round that is not the open one.
    #[error("cannot close round {got}: round {open} is open")]
    WrongClose {
        /// The round in the command.
        got: Round,
        /// The open round.
        open: Round,
    },
    /// Name taken by another key.
    #[error("name already taken")]
    NameTaken,
    /// These keys already registered another name.
    #[error("keys already registered under another name")]
    KeysTaken,
    /// Name outside the safe set (see [`crate::names`]).
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// The registration does not prove possession of its x25519 key.
    #[error("the registration does not prove possession of its x25519 key")]
    BadKeyProof,
    /// The open policy's per-round registration cap is reached; try a later round.
    #[error("registrations for round {round} are full ({cap} per round); try again")]
    RegistrationsBusy {
        /// The open round.
        round: Round,
        /// The cap.
        cap: u32,
    },
    /// The open policy's total registration cap is reached.
    #[error("the directory is full ({cap} names)")]
    DirectoryFull {
        /// The cap.
        cap: u64,
    },
    /// Finalize for a round that has fewer than t+1 reveals.
    #[error("round {round} has {got} reveals, {needed} needed")]
    TooFewReveals {
        /// The round.
        round: Round,
        /// Reveals in.
        got: u32,
        /// t + 1.
        needed: u32,
    },
    /// A configuration differs from the one committed at initialisation.
    #[error("configuration differs from the cluster's: {0}")]
    ConfigMismatch(String),
    /// A revealed sum holds a word that is not a field element (p or larger).
    #[error("the sum is not canonical field elements")]
    NotFieldElements,
    /// An upload sent to a server other than the one it is for.
    #[error("this share is for server {0}")]
    WrongServer(ServerIndex),
    /// Not one digest per server in an upload.
    #[error("wrong digest count: expected {expected}, got {got}")]
    WrongDigestCount {
        /// n.
        expected: u32,
        /// Digests in the upload.
        got: u32,
    },
    /// The share does not match its digest in the signed list.
    #[error("the share does not match its signed digest")]
    DigestMismatch,
    /// The share did not open, or opened to something that is not a share.
    #[error("the share does not open for this server")]
    ShareDoesNotOpen,
    /// A `Have` or `Decide` for a round that is not closed and undecided.
    #[error("round {round} is not awaiting lists of held shares")]
    NotAwaitingHaves {
        /// The round.
        round: Round,
    },
    /// A server sent two `Have` lists for one round.
    #[error("server {server} already listed its shares of round {round}")]
    DuplicateHave {
        /// The round.
        round: Round,
        /// The server.
        server: ServerIndex,
    },
    /// A `Have` list not in strictly increasing client order.
    #[error("the list of held shares is not in strictly increasing client order")]
    UnorderedHave,
    /// The server holds as many shares of this round as it will.
    #[error("round {round} is full here ({cap} clients); try the next round")]
    RoundFull {
        /// The round.
        round: Round,
        /// Clients held per round.
        cap: u32,
    },
    /// A reveal from a server outside the round's serving set.
    #[error("server {server} is not serving round {round}")]
    NotServing {
        /// The round.
        round: Round,
        /// The server.
        server: ServerIndex,
    },
    /// A sealed proof share of the wrong length (none from a seed server's client).
    #[error("wrong proof size: expected {expected} bytes, got {got}")]
    WrongProofSize {
        /// Expected ciphertext bytes.
        expected: u32,
        /// Actual.
        got: u32,
    },
    /// The client was excluded for bad proofs or inconsistent shares too often lately.
    #[error("cooling off after repeated invalid submissions: refused until round {until}")]
    CoolingOff {
        /// The first round it may submit to again.
        until: Round,
    },
    /// A backup command or request was refused.
    #[error("{0}")]
    Backup(crate::backup::book::BackupRefusal),
}

impl RejectReason {
    /// A short stable label for metrics (`reason="bad_signature"`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::StaleRound { .. } => "stale_round",
            Self::FutureRound { .. } => "future_round",
            Self::DuplicateSubmission { .. } => "duplicate_submission",
            Self::BadSignature => "bad_signature",
            Self::UnknownClient => "unknown_client",
            Self::WrongShareCount { .. } => "wrong_share_count",
            Self::WrongShareSize { .. } => "wrong_share_size",
            Self::NotAwaitingReveal { .. } => "not_awaiting_reveal",
            Self::DuplicateReveal { .. } => "duplicate_reveal",
            Self::UnknownServer(_) => "unknown_server",
            Self::WrongClose { .. } => "wrong_close",
            Self::NameTaken => "name_taken",
            Self::KeysTaken => "keys_taken",
            Self::InvalidName(_) => "invalid_name",
            Self::BadKeyProof => "bad_key_proof",
            Self::RegistrationsBusy { .. } => "registrations_busy",
            Self::DirectoryFull { .. } => "directory_full",
            Self::TooFewReveals { .. } => "too_few_reveals",
            Self::ConfigMismatch(_) => "config_mismatch",
            Self::NotFieldElements => "not_field_elements",
            Self::WrongServer(_) => "wrong_server",
            Self::WrongDigestCount { .. } => "wrong_digest_count",
            Self::DigestMismatch => "digest_mismatch",
            Self::ShareDoesNotOpen => "share_does_not_open",
            Self::NotAwaitingHaves { .. } => "not_awaiting_haves",
            Self::DuplicateHave { .. } => "duplicate_have",
            Self::UnorderedHave => "unordered_have",
            Self::NotServing { .. } => "not_serving",
            Self::RoundFull { .. } => "round_full",
            Self::WrongProofSize { .. } => "wrong_proof_size",
            Self::CoolingOff { .. } => "cooling_off",
            Self::Backup(b) => b.label(),
        }
    }
}
