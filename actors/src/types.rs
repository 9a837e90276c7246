//! openraft type configuration and the messages servers exchange.

use std::io::Cursor;

use protocol::wire::{Command, RejectReason, Round};
use protocol::Effect;
use serde::{Deserialize, Serialize};

/// A server as openraft knows it: its PeerId and libp2p address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerNode {
    /// base58 PeerId.
    pub peer_id: String,
    /// libp2p multiaddr.
    pub addr: String,
}

/// What applying a command returned, sent back to whoever wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// A blank or membership entry.
    #[default]
    Internal,
    /// The command was accepted.
    Ok {
        /// The round it concerned; 0 for commands outside rounds.
        round: Round,
    },
    /// The state machine refused it.
    Rejected(RejectReason),
}

impl From<&Effect> for Applied {
    fn from(e: &Effect) -> Self {
        match e {
            Effect::Rejected(r) => Self::Rejected(r.clone()),
            Effect::Closed { round }
            | Effect::Void { round, .. }
            | Effect::HaveRecorded { round, .. }
            | Effect::Decided { round, .. } => Self::Ok { round: *round },
            Effect::RevealRecorded { round, .. } => Self::Ok { round: *round },
            Effect::Output(o) => Self::Ok { round: o.round },
            Effect::Registered { .. }
            | Effect::Probed { .. }
            | Effect::Initialised
            | Effect::Backup(_)
            | Effect::ConfigMismatch(_) => Self::Ok { round: 0 },
        }
    }
}

openraft::declare_raft_types!(
    /// Chorus's openraft types: commands are [`Command`], node ids are server indices.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = ServerNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// Raft node id = server index.
pub type NodeId = u64;

/// A request on the server-to-server protocol.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Raft AppendEntries.
    Append(openraft::raft::AppendEntriesRequest<TypeConfig>),
    /// Raft RequestVote.
    Vote(openraft::raft::VoteRequest<NodeId>),
    /// Raft InstallSnapshot (one chunk).
    Snapshot(openraft::raft::InstallSnapshotRequest<TypeConfig>),
    /// A follower forwards a command to the leader.
    Forward(Command),
}

/// Result of a forwarded write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardOutcome {
    /// Committed and applied.
    Applied(Applied),
    /// The receiver is not the leader (it may know who is).
    NotLeader(Option<NodeId>),
    /// Could not commit (no quorum, shutting down...).
    Failed(String),
}

/// A response on the server-to-server protocol.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    /// Raft AppendEntries result.
    Append(
        Result<openraft::raft::AppendEntriesResponse<NodeId>, openraft::error::RaftError<NodeId>>,
    ),
    /// Raft RequestVote result.
    Vote(Result<openraft::raft::VoteResponse<NodeId>, openraft::error::RaftError<NodeId>>),
    /// Raft InstallSnapshot result.
    Snapshot(
        Result<
            openraft::raft::InstallSnapshotResponse<NodeId>,
            openraft::error::RaftError<NodeId, openraft::error::InstallSnapshotError>,
        >,
    ),
    /// Forwarded write result.
    Forward(ForwardOutcome),
    /// The request was refused (not a server, malformed...).
    Refused(String),
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// Raft RPCs arrive from the network: random bytes must decode to an error (or a
        /// value), never a panic or an allocation bigger than the input allows.
        #[test]
        fn peer_request_decoder_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let _ = protocol::codec::decode::<PeerRequest>(&bytes);
        }

        #[test]
        fn peer_response_decoder_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let _ = protocol::codec::decode::<PeerResponse>(&bytes);
        }

        /// Mutations of a real forwarded command are refused or decode to some command.
        #[test]
        fn mutated_forwards_do_not_panic(pos in any::<prop::sample::Index>(), bit in 0u8..8, cut in any::<prop::sample::Index>()) {
            let good = protocol::codec::encode(&PeerRequest::Forward(Command::Probe {
                id: 9,
                payload: protocol::bounded::Bytes::new(vec![5u8; 40]).expect("fits"),
            }))
            .expect("encode");
            let mut bad = good.clone();
            let i = pos.index(bad.len());
            bad[i] ^= 1 << bit;
            let _ = protocol::codec::decode::<PeerRequest>(&bad);
            let _ = protocol::codec::decode::<PeerRequest>(&good[..cut.index(good.len())]);
        }
    }
}
