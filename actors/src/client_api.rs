//! What a server answers to each client call (all but history, which the broadcaster
//! serves). Called by the consensus actor, one tokio task per call, never on the actix
//! thread.
//!
//! A client's share never reaches the log (round protocol v2): it is checked (addressed
//! to us, admission, size, digest, signature), opened on the blocking pool, and held in
//! [`crate::held`] until the share-keeper lists it at `Close`. A share for a round this
//! node has not opened yet (it may be a close behind the leader) is held for it.
//! Registrations go through [`crate::write`]; reads (directory pages, status) come from
//! this node's applied state. Nothing a client sends reaches the log unless the state
//! machine would accept it as this node sees the state now.

use std::sync::{Arc, Mutex};

use openraft::Raft;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use protocol::bounded::{BoundedVec, Bytes};
use protocol::seal::OpenCache;
use protocol::submission::open_upload;
use protocol::validity::{Validity, ValidityKey};
use protocol::wire::{
    ClientRequest, ClientResponse, Command, RejectReason, Round, ShareUpload, StatusInfo,
    SubmissionDigest,
};
use protocol::Params;
use zeroize::Zeroizing;

use crate::held::{HeldProof, HeldShares};
use crate::metrics::{ActorStats, ReasonLabel};
use crate::net::NetHandle;
use crate::open_pool::PoolError;
use crate::store::SharedSm;
use crate::types::{Applied, NodeId, TypeConfig};
use crate::write::write;

/// The shares this server holds, shared by the client API, the share-keeper and the
/// round clock.
pub type SharedHeld = Arc<Mutex<HeldShares>>;

/// Text for a bounded reason field, cut to fit.
pub fn text<const N: usize>(s: &str) -> Bytes<N> {
    let cut: Vec<u8> = s.as_bytes().iter().copied().take(N).collect();
    Bytes::new(cut).unwrap_or_default()
}

/// A share that passed its checks: its submission's digest, and the share and its proof
/// if they opened.
type Checked = (SubmissionDigest, Option<(Zeroizing<Vec<u8>>, HeldProof)>);

/// The validity circuit of the open round as this node knows its layout now, kept while
/// the layout stays the same (building it lays out the round).
pub type CircuitCache = Arc<Mutex<Option<(Round, Arc<Vec<u64>>, Arc<Validity>)>>>;

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
    pub params: Arc<Params>,
    /// Our index.
    pub me: NodeId,
    /// The consensus actor's counters (failed writes count there).
    pub stats: ActorStats,
    /// Refusals by reason (`chorus_commands_rejected_total`).
    pub rejected: Family<ReasonLabel, Counter>,
    /// Our x25519 secret, to open shares, and the secrets it shares with clients'
    /// recent ephemerals.
    pub opener: Arc<Mutex<OpenCache>>,
    /// The threads that check and open shares.
    pub pool: Arc<crate::open_pool::OpenPool>,
    /// Shares held until their round is decided.
    pub held: SharedHeld,
    /// Shares that did not open (`chorus_share_open_failures_total`).
    pub open_failures: Counter,
    /// The key all servers share for validity-proof queries.
    pub validity_key: Arc<ValidityKey>,
    /// The open round's circuit.
    pub circuit: CircuitCache,
}

impl ClientApi {
    /// Answer one call.
    pub async fn serve(&self, req: ClientRequest) -> ClientResponse {
        match req {
            ClientRequest::Share(up) => self.take_share(up).await,
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
            // The dispatcher routes backup calls to the backup-keeper.
            ClientRequest::BackupInfo { .. }
            | ClientRequest::BackupCreate(_)
            | ClientRequest::BackupEval { .. }
            | ClientRequest::BackupUnlock { .. } => {
                ClientResponse::Unavailable(text("backups are served by the backup-keeper"))
            }
        }
    }

    /// Check, open and hold one share. Cheap refusals come first; the signature before
    /// anything that tells whether this client already submitted. The digest, the
    /// signature and the decryption run on the share-opening threads.
    async fn take_share(&self, up: ShareUpload) -> ClientResponse {
        let (precheck, cooling, circuit) = {
            let d = self.sm.read().unwrap_or_else(|p| p.into_inner());
            let state = d.machine.state();
            let cooling = state.conduct.cooling_until(&up.client, state.open_round);
            // The open round's layout as we know it now; a round ahead of ours is
            // checked at close, when its layout is known.
            let circuit = (up.round == state.open_round)
                .then(|| self.circuit_for(up.round, &state.open_layout));
            (d.machine.precheck_share(up.round), cooling, circuit)
        };
        if let Err(r) = precheck {
            self.count(&r);
            return ClientResponse::Rejected(r);
        }
        let (params, opener, me) = (self.params.clone(), self.opener.clone(), self.me as u16);
        let validity_key = self.validity_key.clone();
        let (round, client) = (up.round, up.client);
        let job = move || -> Result<Checked, RejectReason> {
            protocol::round::check_upload(&params, &up, me)?;
            // Refused once the signature says it is this client's, before any more work.
            if let Some(until) = cooling {
                return Err(RejectReason::CoolingOff { until });
            }
            // The x25519 step (if this ephemeral is new) under the lock, the rest outside.
            let key = opener
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .share_key(&up.share, up.round, &up.client, me);
            let opened = key
                .ok()
                .and_then(|key| open_upload(&params, &key, &up, usize::from(me)))
                .map(|(share, proof)| {
                    let challenge =
                        validity_key.challenge(up.round, &up.client, up.digests.as_slice());
                    let checked = circuit.and_then(|(layout, circuit)| {
                        let check =
                            protocol::validity::query(&circuit, &share, &proof, &challenge).ok()?;
                        Some((layout, protocol::bounded::Fixed(check)))
                    });
                    let proof = HeldProof {
                        share: proof,
                        challenge,
                        checked,
                    };
                    (share, proof)
                });
            Ok((up.submission_digest(), opened))
        };
        let (digest, opened) = match self.pool.run(job).await {
            Ok(Ok(done)) => done,
            Ok(Err(r)) => {
                self.count(&r);
                return ClientResponse::Rejected(r);
            }
            Err(PoolError::Busy) => {
                return ClientResponse::Unavailable(text("busy opening shares; send it again"))
            }
            Err(PoolError::Stopped) => return ClientResponse::Unavailable(text("stopping")),
        };
        let Some((share, proof)) = opened else {
            // Only we can open our share; the client hears it at once, and the share
            // never counts (v1 had to add such shares as zero and garble the round).
            self.open_failures.inc();
            let r = RejectReason::ShareDoesNotOpen;
            self.count(&r);
            return ClientResponse::Rejected(r);
        };
        let held = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .hold(round, client, digest, share, proof);
        match held {
            Ok(()) => ClientResponse::Accepted { round },
            Err(r) => {
                self.count(&r);
                ClientResponse::Rejected(r)
            }
        }
    }

    /// The circuit of `round` laid out from `laid_out`, from the cache if it matches.
    fn circuit_for(&self, round: Round, laid_out: &[u64]) -> (Arc<Vec<u64>>, Arc<Validity>) {
        let mut cache = self.circuit.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((r, layout, circuit)) = cache.as_ref() {
            if *r == round && layout.as_slice() == laid_out {
                return (layout.clone(), circuit.clone());
            }
        }
        let layout = Arc::new(laid_out.to_vec());
        let circuit = Arc::new(Validity::for_round(&self.params, laid_out));
        *cache = Some((round, layout.clone(), circuit.clone()));
        (layout, circuit)
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
