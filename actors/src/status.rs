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
    /// How round outputs were reached, from the replicated state (equal on every node).
    pub outputs: OutputsStatus,
    /// Key backup, from the replicated state (equal on every node).
    pub backup: BackupStatus,
}

/// Key backup as the replicated state has it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupStatus {
    /// The refresh epoch.
    pub epoch: u64,
    /// Backups stored.
    pub backups: usize,
    /// Servers that have published an epoch key.
    pub keys_published: usize,
    /// Servers whose deal for this epoch is complete.
    pub dealt_this_epoch: Vec<u16>,
    /// Refresh deal parts applied, in all.
    pub deal_parts: u64,
}

/// How round outputs were reached: the servers whose reveals disagreed with the rest
/// are named here, on every node.
#[derive(Debug, Clone, Serialize)]
pub struct OutputsStatus {
    /// Whether the cluster's parameters are committed (`Init` applied).
    pub parameters_committed: bool,
    /// Servers whose reveal was off the agreed polynomial: index → rounds, last round.
    pub dissenting_servers: BTreeMap<u16, DissentStatus>,
    /// Rounds voided because their reveals disagreed beyond correction.
    pub inconsistent_rounds: u64,
    /// Outputs decoded from exactly t+1 reveals, with nothing to check them against.
    pub unchecked_outputs: u64,
}

/// One dissenting server.
#[derive(Debug, Clone, Serialize)]
pub struct DissentStatus {
    /// Rounds in which its reveal disagreed.
    pub rounds: u64,
    /// The last such round.
    pub last_round: u64,
}

/// Assemble the report from its sources.
pub fn report(
    me: NodeId,
    m: &RaftMetrics<NodeId, ServerNode>,
    sm: &SharedSm,
    peers_connected: Vec<NodeId>,
    actors: &[ActorStats],
) -> StatusReport {
    let (round, state_hash, commands_applied, outputs, backup) = {
        let d = sm.read().unwrap_or_else(|p| p.into_inner());
        let s = d.machine.state();
        let outputs = OutputsStatus {
            parameters_committed: s.genesis.is_some(),
            dissenting_servers: s
                .dissent
                .iter()
                .map(|(i, d)| {
                    (
                        *i,
                        DissentStatus {
                            rounds: d.rounds,
                            last_round: d.last_round,
                        },
                    )
                })
                .collect(),
            inconsistent_rounds: s.inconsistent_rounds,
            unchecked_outputs: s.unchecked_outputs,
        };
        let b = &s.backups;
        let backup = BackupStatus {
            epoch: b.epoch,
            backups: b.records.len(),
            keys_published: b.keys.len(),
            dealt_this_epoch: b.dealt.iter().copied().collect(),
            deal_parts: b.deals,
        };
        (
            s.open_round,
            hex::encode(d.machine.state_hash()),
            s.applied,
            outputs,
            backup,
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
        outputs,
        backup,
    }
}
