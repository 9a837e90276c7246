//! What a server answers to each client call (all but history, which the broadcaster
//! serves). Called by the consensus actor, one tokio task per call, never on the actix
//! thread.
//!
//! Writes (submissions, registrations) go through [`crate::write`]; reads (directory
//! lookups, status) come from this node's applied state. Nothing a client sends reaches
//! the log unless the state machine would accept it as this node sees the state now: a
//! submission for a round this node has not opened yet is held until it has (it may be
//! a close behind the leader), never written early.

use std::time::{Duration, Instant};

use openraft::Raft;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use protocol::bounded::{BoundedVec, Bytes};
use protocol::wire::{ClientRequest, ClientResponse, Command, RejectReason, StatusInfo};
use protocol::Params;

use crate::in_flight::InFlight;
use crate::metrics::{ActorStats, ReasonLabel};
use crate::net::NetHandle;
use crate::store::SharedSm;
use crate::types::{Applied, NodeId, TypeConfig};
use crate::write::write;

/// Longest a submission for a round ahead of ours is held, waiting for our close.
pub const HOLD_FUTURE: Duration = Duration::from_secs(2);

/// Text for a bounded reason field, cut to fit.
pub fn text<const N: usize>(s: &str) -> Bytes<N> {
    let cut: Vec<u8> = s.as_bytes().iter().copied().take(N).collect();
    Bytes::new(cut).unwrap_or_default()
}

/// Everything needed to answer a client (cheap to clone: handles only).
#[derive(Clone)]
pub struct ClientApi {
    /// Raft, for writes and the known leader.
    pub raft: Raft<TypeConfig>,
    /// The network, to forward writes to the leader.
    pub net: NetHandle,
    /// Applied state, for reads and pre-checks.
    pub sm: SharedSm,
    /// Round parameters.
    pub params: Params,
    /// Our index.
    pub me: NodeId,
    /// The consensus actor's counters (failed writes count there).
    pub stats: ActorStats,
    /// Refusals by reason (`chorus_commands_rejected_total`).
    pub rejected: Family<ReasonLabel, Counter>,
    /// Submissions being written now (shared with the consensus actor).
    pub in_flight: InFlight,
}

impl ClientApi {
    /// Answer one call.
    pub async fn serve(&self, req: ClientRequest) -> ClientResponse {
        match req {
            ClientRequest::Submit(sub) => {
                // Refuse junk before it costs a log entry; the state machine checks
                // again. The signature comes first, so that nobody without the
                // client's key learns whether it already submitted this round.
                let checked = protocol::round::check_submission(&self.params, &sub)
                    .and_then(|()| self.precheck(&sub));
                let checked = match checked {
                    Ok(()) if sub.round > self.open_round() => self
                        .hold_until_open(sub.round)
                        .await
                        .and_then(|()| self.precheck(&sub)),
                    other => other,
                };
                if let Err(r) = checked {
                    self.count(&r);
                    return ClientResponse::Rejected(r);
                }
                // A copy of a submission being written now is not written again.
                let Some(_claim) = self.in_flight.claim(sub.client, sub.round) else {
                    let r = RejectReason::DuplicateSubmission { round: sub.round };
                    self.count(&r);
                    return ClientResponse::Rejected(r);
                };
                self.commit(Command::Submit(sub)).await
            }
            ClientRequest::Register(reg) => {
                // Refuse what apply would refuse (a stranger under `listed`, a bad name or
                // signature) before it costs a log entry.
                // Name or keys taken and the open policy's caps are refused from our
                // applied state.
                let checked = protocol::round::check_register(&self.params, &reg).and_then(|()| {
                    self.sm
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .machine
                        .precheck_register(&reg)
                });
                match checked {
                    Err(r) => {
                        self.count(&r);
                        ClientResponse::Rejected(r)
                    }
                    Ok(()) => self.commit(Command::Register(reg)).await,
                }
            }
            ClientRequest::Directory { from } => {
                let d = self.sm.read().unwrap_or_else(|p| p.into_inner());
                let (page, total) = d
                    .machine
                    .directory_page(from, protocol::limits::MAX_DIRECTORY_PAGE);
                match BoundedVec::new(page.to_vec()) {
                    Ok(entries) => ClientResponse::Directory { entries, total },
                    Err(_) => ClientResponse::Unavailable(text("directory page too long")),
                }
            }
            // The dispatcher routes History to the broadcaster.
            ClientRequest::History { .. } => {
                ClientResponse::Unavailable(text("history is served by the broadcaster"))
            }
            ClientRequest::Status => self.status(),
        }
    }

    fn precheck(&self, sub: &protocol::Submission) -> Result<(), RejectReason> {
        self.sm
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .machine
            .precheck_submission(sub)
    }

    fn open_round(&self) -> protocol::Round {
        self.sm
            .read()
            .map(|d| d.machine.state().open_round)
            .unwrap_or(0)
    }

    /// Wait (bounded by [`HOLD_FUTURE`]) until this node has opened `round`.
    async fn hold_until_open(&self, round: protocol::Round) -> Result<(), RejectReason> {
        let deadline = Instant::now() + HOLD_FUTURE;
        loop {
            let open = self.open_round();
            if round <= open {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(RejectReason::FutureRound { got: round, open });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Commit an opaque probe: for the admin endpoint (benchmarks and consensus tests),
    /// never reachable from the client protocol.
    pub async fn probe(&self, id: u64, bytes: usize) -> Result<Applied, String> {
        let payload = Bytes::new(vec![(id % 251) as u8; bytes]).map_err(|_| {
            format!(
                "probe payload over {} bytes",
                protocol::limits::MAX_PROBE_BYTES
            )
        })?;
        write(&self.raft, &self.net, Command::Probe { id, payload })
            .await
            .map_err(|e| e.last.to_string())
    }

    fn count(&self, r: &RejectReason) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: r.label().into(),
            })
            .inc();
    }

    async fn commit(&self, cmd: Command) -> ClientResponse {
        match write(&self.raft, &self.net, cmd).await {
            // Refusals at apply time are counted by the dispatcher on every node.
            Ok(Applied::Rejected(r)) => ClientResponse::Rejected(r),
            Ok(Applied::Ok { round }) => ClientResponse::Accepted { round },
            Ok(Applied::Internal) => ClientResponse::Accepted { round: 0 },
            Err(e) => {
                self.stats.failed();
                ClientResponse::Unavailable(text(&e.last.to_string()))
            }
        }
    }

    fn status(&self) -> ClientResponse {
        let leader = self
            .raft
            .metrics()
            .borrow()
            .current_leader
            .map(|l| l as u16);
        let d = self.sm.read().unwrap_or_else(|p| p.into_inner());
        let s = d.machine.state();
        ClientResponse::Status(StatusInfo {
            server: self.me as u16,
            leader,
            open_round: s.open_round,
            last_revealed: s.outputs.keys().next_back().copied(),
            last_participants: s.last_closed.map(|(_, p)| p).unwrap_or(0),
            last_closed: s.last_closed.map(|(r, _)| r),
            // RECENT_VOID (32) is below the field's limit (64).
            recent_void: protocol::bounded::BoundedVec::new(
                s.recent_void.iter().rev().take(64).copied().collect(),
            )
            .unwrap_or_else(|_| unreachable!("at most 64 taken")),
        })
    }
}
