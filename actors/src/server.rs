//! Assembling a server: configuration in, a running set of actors and tasks out.
//!
//! ```text
//!            ┌── PeerConnection (owns the swarm loop) ◄── Publish ── Broadcaster ◄─┐
//!  network ──┤ raft queue ──► dispatch::raft ────► Consensus (openraft, clock)     │
//!            └ client queue ► dispatch::clients ─► ClientGateway, Broadcaster      │ Committed
//!  StateMachine ──AppliedEntry──► dispatch::applied ──► ShareKeeper ───────────────┘
//!                                                   └─► BackupKeeper (backup entries;
//!                                 dispatch::clients routes backup calls to it too)
//!  NodeMetrics ◄── every actor's counters; /metrics and /status read them
//! ```
//! Each piece lives in its own module; this one only builds and connects them, and
//! stops them in order.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use openraft::{Config, Raft, SnapshotPolicy};
use p2p::ServerAddr;
use protocol::Params;

use crate::backup_keeper::{BackupKeeper, BackupSettings, KeeperCtx};
use crate::backup_store::BackupStore;
use crate::broadcaster::Broadcaster;
use crate::client_api::ClientApi;
use crate::consensus::Consensus;
use crate::dispatch::{self, Mailbox};
use crate::gateway::ClientGateway;
use crate::metrics::{ActorStats, NodeMetrics};
use crate::net::{self, NetConfig, NetHandle};
use crate::peer_connection::{PeerConnection, StopActor};
use crate::raft_net::RaftNet;
use crate::round_clock::RoundClock;
use crate::share_keeper::ShareKeeper;
use crate::status::{self, StatusReport};
use crate::store::{self, LogStore, SharedSm, StateMachine};
use crate::types::{Applied, NodeId, ServerNode, TypeConfig};

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
    /// The key all servers share for validity-proof queries.
    pub validity_key: protocol::validity::ValidityKey,
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
    /// Key backup: guess limit and refresh epoch.
    pub backup: BackupSettings,
    /// Faults to inject (tests and the abuse run only).
    pub faults: Faults,
}

/// Faults a test can switch on in one node, to check that the others cope.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Reveal a wrong sum every round while set (signed, so the lie is attributable).
    pub wrong_reveals: Arc<std::sync::atomic::AtomicBool>,
    /// Whether the admin endpoint may switch faults at run time (`CHORUS_FAULTS=1`).
    pub switchable: bool,
}

impl Faults {
    /// Is the wrong-reveal fault on?
    pub fn wrong_reveals(&self) -> bool {
        self.wrong_reveals
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A running server.
pub struct ServerHandle {
    /// Metrics (`/metrics` encodes them).
    pub metrics: NodeMetrics,
    raft: Raft<TypeConfig>,
    sm: SharedSm,
    me: NodeId,
    net: NetHandle,
    actors: Vec<ActorStats>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    peer_conn: Addr<PeerConnection>,
    api: ClientApi,
    fatal: tokio::sync::watch::Receiver<Option<String>>,
    faults: Faults,
}

impl ServerHandle {
    /// Gather `/status`.
    pub async fn status(&self) -> StatusReport {
        let m = self.raft.metrics().borrow().clone();
        let peers = self.net.connected().await.unwrap_or_default();
        status::report(self.me, &m, &self.sm, peers, &self.actors)
    }

    /// Ready: a known leader and our applied index caught up with our log.
    pub fn ready(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.current_leader.is_some() && m.last_applied.map(|l| l.index) >= m.last_log_index
    }

    /// Commit an opaque probe (the admin endpoint's `POST /probe`; benchmarks and tests).
    pub async fn probe(&self, id: u64, bytes: usize) -> Result<Applied, String> {
        self.api.probe(id, bytes).await
    }

    /// Switch the wrong-reveal fault (the admin endpoint's `POST /fault`, tests only);
    /// false if this node was not started with switchable faults.
    pub fn set_wrong_reveals(&self, on: bool) -> bool {
        if !self.faults.switchable {
            return false;
        }
        self.faults
            .wrong_reveals
            .store(on, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(on, "FAULT SWITCHED: wrong reveals (tests only)");
        true
    }

    /// Resolves with the reason when this node must stop (its configuration differs from
    /// the parameters the cluster committed).
    pub async fn fatal(&self) -> String {
        let mut rx = self.fatal.clone();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                // The sender is gone with the server: nothing more will come.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stop Raft only (flushing the log); for a handle still shared with the admin server.
    pub async fn stop_raft(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }

    /// Stop Raft (flushing the log), then the actors and tasks.
    pub async fn shutdown(self) {
        self.stop_raft().await;
        let _ = self.peer_conn.send(StopActor).await;
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Run `f` inside a fresh actix System whose tokio runtime is multi-threaded (two
/// workers), and return its result. Actors run on the calling thread; openraft, libp2p
/// and whatever `f` spawns run on the workers.
pub fn run_system<F, T>(f: F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the tokio runtime: {e}"))?;
    actix_rt::System::with_tokio_rt(move || rt).block_on(f)
}

fn parse_servers(cfg: &ServerConfig) -> anyhow::Result<Vec<ServerAddr>> {
    cfg.servers
        .iter()
        .map(|(id, pid, addr)| {
            let index = u16::try_from(*id)
                .map_err(|_| anyhow::anyhow!("servers[{id}]: index out of range"))?;
            Ok(ServerAddr::parse(index, pid, addr)?)
        })
        .collect()
}

/// Start a server inside the current actix System (see [`run_system`]).
pub async fn start(cfg: ServerConfig) -> anyhow::Result<ServerHandle> {
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes(*cfg.identity.ed25519_seed())?;
    let my_pid = keypair.public().to_peer_id();
    // Pair assertion with keys::peer_id_string (which keygen used).
    anyhow::ensure!(
        my_pid.to_string() == keys::peer_id_string(&cfg.identity.public().sign),
        "PeerId derivation disagrees with libp2p: {my_pid}"
    );
    let peers = parse_servers(&cfg)?;
    if let Some(me) = peers.iter().find(|p| NodeId::from(p.index) == cfg.me) {
        anyhow::ensure!(
            me.peer_id == my_pid,
            "key file does not match servers[{}].peer_id: the key's PeerId is {my_pid}, config says {}",
            cfg.me,
            me.peer_id
        );
    }

    let mut registry = prometheus_client::registry::Registry::default();
    let net_metrics = crate::metrics::NetMetrics::default();
    let listen: libp2p::Multiaddr = cfg
        .listen
        .parse()
        .map_err(|e| anyhow::anyhow!("node.listen {:?}: {e}", cfg.listen))?;
    let (net_loop, net, events) = net::start(
        NetConfig {
            keypair,
            me: cfg.me,
            listen,
            peers,
            idle_timeout: Duration::from_secs(3600),
        },
        &mut registry,
        net_metrics.clone(),
    )?;
    let metrics = NodeMetrics::new_with_net(registry, net_metrics);

    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| anyhow::anyhow!("creating data_dir {}: {e}", cfg.data_dir.display()))?;
    let db_path = cfg.data_dir.join("raft.redb");
    let db = store::open_db(&db_path)
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", db_path.display()))?;
    let (applied_tx, applied_rx) = tokio::sync::mpsc::channel(crate::MAILBOX_CAPACITY * 4);
    let sm = StateMachine::open(db.clone(), cfg.params.clone(), Some(applied_tx))?;
    let shared = sm.shared();
    let archive = sm.archive();
    let mismatch = shared
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .machine
        .config_mismatch();
    if let Some(field) = mismatch {
        anyhow::bail!(
            "configuration differs from the parameters this cluster committed when it was \
             initialised ({}): {field}",
            db_path.display()
        );
    }
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

    let identity = Arc::new(cfg.identity);
    if cfg.faults.wrong_reveals() {
        tracing::warn!("FAULT INJECTED: this node reveals wrong sums (tests only)");
    }
    let (fatal_tx, fatal_rx) = tokio::sync::watch::channel(None);
    let peer_stats = metrics.actor("peer_connection");
    let consensus_stats = metrics.actor("consensus");
    let gateway_stats = metrics.actor("client_gateway");
    let keeper_stats = metrics.actor("share_keeper");
    let broadcaster_stats = metrics.actor("broadcaster");
    let backup_stats = metrics.actor("backup_keeper");

    let peer_conn =
        PeerConnection::new(net.clone(), tokio::spawn(net_loop), peer_stats.clone()).start();
    let held: crate::client_api::SharedHeld = Arc::new(std::sync::Mutex::new(
        crate::held::HeldShares::new(cfg.params.share_bytes()),
    ));
    let api = ClientApi {
        raft: raft.clone(),
        net: net.clone(),
        sm: shared.clone(),
        params: Arc::new(cfg.params.clone()),
        me: cfg.me,
        stats: gateway_stats.clone(),
        rejected: metrics.rejected_commands.clone(),
        opener: Arc::new(std::sync::Mutex::new(protocol::seal::OpenCache::new(
            identity.x25519_secret().clone(),
        ))),
        pool: Arc::new(
            crate::open_pool::OpenPool::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )
            .map_err(|e| anyhow::anyhow!("starting the share-opening threads: {e}"))?,
        ),
        held: held.clone(),
        open_failures: metrics.keeper.open_failures.clone(),
        validity_key: Arc::new(cfg.validity_key),
        circuit: Arc::default(),
    };
    let clock = RoundClock::new(
        raft.clone(),
        net.clone(),
        shared.clone(),
        held.clone(),
        cfg.params.clone(),
        Duration::from_millis(cfg.round_ms),
    );
    let consensus = Mailbox {
        addr: Consensus::new(raft.clone(), clock, consensus_stats.clone()).start(),
        stats: consensus_stats.clone(),
    };
    let gateway = Mailbox {
        addr: ClientGateway::new(api.clone(), gateway_stats.clone()).start(),
        stats: gateway_stats.clone(),
    };
    let keeper = Mailbox {
        addr: ShareKeeper::new(
            cfg.me,
            identity.clone(),
            cfg.faults.wrong_reveals.clone(),
            held.clone(),
            raft.clone(),
            net.clone(),
            shared.clone(),
            keeper_stats.clone(),
            metrics.keeper.clone(),
            api.params.clone(),
        )
        .start(),
        stats: keeper_stats.clone(),
    };
    let backup_path = cfg.data_dir.join("backup.redb");
    let backup_store = BackupStore::open(&backup_path, &identity)
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", backup_path.display()))?;
    let backups = Mailbox {
        addr: BackupKeeper::new(
            KeeperCtx::new(
                cfg.me as u16,
                identity.clone(),
                raft.clone(),
                net.clone(),
                shared.clone(),
                backup_store,
                api.params.clone(),
                cfg.backup.clone(),
                metrics.backup.clone(),
            ),
            backup_stats.clone(),
        )
        .start(),
        stats: backup_stats.clone(),
    };
    let broadcaster = Mailbox {
        addr: Broadcaster::new(
            cfg.me,
            identity,
            shared.clone(),
            archive,
            peer_conn.clone(),
            broadcaster_stats.clone(),
            peer_stats.clone(),
        )
        .start(),
        stats: broadcaster_stats.clone(),
    };

    let tasks = vec![
        dispatch::raft(events.raft, consensus),
        dispatch::clients(
            events.clients,
            gateway,
            broadcaster.clone(),
            backups.clone(),
            metrics.net.clone(),
        ),
        dispatch::applied(
            applied_rx,
            keeper,
            broadcaster,
            backups,
            metrics.clone(),
            fatal_tx,
        ),
        dispatch::raft_gauges(&raft, shared.clone(), &metrics),
    ];

    Ok(ServerHandle {
        raft,
        sm: shared,
        metrics,
        me: cfg.me,
        net,
        actors: vec![
            peer_stats,
            consensus_stats,
            gateway_stats,
            keeper_stats,
            broadcaster_stats,
            backup_stats,
        ],
        tasks,
        peer_conn,
        api,
        fatal: fatal_rx,
        faults: cfg.faults,
    })
}
