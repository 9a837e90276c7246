//! Assembling a server: the actors and the tasks between them.
//!
//! ```text
//!            ┌──────────── PeerConnection (owns the swarm loop) ◄── Publish ── Broadcaster
//!  network ──┤ NetEvent                                                        ▲
//!            └─► dispatcher ──HandlePeer/HandleClient──► Consensus (openraft) │ Committed
//!                                                            │ apply           │
//!                                     StateMachine ──AppliedEntry──► dispatcher ──► ShareKeeper
//!  Metrics ◄── every actor's counters; /metrics and /status read them
//! ```
//! Dispatchers use `Addr::send(..).await`, so a full mailbox slows the producer instead of
//! growing without bound.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, Raft, SnapshotPolicy};
use protocol::bounded::{Bytes, Fixed};
use protocol::wire::{
    ClientRequest, ClientResponse, Command, OutputVouch, RoundOutput, SignedOutput, StatusInfo,
};
use protocol::{Effect, Params};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::{ActorStats, NodeMetrics, ReasonLabel};
use crate::net::{self, NetConfig, NetEvent, NetHandle, Peer};
use crate::raft_net::RaftNet;
use crate::rounds::{RoundClock, ShareKeeper};
use crate::store::{self, AppliedEntry, LogStore, SharedSm, StateMachine};
use crate::types::{
    Applied, ForwardOutcome, NodeId, PeerRequest, PeerResponse, ServerNode, TypeConfig,
};

/// Raft timing and compaction settings.
#[derive(Clone, Debug)]
pub struct RaftTuning {
    /// Leader heartbeat.
    pub heartbeat_ms: u64,
    /// Election timeout range.
    pub election_min_ms: u64,
    /// Election timeout range.
    pub election_max_ms: u64,
    /// Take a snapshot after this many applied entries.
    pub snapshot_logs: u64,
    /// Entries kept in the log behind a snapshot (for slow followers).
    pub keep_logs: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            heartbeat_ms: 150,
            election_min_ms: 1000,
            election_max_ms: 2000,
            snapshot_logs: 2000,
            keep_logs: 200,
        }
    }
}

/// Everything a server needs to start.
pub struct ServerConfig {
    /// Our index.
    pub me: NodeId,
    /// Our identity (libp2p key, output signatures, share opening).
    pub identity: keys::Identity,
    /// Where libp2p listens.
    pub listen: String,
    /// Every server: (index, PeerId string, multiaddr string).
    pub servers: Vec<(NodeId, String, String)>,
    /// Data folder (holds `raft.redb`).
    pub data_dir: PathBuf,
    /// Round parameters.
    pub params: Params,
    /// Raft settings.
    pub raft: RaftTuning,
    /// Round length: the leader closes a round after this long.
    pub round_ms: u64,
}

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

/// A running server.
pub struct ServerHandle {
    /// Raft.
    pub raft: Raft<TypeConfig>,
    /// State machine (read-only use).
    pub sm: SharedSm,
    /// Metrics.
    pub metrics: NodeMetrics,
    me: NodeId,
    net: NetHandle,
    actors: Vec<ActorStats>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    peer_conn: Addr<PeerConnection>,
}

impl ServerHandle {
    /// Gather `/status`.
    pub async fn status(&self) -> StatusReport {
        let m = self.raft.metrics().borrow().clone();
        let (round, hash, applied) = {
            let d = self.sm.read().unwrap_or_else(|p| p.into_inner());
            (
                d.machine.state().open_round,
                hex::encode(d.machine.state_hash()),
                d.machine.state().applied,
            )
        };
        let peers_connected = self.net.connected().await.unwrap_or_default();
        let actors = self
            .actors
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
            node_id: self.me,
            role: format!("{:?}", m.state).to_lowercase(),
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            peers_connected,
            round,
            state_hash: hash,
            commands_applied: applied,
            actors,
        }
    }

    /// Ready: a known leader and our applied index caught up with our log.
    pub fn ready(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.current_leader.is_some() && m.last_applied.map(|l| l.index) >= m.last_log_index
    }

    /// Stop Raft (flushing the log), then the actors and tasks.
    pub async fn shutdown(self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        self.peer_conn.do_send(StopActor);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Start a server inside the current actix System (whose tokio runtime must be
/// multi-threaded for openraft's tasks to spread out).
pub async fn start(cfg: ServerConfig) -> anyhow::Result<ServerHandle> {
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes(*cfg.identity.ed25519_seed())?;
    let my_pid = keypair.public().to_peer_id();
    // Pair assertion with keys::peer_id_string (which keygen used).
    anyhow::ensure!(
        my_pid.to_string() == keys::peer_id_string(&cfg.identity.public().sign),
        "PeerId derivation disagrees with libp2p: {my_pid}"
    );
    let mut peers = Vec::new();
    for (id, pid, addr) in &cfg.servers {
        let peer_id: libp2p::PeerId = pid
            .parse()
            .map_err(|e| anyhow::anyhow!("servers[{id}].peer_id {pid:?}: {e}"))?;
        let addr: libp2p::Multiaddr = addr
            .parse()
            .map_err(|e| anyhow::anyhow!("servers[{id}].address {addr:?}: {e}"))?;
        peers.push(Peer {
            id: *id,
            peer_id,
            addr,
        });
    }
    if let Some(me) = peers.iter().find(|p| p.id == cfg.me) {
        anyhow::ensure!(
            me.peer_id == my_pid,
            "key file does not match servers[{}].peer_id: the key's PeerId is {my_pid}, config says {}",
            cfg.me,
            me.peer_id
        );
    }

    let mut registry = prometheus_client::registry::Registry::default();
    let net_metrics_placeholder = crate::metrics::NetMetrics::default();
    let listen: libp2p::Multiaddr = cfg
        .listen
        .parse()
        .map_err(|e| anyhow::anyhow!("node.listen {:?}: {e}", cfg.listen))?;
    let (net_loop, net, mut events) = net::start(
        NetConfig {
            keypair,
            me: cfg.me,
            listen,
            peers: peers.clone(),
            idle_timeout: Duration::from_secs(3600),
        },
        &mut registry,
        net_metrics_placeholder.clone(),
    )?;
    let metrics = NodeMetrics::new_with_net(registry, net_metrics_placeholder);

    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| anyhow::anyhow!("creating data_dir {}: {e}", cfg.data_dir.display()))?;
    let db = store::open_db(&cfg.data_dir.join("raft.redb")).map_err(|e| {
        anyhow::anyhow!("opening {}: {e}", cfg.data_dir.join("raft.redb").display())
    })?;
    let (applied_tx, mut applied_rx) = mpsc::channel::<AppliedEntry>(1024);
    let sm = StateMachine::open(db.clone(), cfg.params.clone(), Some(applied_tx))?;
    let shared = sm.shared();
    let raft_config = Config {
        cluster_name: "chorus".into(),
        heartbeat_interval: cfg.raft.heartbeat_ms,
        election_timeout_min: cfg.raft.election_min_ms,
        election_timeout_max: cfg.raft.election_max_ms,
        install_snapshot_timeout: 10_000,
        // Below MAX_FRAME_BYTES with room for the envelope.
        snapshot_max_chunk_size: 4 * 1024 * 1024,
        max_payload_entries: 64,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.raft.snapshot_logs),
        max_in_snapshot_log_to_keep: cfg.raft.keep_logs,
        purge_batch_size: 64,
        ..Default::default()
    }
    .validate()?;
    let raft = Raft::new(
        cfg.me,
        Arc::new(raft_config),
        RaftNet { net: net.clone() },
        LogStore::new(db),
        sm,
    )
    .await?;

    // Every node initializes with the same full membership; all but the first are refused
    // as "already initialized", which is fine.
    let members: BTreeMap<NodeId, ServerNode> = cfg
        .servers
        .iter()
        .map(|(id, pid, addr)| {
            (
                *id,
                ServerNode {
                    peer_id: pid.clone(),
                    addr: addr.clone(),
                },
            )
        })
        .collect();
    if !raft.is_initialized().await? {
        if let Err(e) = raft.initialize(members).await {
            tracing::debug!(error = %e, "initialize (another node may have done it)");
        }
    }

    let peer_stats = metrics.actor("peer_connection");
    let consensus_stats = metrics.actor("consensus");
    let keeper_stats = metrics.actor("share_keeper");
    let broadcaster_stats = metrics.actor("broadcaster");
    let metrics_stats = metrics.actor("metrics");

    let peer_conn = PeerConnection {
        net: net.clone(),
        task: Some(tokio::spawn(net_loop)),
        stats: peer_stats.clone(),
    }
    .start();
    let consensus = Consensus {
        raft: raft.clone(),
        net: net.clone(),
        sm: shared.clone(),
        me: cfg.me,
        params: cfg.params.clone(),
        stats: consensus_stats.clone(),
        clock: RoundClock::new(
            raft.clone(),
            net.clone(),
            shared.clone(),
            Duration::from_millis(cfg.round_ms),
        ),
        rejected: metrics.rejected_commands.clone(),
        in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_CLIENT_CALLS_IN_FLIGHT)),
    }
    .start();
    let keeper = ShareKeeper::new(
        cfg.me,
        cfg.identity.x25519_secret().clone(),
        cfg.params.clone(),
        raft.clone(),
        net.clone(),
        shared.clone(),
        keeper_stats.clone(),
        metrics.keeper.clone(),
    )
    .start();
    let broadcaster = Broadcaster {
        stats: broadcaster_stats.clone(),
        peer_conn: peer_conn.clone(),
        peer_stats: peer_stats.clone(),
        me: cfg.me,
        identity: cfg.identity,
        sm: shared.clone(),
    }
    .start();
    let _metrics_actor = MetricsActor {
        metrics: metrics.clone(),
        stats: metrics_stats.clone(),
    }
    .start();

    let mut tasks = Vec::new();
    // Network events → actors.
    {
        let (consensus, broadcaster) = (consensus.clone(), broadcaster.clone());
        let (cs, bs) = (consensus_stats.clone(), broadcaster_stats.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                match ev {
                    NetEvent::Peer { from, req, reply } => {
                        cs.enqueued();
                        let _ = consensus.send(HandlePeer { from, req, reply }).await;
                    }
                    NetEvent::Client {
                        req: ClientRequest::History { from_round },
                        reply,
                    } => {
                        bs.enqueued();
                        let _ = broadcaster.send(HandleHistory { from_round, reply }).await;
                    }
                    NetEvent::Client { req, reply } => {
                        cs.enqueued();
                        let _ = consensus.send(HandleClient { req, reply }).await;
                    }
                    NetEvent::Gossip(bytes) => {
                        bs.enqueued();
                        let _ = broadcaster.send(Gossip(bytes)).await;
                    }
                }
            }
        }));
    }
    // Applied entries → share-keeper and broadcaster.
    {
        let (keeper, broadcaster, metrics) = (keeper.clone(), broadcaster.clone(), metrics.clone());
        let (ks, bs) = (keeper_stats.clone(), broadcaster_stats.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(entry) = applied_rx.recv().await {
                match &entry.effect {
                    Effect::Rejected(r) => {
                        let label = ReasonLabel {
                            reason: r.label().into(),
                        };
                        metrics.rejected_commands.get_or_create(&label).inc();
                    }
                    Effect::Closed { .. } => metrics.round_outcome("closed"),
                    Effect::Void { .. } => metrics.round_outcome("void"),
                    Effect::Output(_) => metrics.round_outcome("output"),
                    _ => {}
                }
                ks.enqueued();
                let _ = keeper.send(Committed(entry.clone())).await;
                bs.enqueued();
                let _ = broadcaster.send(Committed(entry)).await;
            }
        }));
    }
    // Raft metrics → gauges.
    {
        let mut rx = raft.metrics();
        let (g, sm) = (metrics.raft.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                {
                    let m = rx.borrow_and_update().clone();
                    g.term.set(m.current_term as i64);
                    g.leader
                        .set(m.current_leader.map(|l| l as i64).unwrap_or(-1));
                    g.last_log_index
                        .set(m.last_log_index.map(|i| i as i64).unwrap_or(-1));
                    g.applied_index
                        .set(m.last_applied.map(|l| l.index as i64).unwrap_or(-1));
                    g.snapshot_index
                        .set(m.snapshot.map(|l| l.index as i64).unwrap_or(-1));
                    let round = sm.read().map(|d| d.machine.state().open_round).unwrap_or(0);
                    g.round.set(round as i64);
                }
                if rx.changed().await.is_err() {
                    break;
                }
            }
        }));
    }

    Ok(ServerHandle {
        raft,
        sm: shared,
        metrics,
        me: cfg.me,
        net,
        actors: vec![
            peer_stats,
            consensus_stats,
            keeper_stats,
            broadcaster_stats,
            metrics_stats,
        ],
        tasks,
        peer_conn,
    })
}

/// Commit `cmd`, forwarding to the leader when we are not it, with bounded retries.
pub async fn write(
    raft: &Raft<TypeConfig>,
    net: &NetHandle,
    cmd: Command,
) -> Result<Applied, String> {
    /// Attempts before giving up; covers one election (about election_max_ms).
    const ATTEMPTS: u32 = 20;
    let mut delay = Duration::from_millis(50);
    let mut last_err = String::from("no leader");
    for _ in 0..ATTEMPTS {
        match raft.client_write(cmd.clone()).await {
            Ok(resp) => return Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                if let Some(leader) = f.leader_id {
                    match net.request(leader, PeerRequest::Forward(cmd.clone())).await {
                        Ok(PeerResponse::Forward(ForwardOutcome::Applied(a))) => return Ok(a),
                        Ok(PeerResponse::Forward(ForwardOutcome::Failed(e))) => last_err = e,
                        Ok(other) => last_err = format!("leader {leader} answered {other:?}"),
                        Err(e) => last_err = e.to_string(),
                    }
                }
            }
            Err(e) => last_err = e.to_string(),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
    Err(last_err)
}

#[derive(Message)]
#[rtype(result = "()")]
struct StopActor;

/// Owns the swarm's event loop task; hands out its handle.
pub struct PeerConnection {
    net: NetHandle,
    task: Option<tokio::task::JoinHandle<()>>,
    stats: ActorStats,
}

impl Actor for PeerConnection {
    type Context = Context<Self>;
    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Handler<StopActor> for PeerConnection {
    type Result = ();
    fn handle(&mut self, _: StopActor, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Publish bytes on the output topic.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Vec<u8>);

impl Handler<Publish> for PeerConnection {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, msg: Publish, _: &mut Self::Context) -> Self::Result {
        self.stats.dequeued();
        let net = self.net.clone();
        let stats = self.stats.clone();
        Box::pin(async move {
            if net.publish(msg.0).await.is_err() {
                stats.failed();
            }
        })
    }
}

/// Wraps openraft: serves peers' Raft RPCs and forwarded writes, and clients' calls.
pub struct Consensus {
    raft: Raft<TypeConfig>,
    net: NetHandle,
    sm: SharedSm,
    me: NodeId,
    params: Params,
    stats: ActorStats,
    clock: RoundClock,
    rejected: prometheus_client::metrics::family::Family<
        ReasonLabel,
        prometheus_client::metrics::counter::Counter,
    >,
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// Client calls a server serves at once; enough for hundreds of clients submitting in
/// the same round, small enough that a flood cannot pile up unbounded tasks.
const MAX_CLIENT_CALLS_IN_FLIGHT: usize = 2048;

/// How often the round clock is checked: well under any sensible `round_ms`.
const CLOCK_TICK: Duration = Duration::from_millis(20);

impl Actor for Consensus {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        ctx.run_interval(CLOCK_TICK, |act, _| act.clock.tick());
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct HandlePeer {
    from: NodeId,
    req: PeerRequest,
    reply: oneshot::Sender<PeerResponse>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct HandleClient {
    req: ClientRequest,
    reply: oneshot::Sender<ClientResponse>,
}

fn text<const N: usize>(s: &str) -> Bytes<N> {
    let cut: Vec<u8> = s.as_bytes().iter().copied().take(N).collect();
    Bytes::new(cut).unwrap_or_default()
}

impl Handler<HandlePeer> for Consensus {
    type Result = ();
    fn handle(&mut self, msg: HandlePeer, _: &mut Self::Context) {
        self.stats.dequeued();
        let raft = self.raft.clone();
        let stats = self.stats.clone();
        // Raft RPCs run concurrently: replication must not queue behind a slow write.
        tokio::spawn(async move {
            let resp = match msg.req {
                PeerRequest::Append(r) => PeerResponse::Append(raft.append_entries(r).await),
                PeerRequest::Vote(r) => PeerResponse::Vote(raft.vote(r).await),
                PeerRequest::Snapshot(r) => PeerResponse::Snapshot(raft.install_snapshot(r).await),
                PeerRequest::Forward(cmd) => {
                    PeerResponse::Forward(match raft.client_write(cmd).await {
                        Ok(r) => ForwardOutcome::Applied(r.data),
                        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                            ForwardOutcome::NotLeader(f.leader_id)
                        }
                        Err(e) => {
                            stats.failed();
                            ForwardOutcome::Failed(e.to_string())
                        }
                    })
                }
            };
            tracing::trace!(from = msg.from, "answered peer");
            let _ = msg.reply.send(resp);
        });
    }
}

impl Handler<HandleClient> for Consensus {
    type Result = ();
    fn handle(&mut self, msg: HandleClient, _: &mut Self::Context) {
        self.stats.dequeued();
        let (raft, net, sm, params, me, stats) = (
            self.raft.clone(),
            self.net.clone(),
            self.sm.clone(),
            self.params.clone(),
            self.me,
            self.stats.clone(),
        );
        let rejected = self.rejected.clone();
        // Each client call runs as its own task (a write may wait for an election); the
        // permit bounds how many may be in flight, and beyond that callers hear "busy".
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            self.stats.failed();
            let _ = msg.reply.send(ClientResponse::Unavailable(text(
                "server busy: too many requests in flight",
            )));
            return;
        };
        tokio::spawn(async move {
            let _permit = permit;
            let count = |r: &protocol::wire::RejectReason| {
                rejected
                    .get_or_create(&ReasonLabel {
                        reason: r.label().into(),
                    })
                    .inc();
            };
            let commit = |cmd: Command| {
                let (raft, net, stats) = (raft.clone(), net.clone(), stats.clone());
                async move {
                    match write(&raft, &net, cmd).await {
                        // Refusals at apply time are counted by the dispatcher on every node.
                        Ok(Applied::Rejected(r)) => ClientResponse::Rejected(r),
                        Ok(Applied::Ok { round }) => ClientResponse::Accepted { round },
                        Ok(Applied::Internal) => ClientResponse::Accepted { round: 0 },
                        Err(e) => {
                            stats.failed();
                            ClientResponse::Unavailable(text(&e))
                        }
                    }
                }
            };
            let resp = match msg.req {
                ClientRequest::Submit(sub) => {
                    // Refuse junk before it costs a log entry; the state machine checks
                    // again. The signature comes first, so that nobody without the
                    // client's key learns whether it already submitted this round.
                    let checked = protocol::round::check_submission(&params, &sub).and_then(|()| {
                        sm.read()
                            .unwrap_or_else(|p| p.into_inner())
                            .machine
                            .precheck_submission(&sub)
                    });
                    match checked {
                        Err(r) => {
                            count(&r);
                            ClientResponse::Rejected(r)
                        }
                        Ok(()) => commit(Command::Submit(sub)).await,
                    }
                }
                ClientRequest::Register(reg) => commit(Command::Register(reg)).await,
                ClientRequest::Probe { id, payload } => {
                    commit(Command::Probe { id, payload }).await
                }
                ClientRequest::LookupName(name) => {
                    let d = sm.read().unwrap_or_else(|p| p.into_inner());
                    ClientResponse::Identity(
                        d.machine
                            .lookup_name(name.as_slice())
                            .map(|k| (name.clone(), k)),
                    )
                }
                ClientRequest::LookupFingerprint(fp) => {
                    let d = sm.read().unwrap_or_else(|p| p.into_inner());
                    ClientResponse::Identity(d.machine.lookup_fingerprint(&fp))
                }
                ClientRequest::LookupDh(dh) => {
                    let d = sm.read().unwrap_or_else(|p| p.into_inner());
                    ClientResponse::Identity(d.machine.lookup_dh(&dh))
                }
                // The dispatcher routes History to the broadcaster.
                ClientRequest::History { .. } => {
                    ClientResponse::Unavailable(text("history is served by the broadcaster"))
                }
                ClientRequest::Status => {
                    let leader = raft.metrics().borrow().current_leader.map(|l| l as u16);
                    let d = sm.read().unwrap_or_else(|p| p.into_inner());
                    let s = d.machine.state();
                    ClientResponse::Status(StatusInfo {
                        server: me as u16,
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
            };
            let _ = msg.reply.send(resp);
        });
    }
}

/// A committed entry, for the share-keeper and broadcaster.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Committed(pub AppliedEntry);

/// Publishes signed round outputs on gossipsub.
pub struct Broadcaster {
    stats: ActorStats,
    peer_conn: Addr<PeerConnection>,
    peer_stats: ActorStats,
    me: NodeId,
    identity: keys::Identity,
    sm: SharedSm,
}

impl Broadcaster {
    fn vouch(&self, output: RoundOutput) -> SignedOutput {
        let hash = output.hash();
        let signature = Fixed(
            self.identity
                .sign(&OutputVouch::signed_bytes(output.round, &hash)),
        );
        let vouch = OutputVouch {
            round: output.round,
            output_hash: Fixed(hash),
            server: self.me as u16,
            signature,
        };
        SignedOutput { output, vouch }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct HandleHistory {
    from_round: protocol::wire::Round,
    reply: oneshot::Sender<ClientResponse>,
}

impl Handler<HandleHistory> for Broadcaster {
    type Result = ();
    fn handle(&mut self, msg: HandleHistory, _: &mut Self::Context) {
        self.stats.dequeued();
        let (outputs, oldest_kept) = {
            let d = self.sm.read().unwrap_or_else(|p| p.into_inner());
            let outs = &d.machine.state().outputs;
            let picked: Vec<RoundOutput> = outs
                .range(msg.from_round..)
                .take(protocol::limits::MAX_HISTORY_OUTPUTS)
                .map(|(_, o)| o.clone())
                .collect();
            (picked, outs.keys().next().copied())
        };
        let signed: Vec<SignedOutput> = outputs.into_iter().map(|o| self.vouch(o)).collect();
        let resp = match protocol::bounded::BoundedVec::new(signed) {
            Ok(outputs) => ClientResponse::History {
                outputs,
                oldest_kept,
            },
            Err(_) => ClientResponse::Unavailable(text("history page too large")),
        };
        let _ = msg.reply.send(resp);
    }
}

impl Actor for Broadcaster {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
    }
}

impl Handler<Committed> for Broadcaster {
    type Result = ();
    fn handle(&mut self, msg: Committed, _: &mut Self::Context) {
        self.stats.dequeued();
        if let Effect::Output(output) = msg.0.effect {
            match protocol::encode(&self.vouch(output)) {
                Ok(bytes) => {
                    self.peer_stats.enqueued();
                    self.peer_conn.do_send(Publish(bytes));
                }
                Err(_) => self.stats.failed(),
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Gossip(Vec<u8>);

impl Handler<Gossip> for Broadcaster {
    type Result = ();
    fn handle(&mut self, msg: Gossip, _: &mut Self::Context) {
        self.stats.dequeued();
        // Servers compute outputs themselves; peers' copies are only counted here.
        tracing::trace!(bytes = msg.0.len(), "gossip from a peer");
    }
}

/// Serves the metrics registry.
pub struct MetricsActor {
    metrics: NodeMetrics,
    stats: ActorStats,
}

impl Actor for MetricsActor {
    type Context = Context<Self>;
}

/// Render Prometheus text.
#[derive(Message)]
#[rtype(result = "String")]
pub struct Render;

impl Handler<Render> for MetricsActor {
    type Result = String;
    fn handle(&mut self, _: Render, _: &mut Self::Context) -> String {
        self.stats.dequeued();
        self.metrics.encode()
    }
}
