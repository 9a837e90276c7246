//! Helpers: a set of running client engines and waits on their events.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use client::engine::{Delivery, EngineHandle, Event};
use tests::cluster::{binary, Cluster, ClusterOpts};
use tokio::sync::mpsc;

/// Deadline for anything that takes rounds on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(240);

/// A cluster started with `opts` whose nodes agree on a leader.
pub async fn cluster(opts: ClusterOpts) -> Cluster {
    let c = Cluster::start(opts).unwrap();
    c.wait_for("an agreed leader", Duration::from_secs(60), || {
        c.agreed_leader()
    })
    .await
    .unwrap();
    c
}

/// Clients `1..=n`, each started in this process and registered as `client-<j>`.
pub async fn clients(c: &Cluster, n: u32) -> Vec<Client> {
    let mut out = Vec::new();
    for j in 1..=n {
        out.push(Client::start(c, j).await);
    }
    out
}

/// A running client.
pub struct Client {
    /// Its registered name.
    pub name: String,
    /// Engine.
    pub engine: EngineHandle,
    /// Its events, as collected so far.
    pub seen: Vec<Event>,
    rx: mpsc::Receiver<Event>,
}

impl Client {
    /// Start client `j` and register it as `client-j`.
    pub async fn start(c: &Cluster, j: u32) -> Self {
        let (engine, rx) = c.client(j).unwrap();
        let name = format!("client-{j}");
        let mut tries = 0;
        loop {
            match engine.register(&name).await {
                Ok(()) => break,
                Err(e) if tries < 30 => {
                    tries += 1;
                    eprintln!("register {name}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("register {name}: {e}\n{}", c.log_tails()),
            }
        }
        Self {
            name,
            engine,
            seen: Vec::new(),
            rx,
        }
    }

    /// Move queued events into `seen`.
    pub fn drain(&mut self) {
        while let Ok(ev) = self.rx.try_recv() {
            self.seen.push(ev);
        }
    }

    /// Texts received, with sender.
    pub fn received(&self) -> Vec<(String, String)> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                Event::Message { from, text, .. } => Some((from.clone(), text.clone())),
                _ => None,
            })
            .collect()
    }

    /// Received messages as (from, text, anonymous, reply_to).
    pub fn received_full(&self) -> Vec<(String, String, bool, String)> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                Event::Message {
                    from,
                    text,
                    anonymous,
                    reply_to,
                    ..
                } => Some((from.clone(), text.clone(), *anonymous, reply_to.clone())),
                _ => None,
            })
            .collect()
    }

    /// The states outbox message `id` went through.
    pub fn states(&self, id: u64) -> Vec<Delivery> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                Event::State {
                    id: i, delivery, ..
                } if *i == id => Some(delivery.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Poll every client's events until `done` holds or the deadline passes.
pub async fn until(
    c: &Cluster,
    clients: &mut [Client],
    what: &str,
    done: impl Fn(&[Client]) -> bool,
) {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        for cl in clients.iter_mut() {
            cl.drain();
        }
        if done(clients) {
            return;
        }
        if tokio::time::Instant::now() > end {
            let summary: HashMap<&str, usize> = clients
                .iter()
                .map(|c| (c.name.as_str(), c.received().len()))
                .collect();
            panic!(
                "timed out waiting for: {what}; received so far: {summary:?}\n{}",
                c.log_tails()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `chat-cli` for client `j` (killed when dropped).
pub fn cli(c: &Cluster, j: u32) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(binary("client", "chat-cli"));
    cmd.arg("--config").arg(c.client_config(j));
    cmd.kill_on_drop(true);
    cmd
}

/// Run chat-cli for client `j` to completion: (success, stdout, stderr).
pub async fn run(c: &Cluster, j: u32, args: &[&str]) -> (bool, String, String) {
    let out = tokio::time::timeout(DEADLINE, cli(c, j).args(args).output())
        .await
        .expect("chat-cli finished")
        .expect("chat-cli ran");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file under `dir`.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Client `j`'s `chat-cli listen`, once its socket is open (killed when dropped).
pub async fn daemon(c: &Cluster, j: u32) -> tokio::process::Child {
    let child = cli(c, j)
        .args(["listen"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = c.dir.path().join(format!("data/client-{j}/chat.sock"));
    let end = Instant::now() + DEADLINE;
    while !client::daemon::running(&socket).await {
        assert!(Instant::now() < end, "the daemon never opened {socket:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child
}

/// Register client `j` as `client-<j>` with `chat-cli register`, retrying while the
/// cluster settles (up to 20 s).
pub async fn register_cli(c: &Cluster, j: u32) {
    let name = format!("client-{j}");
    for _ in 0..40 {
        if run(c, j, &["register", &name]).await.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "chat-cli register {name} never succeeded\n{}",
        c.log_tails()
    );
}
