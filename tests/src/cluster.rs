//! Spawn and control a local cluster of real `node` processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use client::conn::{ClusterConn, ConnEvent, ServerAddr};
use keys::generate::{write_cluster, ClusterSpec};
use keys::manifest::{read_manifest, NodeManifest, Policy, RaftSection};
use serde_json::Value;

/// Build (once per test process) and locate a workspace binary.
pub fn binary(package: &str, name: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<Vec<String>>> = OnceLock::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    // CHORUS_PROFILE=release uses release binaries (the chaos run); default debug.
    let release = std::env::var("CHORUS_PROFILE").is_ok_and(|p| p == "release");
    let path = target
        .join(if release { "release" } else { "debug" })
        .join(name);
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|p| p.into_inner());
    // CHORUS_NO_BUILD=1: the caller built the binaries (scripts do, so that a long run
    // never rebuilds from a work tree that changed under it).
    let prebuilt = std::env::var_os("CHORUS_NO_BUILD").is_some();
    if !prebuilt && !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut args = vec!["build", "-q", "-p", package, "--bin", name];
        if release {
            args.push("--release");
        }
        let status = Command::new(cargo)
            .args(&args)
            .current_dir(&root)
            .status()
            .unwrap_or_else(|e| panic!("running cargo build for {name}: {e}"));
        assert!(
            status.success(),
            "cargo build -p {package} --bin {name} failed"
        );
        built.push(name.to_string());
    }
    path
}

/// A free TCP port on 127.0.0.1, below the kernel's ephemeral range (32768+ on Linux):
/// a port taken from that range can be grabbed as the local end of some outgoing
/// connection while a node is down, and the node then cannot bind it on restart.
/// Ports handed out are remembered so one test process never reuses one.
pub fn free_port() -> u16 {
    use rand::Rng;
    static TAKEN: OnceLock<std::sync::Mutex<std::collections::HashSet<u16>>> = OnceLock::new();
    let taken = TAKEN.get_or_init(Default::default);
    let mut rng = rand::thread_rng();
    for _ in 0..10_000 {
        let port = rng.gen_range(20_000..32_000);
        let mut t = taken.lock().unwrap_or_else(|p| p.into_inner());
        if t.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            t.insert(port);
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// Options for a test cluster.
#[derive(Clone, Debug)]
pub struct ClusterOpts {
    /// Servers.
    pub servers: u32,
    /// Client identities to generate.
    pub clients: u32,
    /// Snapshot threshold.
    pub snapshot_logs: u64,
    /// Entries kept behind a snapshot.
    pub keep_logs: u64,
    /// Round length.
    pub round_ms: u64,
    /// k.
    pub min_anonymity_set: u32,
    /// Admission policy.
    pub policy: Policy,
    /// Slots per round.
    pub slots: u32,
    /// Revealed rounds the servers keep.
    pub retention_rounds: u64,
    /// Run each node in its own network namespace (for real partitions).
    pub net: Option<std::sync::Arc<crate::netns::Net>>,
    /// Extra environment for some nodes: (node index, variable, value), e.g. a fault
    /// switch such as `CHORUS_FAULT_WRONG_REVEALS=1`.
    pub env: Vec<(usize, String, String)>,
    /// Key backup: seconds between refreshes (node default: an hour).
    pub backup_refresh_secs: Option<u64>,
}

impl Default for ClusterOpts {
    fn default() -> Self {
        Self {
            servers: 3,
            clients: 4,
            snapshot_logs: 2000,
            keep_logs: 200,
            round_ms: 1000,
            min_anonymity_set: 3,
            policy: Policy::Open,
            slots: 16,
            retention_rounds: 100,
            net: None,
            env: Vec::new(),
            backup_refresh_secs: None,
        }
    }
}

impl ClusterOpts {
    /// The cluster the traffic harnesses (`chaos`, `abuse`) run: 500 ms rounds, k = 3,
    /// and snapshots every 500 entries so compaction happens during a run.
    pub fn traffic(servers: u32, clients: u32) -> Self {
        Self {
            servers,
            clients,
            round_ms: 500,
            min_anonymity_set: 3,
            snapshot_logs: 500,
            keep_logs: 100,
            ..Self::default()
        }
    }
}

/// Where a client connects to each server of the cluster `cluster.toml` (as keygen
/// writes it) describes.
pub fn servers_of(cluster_toml: &Path) -> anyhow::Result<Vec<ServerAddr>> {
    let m: keys::manifest::ClusterManifest = read_manifest(cluster_toml)?;
    m.servers
        .iter()
        .map(|s| ServerAddr::parse(s.id as u16, &s.peer_id, &s.address))
        .collect::<Result<_, _>>()
        .with_context(|| format!("server addresses in {}", cluster_toml.display()))
}

/// Connect to every server of an already running cluster (started by a script from
/// keygen's `cluster.toml`) and wait until all are connected, up to `deadline`.
pub async fn attach(
    servers: Vec<ServerAddr>,
    deadline: Duration,
) -> anyhow::Result<(ClusterConn, tokio::sync::mpsc::Receiver<ConnEvent>)> {
    let n = servers.len();
    let (conn, events) = ClusterConn::connect(servers)?;
    let end = Instant::now() + deadline;
    while conn.connected().await.len() < n {
        if Instant::now() > end {
            bail!("could not connect to all {n} servers within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((conn, events))
}

/// One node process.
pub struct NodeProc {
    /// Its config.
    pub config: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    /// Admin port.
    pub admin_port: u16,
    /// Admin host (127.0.0.1, or the node's namespace address).
    pub admin_host: String,
    /// Data folder.
    pub data_dir: PathBuf,
    /// Extra environment variables for this node's process.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl NodeProc {
    /// GET `path` from this node's admin endpoint.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        crate::http::get_at(&self.admin_host, self.admin_port, path).await
    }
}

/// A running cluster; dropping it kills every node.
pub struct Cluster {
    /// Folder with keys, configs, data and logs.
    pub dir: tempfile::TempDir,
    /// Nodes, by index.
    pub nodes: Vec<NodeProc>,
    /// Where clients connect.
    pub servers: Vec<ServerAddr>,
    /// The namespaces the nodes run in, if any (dropped after the nodes are killed).
    pub net: Option<std::sync::Arc<crate::netns::Net>>,
}

impl Cluster {
    /// Generate configs on free ports and start every node.
    pub fn start(opts: ClusterOpts) -> anyhow::Result<Self> {
        let node_bin = binary("node", "node");
        let dir = tempfile::tempdir()?;
        let spec = ClusterSpec {
            servers: opts.servers,
            clients: opts.clients,
            out: dir.path().to_path_buf(),
            base_port: 7100,
            threshold: None,
            round_ms: opts.round_ms,
            slots: opts.slots,
            slot_bytes: 256,
            min_anonymity_set: opts.min_anonymity_set,
            retention_rounds: opts.retention_rounds,
            policy: opts.policy,
            force: false,
        };
        write_cluster(&spec, &mut rand_core::OsRng)?;
        let ports: Vec<(u16, u16)> = (0..opts.servers)
            .map(|_| (free_port(), free_port()))
            .collect();
        let host = |i: usize| match &opts.net {
            Some(net) => net.ip(i),
            None => "127.0.0.1".to_string(),
        };
        // Clients read cluster.toml: point it at the same ports.
        let cluster_path = dir.path().join("cluster.toml");
        let mut cm: keys::manifest::ClusterManifest = read_manifest(&cluster_path)?;
        for (j, s) in cm.servers.iter_mut().enumerate() {
            s.address = format!("/ip4/{}/tcp/{}", host(j), ports[j].0);
        }
        std::fs::write(&cluster_path, toml::to_string_pretty(&cm)?)?;
        let servers = servers_of(&cluster_path)?;
        let mut nodes = Vec::new();
        for i in 0..opts.servers as usize {
            let path = dir.path().join(format!("node-{i}.toml"));
            let mut m: NodeManifest = read_manifest(&path)?;
            for (j, s) in m.servers.iter_mut().enumerate() {
                s.address = format!("/ip4/{}/tcp/{}", host(j), ports[j].0);
            }
            m.node.listen = format!("/ip4/{}/tcp/{}", host(i), ports[i].0);
            m.node.admin = format!("{}:{}", host(i), ports[i].1);
            m.raft = Some(RaftSection {
                heartbeat_ms: Some(150),
                election_min_ms: Some(1000),
                election_max_ms: Some(2000),
                snapshot_logs: Some(opts.snapshot_logs),
                keep_logs: Some(opts.keep_logs),
            });
            m.backup = opts
                .backup_refresh_secs
                .map(|secs| keys::manifest::BackupSection {
                    guess_limit: None,
                    refresh_secs: Some(secs),
                });
            std::fs::write(&path, toml::to_string_pretty(&m)?)?;
            nodes.push(NodeProc {
                config: path,
                log: dir.path().join(format!("node-{i}.log")),
                admin_port: ports[i].1,
                admin_host: host(i),
                data_dir: dir.path().join(format!("data/node-{i}")),
                env: opts
                    .env
                    .iter()
                    .filter(|(node, _, _)| *node == i)
                    .map(|(_, k, v)| (k.clone(), v.clone()))
                    .collect(),
                child: None,
            });
        }
        let mut c = Self {
            dir,
            nodes,
            servers,
            net: opts.net.clone(),
        };
        for i in 0..c.nodes.len() {
            c.spawn(i, &node_bin)?;
        }
        Ok(c)
    }

    fn spawn(&mut self, i: usize, bin: &Path) -> anyhow::Result<()> {
        let n = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)?;
        let mut cmd = match &self.net {
            Some(net) => {
                let prefix = net.exec_prefix(i);
                let mut c = Command::new(&prefix[0]);
                c.args(&prefix[1..]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .arg("--config")
            .arg(&n.config)
            .env(
                "RUST_LOG",
                std::env::var("CHORUS_TEST_LOG")
                    .unwrap_or_else(|_| "info,openraft=warn,libp2p_gossipsub=warn".into()),
            )
            .envs(n.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {i}"))?;
        n.child = Some(child);
        Ok(())
    }

    /// kill -9 node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM node `i` and wait for it to exit; returns its exit success.
    pub fn terminate(&mut self, i: usize) -> bool {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = c.try_wait() {
                    return status.success();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        false
    }

    /// Start node `i` again (same config and data).
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let bin = binary("node", "node");
        self.spawn(i, &bin)
    }

    /// Send a signal (e.g. "STOP", "CONT") to node `i`; false if it is not running.
    pub fn signal(&self, i: usize, sig: &str) -> bool {
        let Some(c) = &self.nodes[i].child else {
            return false;
        };
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(c.id().to_string())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// OS pid of node `i`, if running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// Did node `i`'s process exit by itself (a crash)? Nodes the harness stopped do
    /// not count.
    pub fn exited(&mut self, i: usize) -> bool {
        self.nodes[i]
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Is node `i` running?
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// `/status` of node `i`, if it answers.
    pub async fn status(&self, i: usize) -> Option<Value> {
        let (code, body) = self.nodes[i].get("/status").await.ok()?;
        if code != 200 {
            return None;
        }
        serde_json::from_str(&body).ok()
    }

    /// The leader every running node agrees on, if they agree.
    pub async fn agreed_leader(&self) -> Option<u64> {
        let mut leader = None;
        for i in 0..self.nodes.len() {
            if !self.is_up(i) {
                continue;
            }
            let l = self.status(i).await?.get("leader")?.as_u64()?;
            if leader.is_some_and(|x| x != l) {
                return None;
            }
            leader = Some(l);
        }
        leader
    }

    /// Wait until `f` returns `Some`, polling; fails with `what` after `deadline`.
    pub async fn wait_for<T, F, Fut>(
        &self,
        what: &str,
        deadline: Duration,
        mut f: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let end = Instant::now() + deadline;
        loop {
            if let Some(v) = f().await {
                return Ok(v);
            }
            if Instant::now() > end {
                bail!(
                    "timed out after {deadline:?} waiting for: {what}\n{}",
                    self.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of every node's log, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let text = std::fs::read_to_string(&n.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- node {i} log (last 15 lines)\n"));
            for l in &lines[lines.len().saturating_sub(15)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Connect a client to every server and wait until at least one is up.
    pub async fn connect(
        &self,
    ) -> anyhow::Result<(ClusterConn, tokio::sync::mpsc::Receiver<ConnEvent>)> {
        let (conn, events) = ClusterConn::connect(self.servers.clone())?;
        let c2 = conn.clone();
        self.wait_for("a client connection", Duration::from_secs(20), || {
            let c = c2.clone();
            async move { (!c.connected().await.is_empty()).then_some(()) }
        })
        .await?;
        Ok((conn, events))
    }

    /// Path of client `j`'s config (1-based, as keygen names them).
    pub fn client_config(&self, j: u32) -> PathBuf {
        self.dir.path().join(format!("client-{j}.toml"))
    }

    /// Start client `j`'s engine in this process.
    pub fn client(
        &self,
        j: u32,
    ) -> anyhow::Result<(
        client::engine::EngineHandle,
        tokio::sync::mpsc::Receiver<client::engine::Event>,
    )> {
        let settings = client::config::Settings::load(&self.client_config(j))?;
        client::engine::start(settings)
    }

    /// Start client `j`'s engine and register it as `client-<j>`, retrying while the
    /// cluster settles (up to 20 s).
    pub async fn registered_client(
        &self,
        j: u32,
    ) -> anyhow::Result<(
        client::engine::EngineHandle,
        tokio::sync::mpsc::Receiver<client::engine::Event>,
    )> {
        let (engine, rx) = self.client(j)?;
        let name = format!("client-{j}");
        for _ in 0..40 {
            if engine.register(&name).await.is_ok() {
                return Ok((engine, rx));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        anyhow::bail!("could not register {name}")
    }

    /// Every node's log text.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| std::fs::read_to_string(&n.log).unwrap_or_default())
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
