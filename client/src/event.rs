//! What the engine reports to its user (chat-cli, the desktop app, the test harnesses).
//!
//! The core ([`crate::core::ClientCore`]) produces these; the engine shell forwards them
//! on a bounded channel. `chat-cli --json` prints them with their `Serialize` form, which
//! scripts read: keep field names stable.

use protocol::wire::Round;
use serde::Serialize;

use crate::delivery::Delivery;

/// What the engine reports.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A message arrived.
    Message {
        /// Sender's name (or key prefix when unknown).
        from: String,
        /// Text.
        text: String,
        /// Round it arrived in.
        round: Round,
        /// Sender's clock.
        timestamp_ms: u64,
        /// From the sender queueing it to us decrypting it (both clocks; same machine in
        /// tests and demos).
        latency_ms: u64,
        /// The sender hid behind a one-time reply key.
        anonymous: bool,
        /// Address for a reply (`key:<hex>`; works for anonymous senders too).
        reply_to: String,
    },
    /// A post on the public board (it names no sender).
    Board {
        /// Text.
        text: String,
        /// Round it appeared in.
        round: Round,
        /// The poster's clock.
        timestamp_ms: u64,
    },
    /// A message in a room.
    RoomMessage {
        /// The room's name.
        room: String,
        /// The member who wrote it.
        from: String,
        /// Text.
        text: String,
        /// Round it appeared in.
        round: Round,
        /// The sender's clock.
        timestamp_ms: u64,
    },
    /// Something happened in a room (a request, a join, a removal, a rename).
    RoomNotice {
        /// The room's name.
        room: String,
        /// What, in words.
        notice: String,
        /// Round it appeared in.
        round: Round,
    },
    /// An outgoing message changed state.
    State {
        /// Outbox id.
        id: u64,
        /// Recipient.
        to: String,
        /// Where it stands (serialized as the `state`, `round` and `reason` fields).
        #[serde(flatten)]
        delivery: Delivery,
        /// Slots the message takes.
        fragments: usize,
    },
    /// A server connection came up.
    ServerUp {
        /// Index.
        server: u16,
    },
    /// A server connection went down.
    ServerDown {
        /// Index.
        server: u16,
    },
    /// A round's output was accepted.
    Round {
        /// Round.
        round: Round,
        /// Anonymity set size.
        participants: u32,
        /// Known leader.
        leader: Option<u16>,
        /// Hex SHA-256 of the output, as f+1 servers vouched for it (clients can compare).
        hash: String,
    },
    /// Rounds that the servers no longer keep: messages in them are lost to us.
    Gap {
        /// First missing round.
        from_round: Round,
        /// Last missing round.
        to_round: Round,
    },
    /// Something went wrong that the user should know.
    Error {
        /// What.
        message: String,
    },
    /// A file transfer moved: a chunk sent or received, finished, failed or refused.
    File {
        /// The transfer and how far it is.
        #[serde(flatten)]
        file: FileProgress,
    },
}

/// How far a file transfer is.
#[derive(Clone, Debug, Serialize)]
pub struct FileProgress {
    /// The transfer (its key left out).
    #[serde(flatten)]
    pub entry: crate::store::FileEntry,
    /// Content bytes done.
    pub done_bytes: u64,
    /// Rounds still needed at the pace so far, once there is a pace.
    pub eta_rounds: Option<u64>,
}

impl Event {
    /// The event for a transfer's record.
    pub fn file(entry: &crate::store::FileEntry, eta_rounds: Option<u64>) -> Self {
        let mut entry = entry.clone();
        entry.key = None;
        Event::File {
            file: FileProgress {
                done_bytes: entry.done_bytes(),
                entry,
                eta_rounds,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{FailReason, RetryReason};

    #[test]
    fn state_json_has_the_shape_scripts_read() {
        let ev = Event::State {
            id: 7,
            to: "bob".into(),
            delivery: Delivery::Failed {
                round: 12,
                reason: FailReason::GaveUp {
                    attempts: 8,
                    last: RetryReason::Lost,
                },
            },
            fragments: 2,
        };
        let line = serde_json::to_string(&ev).unwrap_or_default();
        assert_eq!(
            line,
            r#"{"event":"state","id":7,"to":"bob","state":"failed","round":12,"reason":"gave up after 8 tries; last: round produced no output","fragments":2}"#
        );
        let sent = serde_json::to_string(&Event::State {
            id: 1,
            to: "x".into(),
            delivery: Delivery::Sent(3),
            fragments: 1,
        })
        .unwrap_or_default();
        assert_eq!(
            sent,
            r#"{"event":"state","id":1,"to":"x","state":"sent","round":3,"reason":null,"fragments":1}"#
        );
    }
}
