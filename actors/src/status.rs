//! The `/status` document: Raft role and indexes, the replicated state's round and hash,
//! connected servers, and every actor's mailbox counters. Built on request by
//! [`crate::server::ServerHandle::status`]; read-only.

use std::collections::BTreeMap;

use openraft::RaftMetrics;
use serde::Serialize;

use crate::metrics::ActorStats;
use crate::store::SharedSm;
use crate::types::{NodeId, ServerNode};

/// One actor's counters in `/status`.
#[derive(Serialize, Debug, Clone)]
pub struct ActorStatus {
    /// Messages waiting.
    pub mailbox_depth: i64,
    /// Handled.
    pub handled: u64,
    /// Failed.
    pub failed: u64,
}

/// The `/status` document.
#[derive(Serialize, Debug, Clone)]
pub struct StatusReport {
    /// Our index.
    pub node_id: NodeId,
    /// leader / follower / candidate / learner / shutdown.
    pub role: String,
    /// Known leader.
    pub leader: Option<NodeId>,
    /// Current term.
    pub term: u64,
    /// Last log index.
    pub last_log_index: Option<u64>,
    /// Last applied index.
    pub applied_index: Option<u64>,
    /// Last snapshot index.
    pub snapshot_index: Option<u64>,
    /// Last purged index.
    pub purged_index: Option<u64>,
    /// Connected servers.
    pub peers_connected: Vec<NodeId>,
    /// Open round.
    pub round: u64,
    /// Hex SHA-256 of the replicated state.
    pub state_hash: String,
    /// Commands applied by the state machine.
    pub commands_applied: u64,
    /// Per-actor counters.
    pub actors: BTreeMap<String, ActorStatus>,
}

/// Assemble the report from its sources.
pub fn report(
    me: NodeId,
    m: &RaftMetrics<NodeId, ServerNode>,
    sm: &SharedSm,
    peers_connected: Vec<NodeId>,
    actors: &[ActorStats],
) -> StatusReport {
    let (round, state_hash, commands_applied) = {
        let d = sm.read().unwrap_or_else(|p| p.into_inner());
        (
            d.machine.state().open_round,
            hex::encode(d.machine.state_hash()),
            d.machine.state().applied,
        )
    };
    let actors = actors
        .iter()
        .map(|a| {
            let (mailbox_depth, handled, failed) = a.snapshot();
            (
                a.name().to_string(),
                ActorStatus {
                    mailbox_depth,
                    handled,
                    failed,
                },
            )
        })
        .collect();
    StatusReport {
        node_id: me,
        role: format!("{:?}", m.state).to_lowercase(),
        leader: m.current_leader,
        term: m.current_term,
        last_log_index: m.last_log_index,
        applied_index: m.last_applied.map(|l| l.index),
        snapshot_index: m.snapshot.map(|l| l.index),
        purged_index: m.purged.map(|l| l.index),
        peers_connected,
        round,
        state_hash,
        commands_applied,
        actors,
    }
}
