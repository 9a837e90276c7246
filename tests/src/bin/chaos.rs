//! Chaos run: real node processes under a seeded fault schedule (kill -9 and restart,
//! SIGSTOP/SIGCONT, and network partitions through namespaces when run as root) while
//! client engines chat, then an invariant check.
//!
//! Never more than f servers are faulted at once. At the end it reports
//! `lost=… duplicated=… divergent=… panics=…` and exits non-zero on any violation,
//! printing the seed to replay. Started by `scripts/chaos.sh`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use clap::Parser;
use client::engine::{Delivery, EngineHandle, Event};
use rand::{Rng, SeedableRng};
use tests::cluster::{Cluster, ClusterOpts};
use tokio::sync::mpsc;

/// Seeded chaos run against a local cluster.
#[derive(Parser, Debug)]
struct Args {
    /// Seed for the fault schedule and the traffic.
    #[arg(long)]
    seed: u64,
    /// Seconds of faults and traffic (a quiet drain period follows).
    #[arg(long)]
    duration: u64,
    /// Servers.
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// Chat clients.
    #[arg(long, default_value_t = 20)]
    clients: u32,
    /// Network partitions (each node in its own network namespace; needs root and
    /// iproute2): `auto` uses them when they can be set up, `on` requires them.
    #[arg(long, default_value = "auto", value_parser = ["auto", "on", "off"])]
    partitions: String,
}

/// Healthy time after a heal before the next fault.
const QUIET: Duration = Duration::from_secs(6);

#[derive(Clone, Copy, Debug)]
enum Fault {
    Kill,
    Pause,
    /// Cut the node off from every other server (clients still reach it).
    Partition,
}

struct ClientState {
    name: String,
    engine: EngineHandle,
    rx: mpsc::Receiver<Event>,
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                dir_bytes(&path)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    println!("chaos: seed={} duration={}s nodes={} clients={} (replay: scripts/chaos.sh --seed {} --duration {} --nodes {} --clients {})",
        args.seed, args.duration, args.nodes, args.clients, args.seed, args.duration, args.nodes, args.clients);
    match run(&args).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            println!("chaos: VIOLATIONS; replay with --seed {}", args.seed);
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            println!("chaos: run failed: {e:#}; replay with --seed {}", args.seed);
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<bool> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let n = args.nodes as usize;
    let f = (n - 1) / 2;
    let net = match args.partitions.as_str() {
        "off" => None,
        mode => match tests::netns::Net::create(n) {
            Ok(net) => Some(std::sync::Arc::new(net)),
            Err(e) if mode == "auto" => {
                println!("chaos: partitions off: cannot set up network namespaces: {e:#}");
                None
            }
            Err(e) => return Err(e.context("--partitions on")),
        },
    };
    if let Some(net) = &net {
        println!("chaos: partitions on: {net:?}");
    }
    let mut c = Cluster::start(ClusterOpts {
        net: net.clone(),
        servers: args.nodes,
        clients: args.clients,
        round_ms: 500,
        min_anonymity_set: 3,
        snapshot_logs: 500,
        keep_logs: 100,
        ..ClusterOpts::default()
    })?;
    c.wait_for("an agreed leader", Duration::from_secs(60), || {
        c.agreed_leader()
    })
    .await?;
    let mut clients = Vec::new();
    for j in 1..=args.clients {
        let (engine, rx) = c.registered_client(j).await?;
        let name = format!("client-{j}");
        clients.push(ClientState { name, engine, rx });
    }

    // What happened, as the clients saw it.
    let mut expected: HashMap<String, (usize, usize)> = HashMap::new(); // text → (from, to)
    let mut id_text: HashMap<(usize, u64), String> = HashMap::new();
    let mut received: HashMap<String, Vec<usize>> = HashMap::new();
    let mut round_hashes: BTreeMap<u64, HashMap<String, usize>> = BTreeMap::new();
    let mut heals: Vec<Instant> = Vec::new();
    let mut resume_gaps: Vec<f64> = Vec::new();
    let mut max_rss_kb = 0u64;
    let mut faults_injected = Vec::new();

    // The fault schedule is drawn up front from the seed, so a seed always replays the
    // same faults at the same offsets; traffic uses its own RNG stream.
    let mut traffic_rng = rand::rngs::StdRng::seed_from_u64(args.seed ^ 0x0074_7261_6666_6963);
    let mut schedule: Vec<(Duration, usize, Fault, Duration)> = Vec::new();
    let mut at = Duration::from_secs(rng.gen_range(4..8));
    while at < Duration::from_secs(args.duration) {
        let hold = Duration::from_millis(rng.gen_range(2000..6000));
        // Up to f servers at once: the next fault may start while this one holds only
        // when f > 1.
        let width = rng.gen_range(1..=f.max(1));
        let first = rng.gen_range(0..n);
        for k in 0..width {
            let kinds: &[Fault] = if net.is_some() {
                &[Fault::Kill, Fault::Pause, Fault::Partition]
            } else {
                &[Fault::Kill, Fault::Pause]
            };
            let fault = kinds[rng.gen_range(0..kinds.len())];
            schedule.push((at, (first + k) % n, fault, hold));
        }
        at += hold + Duration::from_secs(rng.gen_range(3..8));
    }
    let mut schedule = std::collections::VecDeque::from(schedule);

    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration);
    let drain_end = end + Duration::from_secs(30);
    let mut active: Vec<(usize, Fault, Instant)> = Vec::new(); // node, fault, heal at
    let mut last_heal: Option<Instant> = None;
    let mut next_send = start;
    let (queued_tx, mut queued_rx) =
        mpsc::channel::<(usize, usize, String, Result<u64, String>)>(256);
    let mut sent_ids: std::collections::HashSet<(usize, u64)> = std::collections::HashSet::new();
    let mut msg_no = 0u64;

    loop {
        let now = Instant::now();
        if now > drain_end {
            break;
        }
        // Heal faults whose time has come.
        let mut still = Vec::new();
        for (node, fault, heal_at) in active.drain(..) {
            if now >= heal_at {
                match fault {
                    Fault::Kill => c.restart(node)?,
                    Fault::Pause => {
                        c.signal(node, "CONT");
                    }
                    Fault::Partition => {
                        if let Some(net) = &net {
                            net.heal(node, &(0..n).collect::<Vec<_>>())?;
                        }
                    }
                }
                heals.push(Instant::now());
                last_heal = Some(Instant::now());
            } else {
                still.push((node, fault, heal_at));
            }
        }
        active = still;
        // Inject scheduled faults (their heals come first, so at most f are active). A
        // fault delayed by a slow loop waits until the last heal is QUIET old, so "rounds
        // resumed within 5 s of a heal" is measured on a healed cluster.
        while schedule
            .front()
            .is_some_and(|(off, ..)| start + *off <= now)
            && active.len() < f
            && last_heal.is_none_or(|h| now >= h + QUIET)
        {
            let Some((_, node, fault, hold)) = schedule.pop_front() else {
                break;
            };
            if active.iter().any(|a| a.0 == node) {
                continue;
            }
            match fault {
                Fault::Kill => c.kill(node),
                Fault::Pause => {
                    c.signal(node, "STOP");
                }
                Fault::Partition => {
                    if let Some(net) = &net {
                        net.cut(node, &(0..n).collect::<Vec<_>>())?;
                    }
                }
            }
            faults_injected.push(format!(
                "{:.1}s {:?} node {node} for {:.1}s",
                (now - start).as_secs_f64(),
                fault,
                hold.as_secs_f64()
            ));
            active.push((node, fault, now + hold));
        }
        // Traffic: one new message about every 700 ms until the end.
        if now < end && now >= next_send {
            let from = traffic_rng.gen_range(0..clients.len());
            let mut to = traffic_rng.gen_range(0..clients.len() - 1);
            if to >= from {
                to += 1;
            }
            msg_no += 1;
            let text = format!(
                "chaos {} msg {msg_no} {}->{} #{:08x}",
                args.seed,
                clients[from].name,
                clients[to].name,
                traffic_rng.gen::<u32>()
            );
            // Queueing asks the directory, which can take seconds while a server is
            // paused: do it off the loop so faults and heals stay on schedule.
            let (engine, to_name, tx) = (
                clients[from].engine.clone(),
                clients[to].name.clone(),
                queued_tx.clone(),
            );
            tokio::spawn(async move {
                let r = engine.send(&to_name, &text, false).await;
                let _ = tx.send((from, to, text, r)).await;
            });
            next_send = now + Duration::from_millis(700);
        }
        while let Ok((from, to, text, r)) = queued_rx.try_recv() {
            match r {
                Ok(id) => {
                    id_text.insert((from, id), text.clone());
                    expected.insert(text, (from, to));
                }
                Err(e) => eprintln!("chaos: queueing failed (cluster busy?): {e}"),
            }
        }
        // Collect events.
        for (i, cl) in clients.iter_mut().enumerate() {
            while let Ok(ev) = cl.rx.try_recv() {
                match ev {
                    Event::Message { text, .. } => received.entry(text).or_default().push(i),
                    Event::State {
                        id,
                        delivery: Delivery::Sent(_),
                        ..
                    } => {
                        sent_ids.insert((i, id));
                    }
                    Event::Round { round, hash, .. } => {
                        *round_hashes
                            .entry(round)
                            .or_default()
                            .entry(hash)
                            .or_default() += 1;
                        let t = Instant::now();
                        // Time from each heal to the first round accepted after it.
                        heals.retain(|h| {
                            if t >= *h {
                                resume_gaps.push((t - *h).as_secs_f64());
                                false
                            } else {
                                true
                            }
                        });
                    }
                    _ => {}
                }
            }
        }
        for i in 0..n {
            if let Some(pid) = c.pid(i) {
                max_rss_kb = max_rss_kb.max(rss_kb(pid));
            }
        }
        let sender_sent: HashMap<String, bool> = id_text
            .iter()
            .filter(|(k, _)| sent_ids.contains(k))
            .map(|(_, t)| (t.clone(), true))
            .collect();
        // After the traffic ends, stop early once everything sent was received.
        if now > end + Duration::from_secs(5)
            && expected
                .keys()
                .all(|t| !sender_sent.contains_key(t) || received.contains_key(t))
            && active.is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Invariants.
    let sender_sent: HashMap<String, bool> = id_text
        .iter()
        .filter(|(k, _)| sent_ids.contains(k))
        .map(|(_, t)| (t.clone(), true))
        .collect();
    let mut lost = 0;
    let mut duplicated = 0;
    for (text, (_, to)) in &expected {
        let got = received.get(text).cloned().unwrap_or_default();
        if sender_sent.contains_key(text) && !got.contains(to) {
            lost += 1;
            println!("chaos: LOST {text:?}");
        }
        if got.len() > 1 || got.iter().any(|r| r != to) {
            duplicated += 1;
            println!("chaos: DUPLICATED or misdelivered {text:?} to {got:?}");
        }
    }
    let divergent = round_hashes.values().filter(|h| h.len() > 1).count();
    let panics = c.logs().matches("panicked").count();
    let slow_resumes = resume_gaps.iter().filter(|g| **g > 5.0).count();
    let max_disk: u64 = c
        .nodes
        .iter()
        .map(|nd| dir_bytes(&nd.data_dir))
        .max()
        .unwrap_or(0);
    let mem_ok = max_rss_kb < 512 * 1024;
    let disk_ok = max_disk < 256 * 1024 * 1024;
    let delivered = expected
        .keys()
        .filter(|t| received.contains_key(*t))
        .count();
    println!("chaos: faults injected:");
    for fl in &faults_injected {
        println!("  {fl}");
    }
    println!(
        "chaos: messages queued={} sent={} delivered={}; rounds accepted={}; max resume after heal={:.1}s; max node RSS={} MB; max data dir={} MB",
        expected.len(),
        sender_sent.len(),
        delivered,
        round_hashes.len(),
        resume_gaps.iter().copied().fold(0.0, f64::max),
        max_rss_kb / 1024,
        max_disk / (1024 * 1024)
    );
    println!(
        "lost={lost} duplicated={duplicated} divergent={divergent} panics={panics} slow_resumes={slow_resumes} memory_ok={mem_ok} disk_ok={disk_ok} seed={}",
        args.seed
    );
    Ok(lost == 0
        && duplicated == 0
        && divergent == 0
        && panics == 0
        && slow_resumes == 0
        && mem_ok
        && disk_ok)
}
