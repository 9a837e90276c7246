//! The core's vocabulary with the shell: user requests and their answers, the commands
//! the shell executes, and why a request got no answer.
//!
//! [`super::ClientCore`] takes [`UserRequest`]s and request outcomes ([`Failure`]) in,
//! and hands [`Command`]s out; the engine shell (`crate::engine`) is the only other
//! party.

use protocol::wire::{ClientRequest, PublicKeys, ServerIndex};

/// Names a user request, so its answer finds the caller.
pub type Token = u64;
/// Names a request to a server, so its answer finds its job.
pub type RequestId = u64;

/// What the user asks the engine.
#[derive(Clone, Debug)]
pub enum UserRequest {
    /// Queue `text` for `to` (a registered name, or `key:<hex>`).
    Send {
        /// Recipient.
        to: String,
        /// Text.
        text: String,
        /// Send from a one-time reply key.
        anonymous: bool,
    },
    /// Register `name` for our keys.
    Register {
        /// Name.
        name: String,
    },
    /// Look up a name.
    Lookup {
        /// Name.
        name: String,
    },
    /// Look up a fingerprint.
    LookupFingerprint {
        /// Fingerprint bytes.
        fingerprint: [u8; 32],
    },
    /// Something about rooms.
    Room(super::RoomRequest),
    /// Send file `name` (its content `data`) to `to` (a registered name, or
    /// `key:<hex>`).
    SendFile {
        /// Recipient.
        to: String,
        /// File name (its last path component is kept).
        name: String,
        /// Content.
        data: Vec<u8>,
    },
    /// Every file transfer, either way.
    Files,
}

/// The answer to a [`UserRequest`] (errors are sentences for the user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Queued under this outbox id.
    Send(Result<u64, String>),
    /// Registered.
    Register(Result<(), String>),
    /// The keys registered under a name.
    Lookup(Result<Option<PublicKeys>, String>),
    /// Name and keys of a fingerprint's owner.
    LookupFingerprint(Result<Option<(String, PublicKeys)>, String>),
    /// What a room request did (JSON, as the daemon returns it).
    Room(Result<serde_json::Value, String>),
    /// File transfers.
    Files(Result<Vec<crate::store::FileEntry>, String>),
}

/// What the shell must do.
#[derive(Clone, Debug)]
pub enum Command {
    /// Send `req` to server `server`; report the answer, or a failure after `timeout_ms`,
    /// with [`ClientCore::handle_response`].
    Request {
        /// Id to report back.
        id: RequestId,
        /// Server index.
        server: ServerIndex,
        /// The request.
        req: ClientRequest,
        /// Give up after this long.
        timeout_ms: u64,
    },
    /// Hand the answer to the caller of user request `token`.
    Answer {
        /// The request.
        token: Token,
        /// Its answer.
        answer: Answer,
    },
}

/// Why a request got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer within the timeout.
    TimedOut,
    /// The connection reported an error (its text).
    Conn(String),
}
