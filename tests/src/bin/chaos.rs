//! Chaos run: real node processes under a seeded fault schedule (kill -9 and restart,
//! SIGSTOP/SIGCONT, and network partitions through namespaces when run as root) while
//! client engines chat, then an invariant check.
//!
//! Never more than f servers are faulted at once. At the end it reports
//! `lost=… duplicated=… divergent=… panics=…` and exits non-zero on any violation,
//! printing the seed to replay. Started by `scripts/chaos.sh`.
//!
//! The schedule (`tests::chaos::schedule`) and the checks (`tests::chaos::invariants`)
//! live in the library, pure and unit-tested; this binary runs the processes, the
//! traffic and the clock.

use std::time::{Duration, Instant};

use clap::Parser;
use client::engine::{Delivery, EngineHandle, Event};
use rand::{Rng, SeedableRng};
use tests::chaos::invariants::{check, Finding, Observations};
use tests::chaos::schedule::{self, Executor, Fault, Shape, DRAIN};
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
    let n = args.nodes as usize;
    let f = schedule::max_faulty(n);
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
        ..ClusterOpts::traffic(args.nodes, args.clients)
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
    let mut obs = Observations::default();
    let mut faults_injected = Vec::new();

    // The fault schedule is drawn up front from the seed, so a seed always replays the
    // same faults at the same offsets; traffic uses its own RNG stream.
    let mut traffic_rng = rand::rngs::StdRng::seed_from_u64(args.seed ^ 0x0074_7261_6666_6963);
    let plan = schedule::plan(&Shape {
        seed: args.seed,
        duration: Duration::from_secs(args.duration),
        nodes: n,
        f,
        partitions: net.is_some(),
    });
    let mut faults = Executor::new(plan, f);

    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration);
    let drain_end = end + DRAIN;
    let mut next_send = start;
    // Queueing results; bounded, a queueing task waits if the loop falls behind.
    let (queued_tx, mut queued_rx) =
        mpsc::channel::<(usize, usize, String, Result<u64, String>)>(256);
    let mut msg_no = 0u64;

    loop {
        let now = Instant::now();
        if now > drain_end {
            break;
        }
        // Heal faults whose time has come.
        let due = faults.heals_due(now - start);
        if !due.is_empty() {
            for a in due {
                heal(&mut c, net.as_deref(), n, a.node, a.fault)?;
                obs.heal(Instant::now());
            }
            faults.healed(Instant::now() - start);
        }
        // Inject scheduled faults (their heals come first, so at most f are active). A
        // fault delayed by a slow loop waits until the last heal is QUIET old, so "rounds
        // resumed within 5 s of a heal" is measured on a healed cluster.
        for p in faults.faults_due(now - start) {
            match p.fault {
                Fault::Kill => c.kill(p.node),
                Fault::Pause => {
                    c.signal(p.node, "STOP");
                }
                Fault::Partition => {
                    if let Some(net) = &net {
                        net.cut(p.node, &(0..n).collect::<Vec<_>>())?;
                    }
                }
            }
            faults_injected.push(format!(
                "{:.1}s {:?} node {} for {:.1}s",
                (now - start).as_secs_f64(),
                p.fault,
                p.node,
                p.hold.as_secs_f64()
            ));
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
                Ok(id) => obs.queued(from, to, text, id),
                Err(e) => eprintln!("chaos: queueing failed (cluster busy?): {e}"),
            }
        }
        // Collect events.
        for (i, cl) in clients.iter_mut().enumerate() {
            while let Ok(ev) = cl.rx.try_recv() {
                match ev {
                    Event::Message { text, .. } => obs.received(i, text),
                    Event::State {
                        id,
                        delivery: Delivery::Sent(_),
                        ..
                    } => {
                        obs.sent(i, id);
                    }
                    Event::Round { round, hash, .. } => {
                        // Time from each heal to the first round accepted after it.
                        obs.round(round, hash, Instant::now());
                    }
                    _ => {}
                }
            }
        }
        for i in 0..n {
            if let Some(pid) = c.pid(i) {
                obs.rss_kb(rss_kb(pid));
            }
        }
        // After the traffic ends, stop early once everything sent was received.
        if now > end + Duration::from_secs(5)
            && obs.all_sent_arrived()
            && faults.active().is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A fault injected late in the drain is healed before the checks: every fault ends.
    for a in faults.heal_all() {
        heal(&mut c, net.as_deref(), n, a.node, a.fault)?;
    }

    // Invariants.
    let panics = c.logs().matches("panicked").count();
    let max_disk: u64 = c
        .nodes
        .iter()
        .map(|nd| dir_bytes(&nd.data_dir))
        .max()
        .unwrap_or(0);
    let verdict = check(&obs, panics, max_disk);
    for finding in &verdict.findings {
        match finding {
            Finding::Lost(text) => println!("chaos: LOST {text:?}"),
            Finding::Duplicated(text, got) => {
                println!("chaos: DUPLICATED or misdelivered {text:?} to {got:?}")
            }
        }
    }
    println!("chaos: faults injected:");
    for fl in &faults_injected {
        println!("  {fl}");
    }
    println!("{}", verdict.figures_line());
    println!("{}", verdict.summary_line(args.seed));
    Ok(verdict.ok())
}

/// Undo `fault` on `node`: restart it, resume it, or reconnect it to every server.
fn heal(
    c: &mut Cluster,
    net: Option<&tests::netns::Net>,
    n: usize,
    node: usize,
    fault: Fault,
) -> anyhow::Result<()> {
    match fault {
        Fault::Kill => c.restart(node)?,
        Fault::Pause => {
            c.signal(node, "CONT");
        }
        Fault::Partition => {
            if let Some(net) = net {
                net.heal(node, &(0..n).collect::<Vec<_>>())?;
            }
        }
    }
    Ok(())
}
