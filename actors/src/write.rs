//! The commit path: every command a server originates or relays (client writes, closes,
//! reveals) reaches the Raft log through [`write`].
//!
//! ```text
//!  caller ─write(cmd)─► raft.client_write ─(we lead)──────────────► Applied
//!                              └─ForwardToLeader(l)─► net.request(l, Forward) ─► Applied
//! ```
//! Retries are bounded ([`ATTEMPTS`], with doubling delays) so that a write outlives one
//! election but never spins for ever.

use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::Raft;
use protocol::wire::Command;

use crate::net::NetHandle;
use crate::types::{Applied, ForwardOutcome, NodeId, PeerRequest, PeerResponse, TypeConfig};

/// Attempts before giving up; with delays doubling from 50 ms to 500 ms this spans about
/// 8 s, more than one election (`election_max_ms`).
pub const ATTEMPTS: u32 = 20;
/// First delay between attempts.
const FIRST_DELAY: Duration = Duration::from_millis(50);
/// Longest delay between attempts.
const MAX_DELAY: Duration = Duration::from_millis(500);

/// Why one attempt of a write failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    /// Nobody is known to lead (an election is under way).
    #[error("no leader known")]
    NoLeader,
    /// The leader could not be reached or did not answer.
    #[error("leader {leader} unreachable: {why}")]
    LeaderUnreachable {
        /// The leader we tried.
        leader: NodeId,
        /// What the network said.
        why: String,
    },
    /// The leader answered but did not commit.
    #[error("leader {leader} refused the forwarded write: {why}")]
    Forward {
        /// The leader we asked.
        leader: NodeId,
        /// Its answer.
        why: String,
    },
    /// Our own Raft refused (shutting down, storage error, ...).
    #[error("raft: {0}")]
    Raft(String),
}

/// A write that did not commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not committed after {attempts} attempts; last: {last}")]
pub struct WriteError {
    /// Attempts made.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last: AttemptError,
}

/// Commit `cmd`, forwarding to the leader when we are not it, with bounded retries.
pub async fn write(
    raft: &Raft<TypeConfig>,
    net: &NetHandle,
    cmd: Command,
) -> Result<Applied, WriteError> {
    let mut delay = FIRST_DELAY;
    let mut last = AttemptError::NoLeader;
    for _ in 0..ATTEMPTS {
        match attempt(raft, net, &cmd).await {
            Ok(applied) => return Ok(applied),
            Err(e) => last = e,
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_DELAY);
    }
    Err(WriteError {
        attempts: ATTEMPTS,
        last,
    })
}

async fn attempt(
    raft: &Raft<TypeConfig>,
    net: &NetHandle,
    cmd: &Command,
) -> Result<Applied, AttemptError> {
    match raft.client_write(cmd.clone()).await {
        Ok(resp) => Ok(resp.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            let leader = f.leader_id.ok_or(AttemptError::NoLeader)?;
            match net.request(leader, PeerRequest::Forward(cmd.clone())).await {
                Ok(PeerResponse::Forward(ForwardOutcome::Applied(a))) => Ok(a),
                Ok(PeerResponse::Forward(ForwardOutcome::Failed(why))) => {
                    Err(AttemptError::Forward { leader, why })
                }
                Ok(other) => Err(AttemptError::Forward {
                    leader,
                    why: format!("answered {other:?}"),
                }),
                Err(e) => Err(AttemptError::LeaderUnreachable {
                    leader,
                    why: e.to_string(),
                }),
            }
        }
        Err(e) => Err(AttemptError::Raft(e.to_string())),
    }
}
