//! Abuse run: honest clients chat while a hostile client attacks the cluster at a bounded
//! rate; their latency is compared with a baseline phase without the attack, in the same
//! run, against the same cluster.
//!
//! Attack classes, in turn: malformed, truncated and oversized frames; future-round,
//! stale-round, replayed and badly signed submissions; the wrong share count; an unknown
//! client; Raft RPCs from a client PeerId; connection churn (a fresh identity per
//! connection); junk gossip from a non-server peer; history-request floods; registration
//! floods; registering someone else's x25519 key; concurrent copies of one submission to
//! every server. Throughout the attack phase one server also reveals wrong sums (the
//! test-only fault switch), which the others must outvote and name. Jamming classes
//! ([`tests::jam::Jam`]: a random vector, two message slots, a malformed reservation, a
//! share that does not open, a bad proof, inconsistent shares, a proof from another
//! round), each from its own listed identity, are sent to every server among the honest
//! chat and must be left out of their rounds by name, and a jammer excluded that often
//! must then be refused while it cools off. Each class must be
//! refused or corrected with its named reason in the servers' metrics, no node may
//! crash, every honest message must arrive, and the honest p99 latency under attack must
//! stay within `--max-ratio` of the baseline's.
//!
//! Prints a table per class and a summary line; exits non-zero on any violation.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::types::{PeerRequest, PeerResponse};
use clap::Parser;
use client::config::Settings;
use client::conn::ClusterConn;
use client::engine::{EngineHandle, Event};
use keys::manifest::Policy;
use libp2p::request_response::{self, ProtocolSupport};
use p2p::frame::FrameCodec;
use p2p::names::{CLIENT_PROTOCOL, RAFT_PROTOCOL};
use protocol::bounded::{BoundedVec, Bytes};
use protocol::submission::build_submission;
use protocol::wire::{
    ClientRequest, ClientResponse, Command, PublicKeys, Register, RejectReason, Submission,
};
use rand::{Rng, SeedableRng};
use tests::cluster::{Cluster, ClusterOpts};
use tests::hostile::{one, swarm, Raw};
use tests::jam::Jam;
use tests::metrics::{self, scrape, Totals};
use tests::stats::percentile;
use tokio::sync::mpsc;

/// Honest chat under a bounded-rate attack, against a baseline without it.
#[derive(Parser, Debug)]
struct Args {
    /// Seconds of each phase: baseline (no attack), then attack.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Attack requests per second (the classes take turns).
    #[arg(long, default_value_t = 40)]
    rate: u32,
    /// Honest chat clients.
    #[arg(long, default_value_t = 5)]
    clients: u32,
    /// Honest messages per second, all clients together.
    #[arg(long, default_value_t = 3.0)]
    msg_rate: f64,
    /// Largest allowed ratio of attack p99 to baseline p99.
    #[arg(long, default_value_t = 2.0)]
    max_ratio: f64,
    /// Slots per round (more slots, fewer collisions: retries from collisions are
    /// honest latency too, but they make small samples noisy).
    #[arg(long, default_value_t = 64)]
    slots: u32,
    /// Seed for the traffic pattern.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Servers (5 or more, so that one lying server can be outvoted: n = 5, t = 2).
    #[arg(long, default_value_t = 5)]
    servers: u32,
}

/// An attack class: its name, and the metric (family, reason) that must count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Class {
    MalformedFrame,
    TruncatedFrame,
    OversizedFrame,
    FutureRound,
    StaleRound,
    Replay,
    BadSignature,
    WrongDigestCount,
    UnknownClient,
    RaftFromClient,
    ConnectionChurn,
    JunkGossip,
    HistoryFlood,
    RegistrationFlood,
    StolenKey,
    ConcurrentReplay,
}

const CLASSES: [Class; 16] = [
    Class::MalformedFrame,
    Class::TruncatedFrame,
    Class::OversizedFrame,
    Class::FutureRound,
    Class::StaleRound,
    Class::Replay,
    Class::BadSignature,
    Class::WrongDigestCount,
    Class::UnknownClient,
    Class::RaftFromClient,
    Class::ConnectionChurn,
    Class::JunkGossip,
    Class::HistoryFlood,
    Class::RegistrationFlood,
    Class::StolenKey,
    Class::ConcurrentReplay,
];

/// History requests sent at once by one flood.
const HISTORY_FLOOD: usize = 100;
/// Registrations sent at once by one flood.
const REGISTRATION_FLOOD: usize = 10;

impl Class {
    fn name(self) -> &'static str {
        match self {
            Self::MalformedFrame => "malformed frame",
            Self::TruncatedFrame => "truncated frame",
            Self::OversizedFrame => "oversized frame",
            Self::FutureRound => "future-round submission",
            Self::StaleRound => "stale-round submission",
            Self::Replay => "replayed submission",
            Self::BadSignature => "bad signature",
            Self::WrongDigestCount => "wrong digest count",
            Self::UnknownClient => "unknown client",
            Self::RaftFromClient => "Raft RPC from a client",
            Self::ConnectionChurn => "connection churn",
            Self::JunkGossip => "junk gossip from a non-server",
            Self::HistoryFlood => "history-request flood",
            Self::RegistrationFlood => "registration flood",
            Self::StolenKey => "someone else's x25519 key",
            Self::ConcurrentReplay => "concurrent copies of a submission",
        }
    }

    /// The metric line prefix and reason label that counts this class.
    fn metric(self) -> (&'static str, &'static str) {
        const NET: &str = "chorus_network_rejections_total";
        const CMD: &str = "chorus_commands_rejected_total";
        match self {
            Self::MalformedFrame => (NET, "client_malformed_frame"),
            Self::TruncatedFrame => (NET, "client_truncated_frame"),
            Self::OversizedFrame => (NET, "client_frame_too_large"),
            Self::FutureRound => (CMD, "future_round"),
            Self::StaleRound => (CMD, "stale_round"),
            Self::Replay => (CMD, "duplicate_submission"),
            Self::BadSignature => (CMD, "bad_signature"),
            Self::WrongDigestCount => (CMD, "wrong_digest_count"),
            Self::UnknownClient => (CMD, "unknown_client"),
            Self::RaftFromClient => (NET, "raft_from_non_server"),
            Self::ConnectionChurn => ("chorus_connections_opened_total", ""),
            Self::JunkGossip => (NET, "gossip_from_non_server"),
            Self::HistoryFlood => (NET, "history_peer_quota"),
            Self::RegistrationFlood => (CMD, "keys_taken"),
            Self::StolenKey => (CMD, "bad_key_proof"),
            Self::ConcurrentReplay => (CMD, "duplicate_submission"),
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Tally {
    sent: u64,
    /// The response (or the dropped stream) was the refusal we expected (for churn:
    /// the one request was served).
    refused: u64,
    /// Anything else, e.g. a timeout.
    other: u64,
}

/// What became of one jamming class's submissions.
#[derive(Default, Clone, Copy)]
struct JamTally {
    sent: u64,
    /// Taken by every server to be left out at the decision (or, for a share that does
    /// not open, refused by that server alone).
    refused: u64,
    /// Refused while the jammer cools off.
    cooling: u64,
    /// Anything else (a round that closed on the way, a timeout).
    other: u64,
}

/// How much the counter that refuses `class` grew from `before` to `after`.
fn delta(after: &Totals, before: &Totals, class: Class) -> u64 {
    let (family, reason) = class.metric();
    metrics::delta(after, before, family, reason)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    println!(
        "abuse: duration={}s per phase, rate={}/s, clients={}, msg_rate={}/s, slots={}, seed={}",
        args.duration, args.rate, args.clients, args.msg_rate, args.slots, args.seed
    );
    match run(&args).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            println!("abuse: VIOLATIONS");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            println!("abuse: run failed: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<bool> {
    // Client 1 is the attacker's listed identity (for replays and bad signatures);
    // clients 2.. chat honestly.
    // Client 1 attacks; clients 2..=clients+1 chat; the last Jam::ALL.len() jam, one
    // class each.
    let jammers_from = args.clients + 2;
    let mut c = Cluster::start(ClusterOpts {
        policy: Policy::Listed,
        slots: args.slots,
        // Every node may have its faults switched through its admin endpoint.
        env: (0..args.servers as usize)
            .map(|i| (i, "CHORUS_FAULTS".to_string(), "1".to_string()))
            .collect(),
        ..ClusterOpts::traffic(args.servers, args.clients + 1 + Jam::ALL.len() as u32)
    })?;
    let liar = args.servers as usize - 1;
    c.wait_for("an agreed leader", Duration::from_secs(60), || {
        c.agreed_leader()
    })
    .await?;

    let (events_tx, mut events) = mpsc::channel::<(usize, Event)>(4096);
    let mut engines: Vec<EngineHandle> = Vec::new();
    for j in 2..=args.clients + 1 {
        let (engine, mut rx) = c.registered_client(j).await?;
        let idx = engines.len();
        let tx = events_tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                if tx.send((idx, ev)).await.is_err() {
                    break;
                }
            }
        });
        engines.push(engine);
    }
    drop(events_tx);

    // Honest traffic: a fixed schedule from the seed, sends off the main loop.
    let names: Vec<String> = (2..=args.clients + 1)
        .map(|j| format!("client-{j}"))
        .collect();
    let sent: Arc<std::sync::Mutex<HashMap<String, (u8, usize)>>> = Arc::default();
    let phase = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let traffic_on = Arc::new(AtomicBool::new(true));
    let traffic = {
        let engines = engines.clone();
        let names = names.clone();
        let sent = sent.clone();
        let phase = phase.clone();
        let on = traffic_on.clone();
        let seed = args.seed;
        let period = Duration::from_secs_f64(1.0 / args.msg_rate.max(0.1));
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut tick = tokio::time::interval(period);
            let mut seq = 0u64;
            while on.load(Ordering::Relaxed) {
                tick.tick().await;
                let p = phase.load(Ordering::Relaxed);
                if p == 0 {
                    continue;
                }
                let from = rng.gen_range(0..engines.len());
                let mut to = rng.gen_range(0..engines.len() - 1);
                if to >= from {
                    to += 1;
                }
                seq += 1;
                let text = format!("honest {seq} phase {p}");
                if let Ok(mut s) = sent.lock() {
                    s.insert(text.clone(), (p, to));
                }
                let e = engines[from].clone();
                let to_name = names[to].clone();
                tokio::spawn(async move {
                    let _ = e.send(&to_name, &text, false).await;
                });
            }
        })
    };

    // Collect latencies as messages arrive, in the background of both phases.
    let latencies: Arc<std::sync::Mutex<Vec<(String, usize, u64)>>> = Arc::default();
    let collector = {
        let lat = latencies.clone();
        tokio::spawn(async move {
            while let Some((idx, ev)) = events.recv().await {
                if let Event::Message {
                    text, latency_ms, ..
                } = ev
                {
                    if let Ok(mut l) = lat.lock() {
                        l.push((text, idx, latency_ms));
                    }
                }
            }
        })
    };

    // Warm up until a round with the honest clients has been accepted.
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!("abuse: baseline phase ({} s, no attack)", args.duration);
    let m0 = scrape(&c).await;
    phase.store(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(args.duration)).await;

    println!(
        "abuse: attack phase ({} s, {} requests/s)",
        args.duration, args.rate
    );
    let m1 = scrape(&c).await;
    phase.store(2, Ordering::Relaxed);
    switch_lies(&c, liar, true).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = {
        let me = Settings::load(&c.client_config(1))?;
        let jammers = (0..Jam::ALL.len() as u32)
            .map(|k| Settings::load(&c.client_config(jammers_from + k)).map(|s| s.identity))
            .collect::<Result<Vec<_>, _>>()?;
        let servers = c.servers.clone();
        let (conn, _conn_events) = c.connect().await?;
        let stop = stop.clone();
        let rate = args.rate;
        tokio::spawn(async move { attack(me, jammers, servers, conn, rate, stop).await })
    };
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    stop.store(true, Ordering::Relaxed);
    phase.store(0, Ordering::Relaxed);
    let (tallies, jams) = attacker.await??;
    switch_lies(&c, liar, false).await?;

    // Drain: every honest message sent should arrive.
    let drain_deadline = Instant::now() + Duration::from_secs(45);
    let (mut delivered, mut expected) = (0usize, 0usize);
    while Instant::now() < drain_deadline {
        let s = sent.lock().map(|s| s.clone()).unwrap_or_default();
        let l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
        expected = s.len();
        delivered = s
            .iter()
            .filter(|(text, (_, to))| l.iter().any(|(t, i, _)| t == *text && i == to))
            .count();
        if delivered == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    traffic_on.store(false, Ordering::Relaxed);
    traffic.abort();
    // Metrics are counted when each node applies the commands: give them a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m2 = scrape(&c).await;

    let crashed: Vec<usize> = (0..c.nodes.len()).filter(|&i| c.exited(i)).collect();
    let panics = c.logs().matches("panicked").count();
    collector.abort();

    let l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    let sent = sent.lock().map(|s| s.clone()).unwrap_or_default();
    let mut by_phase: BTreeMap<u8, Vec<u64>> = BTreeMap::new();
    for (text, _, ms) in &l {
        if let Some((p, _)) = sent.get(text) {
            by_phase.entry(*p).or_default().push(*ms);
        }
    }
    for v in by_phase.values_mut() {
        v.sort_unstable();
    }
    let stats = |p: u8| {
        let v = by_phase.get(&p).cloned().unwrap_or_default();
        (
            v.len(),
            percentile(&v, 0.5).unwrap_or(0),
            percentile(&v, 0.99).unwrap_or(0),
            v.last().copied().unwrap_or(0),
        )
    };
    let (n1, p50_1, p99_1, max_1) = stats(1);
    let (n2, p50_2, p99_2, max_2) = stats(2);
    let ratio = if p99_1 == 0 {
        f64::INFINITY
    } else {
        p99_2 as f64 / p99_1 as f64
    };

    println!();
    println!("| attack class | sent | handled as expected | other | metric (reason) | counted under attack | counted in baseline |");
    println!("|---|---|---|---|---|---|---|");
    let mut all_counted = true;
    for class in CLASSES {
        let t = tallies.get(&class).copied().unwrap_or_default();
        let (family, reason) = class.metric();
        let under = delta(&m2, &m1, class);
        let base = delta(&m1, &m0, class);
        let counted = t.sent > 0 && under >= 1 && t.refused > 0;
        all_counted &= counted;
        println!(
            "| {} | {} | {} | {} | {}{} | {} | {} |",
            class.name(),
            t.sent,
            t.refused,
            t.other,
            family,
            if reason.is_empty() {
                String::new()
            } else {
                format!("{{reason=\"{reason}\"}}")
            },
            under,
            base
        );
    }
    for (k, jam) in Jam::ALL.into_iter().enumerate() {
        let t = jams.get(&jam).copied().unwrap_or_default();
        let (family, reason) = jam.metric();
        let under = metrics::delta(&m2, &m1, family, reason);
        let base = metrics::delta(&m1, &m0, family, reason);
        // Left out (or refused) by name at least once before cooling off.
        let counted = t.sent > 0 && t.refused > 0 && under >= 1 && base == 0;
        all_counted &= counted;
        println!(
            "| {} (client {}) | {} | {} | {} | {family}{{reason=\"{reason}\"}} | {under} | {base} |",
            jam.name(),
            jammers_from + k as u32,
            t.sent,
            t.refused,
            t.other,
        );
    }
    let cooling = |a: &Totals, b: &Totals| {
        metrics::delta(a, b, "chorus_commands_rejected_total", "cooling_off")
    };
    let (cooled_under, cooled_base) = (cooling(&m2, &m1), cooling(&m1, &m0));
    let cooled: u64 = jams.values().map(|t| t.cooling).sum();
    all_counted &= cooled_under >= 1 && cooled >= 1 && cooled_base == 0;
    println!(
        "| a jammer cooling off (after {} exclusions) | {cooled} refused | | | chorus_commands_rejected_total{{reason=\"cooling_off\"}} | {cooled_under} | {cooled_base} |",
        protocol::params::DEFAULT_EXCLUSIONS_BEFORE_COOLING
    );
    // The lying server: outvoted in every round it lied in, and named on every node.
    let lies = |a: &Totals, b: &Totals| metrics::delta(a, b, "chorus_reveal_dissent_rounds", "");
    let (named_under, named_base) = (lies(&m2, &m1), lies(&m1, &m0));
    let outputs = metrics::delta(&m2, &m1, "chorus_rounds_total", "") / u64::from(args.servers);
    let unchecked = metrics::delta(&m2, &m1, "chorus_outputs_unchecked", "");
    let liar_named_everywhere = liar_named(&c, liar).await;
    let liar_ok = named_under >= 1 && named_base == 0 && liar_named_everywhere;
    all_counted &= liar_ok;
    println!(
        "| server {liar} reveals wrong sums | {outputs} round outcomes | named on every node: {liar_named_everywhere} | unchecked outputs: {unchecked} | chorus_reveal_dissent_rounds{{server=\"{liar}\"}} (summed over nodes) | {named_under} | {named_base} |"
    );
    println!();
    println!("| phase | honest messages | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    println!("| baseline | {n1} | {p50_1} | {p99_1} | {max_1} |");
    println!("| attack | {n2} | {p50_2} | {p99_2} | {max_2} |");
    println!();
    let lost = expected - delivered;
    let ok = all_counted
        && crashed.is_empty()
        && panics == 0
        && lost == 0
        && n1 > 0
        && n2 > 0
        && ratio <= args.max_ratio;
    println!(
        "abuse: classes={} all_rejected_or_corrected_by_name={} crashes={} panics={} honest_sent={} lost={} p99_baseline_ms={} p99_attack_ms={} ratio={:.2} (max {:.1}) {}",
        CLASSES.len() + Jam::ALL.len() + 2,
        all_counted,
        crashed.len(),
        panics,
        expected,
        lost,
        p99_1,
        p99_2,
        ratio,
        args.max_ratio,
        if ok { "OK" } else { "FAIL" }
    );
    Ok(ok)
}

/// Switch node `liar`'s wrong-reveal fault through its admin endpoint.
async fn switch_lies(c: &Cluster, liar: usize, on: bool) -> anyhow::Result<()> {
    let node = &c.nodes[liar];
    let path = format!("/fault?wrong_reveals={}", u8::from(on));
    let (code, body) = tests::http::post_at(
        &node.admin_host,
        node.admin_port,
        &path,
        Duration::from_secs(5),
    )
    .await?;
    anyhow::ensure!(code == 200, "switching node {liar}'s fault: {code} {body}");
    Ok(())
}

/// Does every node's `/status` name `liar`, and only it, as a dissenting server?
async fn liar_named(c: &Cluster, liar: usize) -> bool {
    for i in 0..c.nodes.len() {
        let Some(s) = c.status(i).await else {
            return false;
        };
        let Some(d) = s["outputs"]["dissenting_servers"].as_object() else {
            return false;
        };
        if d.keys().map(String::as_str).collect::<Vec<_>>() != [liar.to_string().as_str()] {
            return false;
        }
    }
    true
}

/// The attacker: one request every `1/rate` s, classes in turn, servers in turn.
async fn attack(
    me: Settings,
    jammers: Vec<keys::Identity>,
    servers: Vec<client::conn::ServerAddr>,
    conn: ClusterConn,
    rate: u32,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(HashMap<Class, Tally>, HashMap<Jam, JamTally>)> {
    let mut tallies: HashMap<Class, Tally> = HashMap::new();
    let mut jams: HashMap<Jam, JamTally> = HashMap::new();
    let mut sealers: Vec<protocol::seal::Sealer> = jammers
        .iter()
        .map(|_| protocol::seal::Sealer::new(&me.server_dh, &mut rand_core::OsRng))
        .collect();
    let timeout = Duration::from_secs(5);
    let mut raw = swarm(request_response::Behaviour::<Raw>::new(
        [(CLIENT_PROTOCOL, ProtocolSupport::Outbound)],
        request_response::Config::default().with_request_timeout(timeout),
    ))?;
    let mut raft = swarm(request_response::Behaviour::<
        FrameCodec<PeerRequest, PeerResponse>,
    >::new(
        [(RAFT_PROTOCOL, ProtocolSupport::Outbound)],
        request_response::Config::default().with_request_timeout(timeout),
    ))?;
    let stranger = keys::Identity::generate(&mut rand_core::OsRng);
    let junk = tests::hostile::junk_publisher(servers.clone());
    let vector = protocol::vector::Vector::zero(&me.params);
    let build = |round: u64, who: &keys::Identity| -> anyhow::Result<Submission> {
        Ok(build_submission(
            &me.params,
            round,
            &vector,
            who,
            &me.server_dh,
            &mut rand_core::OsRng,
        )?)
    };
    let mut open_round = 0u64;
    let mut round_checked = Instant::now() - Duration::from_secs(10);
    let mut good: Option<(Submission, usize)> = None;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut k = 0usize;
    let turns = CLASSES.len() + Jam::ALL.len();
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let turn = k % turns;
        let server = (k / turns) % servers.len();
        k += 1;
        if round_checked.elapsed() > Duration::from_millis(200) {
            if let Ok(ClientResponse::Status(s)) =
                conn.request(server as u16, ClientRequest::Status).await
            {
                if s.open_round != open_round {
                    open_round = s.open_round;
                    good = None;
                }
            }
            round_checked = Instant::now();
        }
        // This server's share of `s`, to this server (shares never travel together).
        let submit_to = |s: Submission, to: usize| {
            let conn = conn.clone();
            async move {
                let up = s.upload_for(to as u16)?;
                tokio::time::timeout(timeout, conn.request(to as u16, ClientRequest::Share(up)))
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
        };
        let submit = |s: Submission| submit_to(s, server);
        let Some(&class) = CLASSES.get(turn) else {
            // A jamming turn: the jammer of this class sends to every server.
            let j = turn - CLASSES.len();
            let jam = Jam::ALL[j];
            let sub = jam.build(
                &me.params,
                open_round,
                &[],
                &jammers[j],
                &mut sealers[j],
                &mut rand_core::OsRng,
            )?;
            let answers =
                futures::future::join_all((0..servers.len()).map(|i| submit_to(sub.clone(), i)))
                    .await;
            let t = jams.entry(jam).or_default();
            t.sent += 1;
            let cooling = answers.iter().any(|a| {
                matches!(
                    a,
                    Some(ClientResponse::Rejected(RejectReason::CoolingOff { .. }))
                )
            });
            // Held everywhere (to be left out at the decision), or refused at once by the
            // one server its share does not open at.
            let as_expected = answers.iter().all(|a| {
                matches!(
                    a,
                    Some(ClientResponse::Accepted { .. })
                        | Some(ClientResponse::Rejected(RejectReason::ShareDoesNotOpen))
                )
            });
            if cooling {
                t.cooling += 1;
            } else if as_expected {
                t.refused += 1;
            } else {
                t.other += 1;
            }
            continue;
        };
        let refused = match class {
            Class::MalformedFrame | Class::TruncatedFrame | Class::OversizedFrame => {
                let bytes = match class {
                    Class::MalformedFrame => {
                        let mut b = 40u32.to_be_bytes().to_vec();
                        b.extend((0..40u8).map(|x| x.wrapping_mul(37).wrapping_add(k as u8)));
                        b
                    }
                    Class::TruncatedFrame => vec![0u8, 0, 1, 0, 1, 2, 3],
                    _ => u32::MAX.to_be_bytes().to_vec(),
                };
                // No valid answer: the stream is dropped (or an empty read).
                match one(&mut raw, &servers[server], bytes, timeout).await {
                    Ok(b) => Some(b.is_empty()),
                    Err(e) => Some(!e.starts_with("no outcome")),
                }
            }
            Class::FutureRound => {
                let r = submit(build(open_round + 5, &me.identity)?).await;
                r.map(|r| {
                    matches!(
                        r,
                        ClientResponse::Rejected(RejectReason::FutureRound { .. })
                    )
                })
            }
            Class::StaleRound => {
                let r = submit(build(open_round.saturating_sub(2), &me.identity)?).await;
                r.map(|r| matches!(r, ClientResponse::Rejected(RejectReason::StaleRound { .. })))
            }
            Class::Replay => {
                if good.is_none() {
                    let s = build(open_round, &me.identity)?;
                    if let Some(ClientResponse::Accepted { .. }) = submit(s.clone()).await {
                        good = Some((s, server));
                    }
                }
                match &good {
                    Some((s, to)) => submit_to(s.clone(), *to).await.map(|r| {
                        matches!(
                            r,
                            ClientResponse::Rejected(RejectReason::DuplicateSubmission { .. })
                                | ClientResponse::Rejected(RejectReason::StaleRound { .. })
                        )
                    }),
                    None => None,
                }
            }
            Class::BadSignature => {
                let mut s = build(open_round, &me.identity)?;
                s.signature.0[k % 64] ^= 0x40;
                submit(s)
                    .await
                    .map(|r| r == ClientResponse::Rejected(RejectReason::BadSignature))
            }
            Class::WrongDigestCount => {
                let s = build(open_round, &me.identity)?;
                let Some(mut up) = s.upload_for(server as u16) else {
                    continue;
                };
                let digests = up.digests.as_slice()[..up.digests.len() - 1].to_vec();
                up.digests = BoundedVec::new(digests)?;
                tokio::time::timeout(
                    timeout,
                    conn.request(server as u16, ClientRequest::Share(up)),
                )
                .await
                .ok()
                .and_then(Result::ok)
                .map(|r| {
                    matches!(
                        r,
                        ClientResponse::Rejected(RejectReason::WrongDigestCount { .. })
                    )
                })
            }
            Class::UnknownClient => submit(build(open_round, &stranger)?)
                .await
                .map(|r| r == ClientResponse::Rejected(RejectReason::UnknownClient)),
            Class::RaftFromClient => {
                // Alternately a probe and a round's close pushed straight at Raft.
                let cmd = if k % 2 == 0 {
                    Command::Probe {
                        id: k as u64,
                        payload: Bytes::new(b"intruder".to_vec())?,
                    }
                } else {
                    Command::Close { round: open_round }
                };
                match one(
                    &mut raft,
                    &servers[server],
                    PeerRequest::Forward(cmd),
                    timeout,
                )
                .await
                {
                    Ok(PeerResponse::Refused(why)) => Some(why.contains("not a configured server")),
                    Ok(_) => Some(false),
                    Err(_) => None,
                }
            }
            Class::JunkGossip => Some(junk.publish(format!("junk {k}").into_bytes()).await),
            Class::HistoryFlood => {
                let asks = (0..HISTORY_FLOOD).map(|_| {
                    let conn = conn.clone();
                    async move {
                        let req = ClientRequest::History { from_round: 0 };
                        tokio::time::timeout(timeout, conn.request(server as u16, req))
                            .await
                            .ok()
                            .and_then(Result::ok)
                    }
                });
                let answers = futures::future::join_all(asks).await;
                // Served within the quota, then "busy" by name: never a timeout.
                let busy = answers.iter().any(|a| {
                    matches!(a, Some(ClientResponse::Unavailable(t)) if String::from_utf8_lossy(t.as_slice()).contains("history"))
                });
                Some(busy && answers.iter().all(Option::is_some))
            }
            Class::RegistrationFlood => {
                let asks = (0..REGISTRATION_FLOOD).map(|i| {
                    let conn = conn.clone();
                    let reg = Register::new(&format!("flood-{k}-{i}"), &me.identity);
                    async move {
                        let reg = reg.ok()?;
                        let req = ClientRequest::Register(reg);
                        tokio::time::timeout(timeout, conn.request(server as u16, req))
                            .await
                            .ok()
                            .and_then(Result::ok)
                    }
                });
                let answers = futures::future::join_all(asks).await;
                // At most one name per key: the rest are refused by name.
                let refused = answers
                    .iter()
                    .filter(|a| {
                        matches!(a, Some(ClientResponse::Rejected(RejectReason::KeysTaken)))
                    })
                    .count();
                Some(refused + 1 >= REGISTRATION_FLOOD)
            }
            Class::StolenKey => {
                let mut keys = PublicKeys::from_identity(&me.identity.public());
                keys.dh = protocol::bounded::Fixed(stranger.public().dh);
                let name = format!("thief-{k}");
                let signed = Register::signed_bytes(name.as_bytes(), &keys);
                let reg = Register {
                    name: Bytes::new(name.into_bytes())?,
                    keys,
                    signature: protocol::bounded::Fixed(me.identity.sign(&signed)),
                    dh_proof: protocol::bounded::Fixed(me.identity.sign_with_dh(&signed)),
                };
                tokio::time::timeout(
                    timeout,
                    conn.request(server as u16, ClientRequest::Register(reg)),
                )
                .await
                .ok()
                .and_then(Result::ok)
                .map(|r| r == ClientResponse::Rejected(RejectReason::BadKeyProof))
            }
            Class::ConcurrentReplay => {
                // The same fresh submission, each share twice to its server at once:
                // held once per server.
                let s = build(open_round, &me.identity)?;
                let n = servers.len();
                let copies = (0..n * 2).map(|i| {
                    let conn = conn.clone();
                    let up = s.upload_for((i % n) as u16);
                    async move {
                        let req = ClientRequest::Share(up?);
                        tokio::time::timeout(timeout, conn.request((i % n) as u16, req))
                            .await
                            .ok()
                            .and_then(Result::ok)
                    }
                });
                let answers = futures::future::join_all(copies).await;
                // A submission held is one the replay class may replay this round.
                if good.is_none() {
                    if let Some(i) = answers
                        .iter()
                        .position(|a| matches!(a, Some(ClientResponse::Accepted { .. })))
                    {
                        good = Some((s.clone(), i % n));
                    }
                }
                let accepted = answers
                    .iter()
                    .filter(|a| matches!(a, Some(ClientResponse::Accepted { .. })))
                    .count();
                let duplicate = answers
                    .iter()
                    .filter(|a| {
                        matches!(
                            a,
                            Some(ClientResponse::Rejected(
                                RejectReason::DuplicateSubmission { .. }
                                    | RejectReason::StaleRound { .. }
                            ))
                        )
                    })
                    .count();
                Some(accepted <= n && accepted + duplicate == answers.len())
            }
            Class::ConnectionChurn => {
                // A fresh identity, one connection, one request, gone.
                let mut fresh = swarm(request_response::Behaviour::<
                    FrameCodec<ClientRequest, ClientResponse>,
                >::new(
                    [(CLIENT_PROTOCOL, ProtocolSupport::Outbound)],
                    request_response::Config::default().with_request_timeout(timeout),
                ))?;
                let r = one(&mut fresh, &servers[server], ClientRequest::Status, timeout).await;
                Some(matches!(r, Ok(ClientResponse::Status(_))))
            }
        };
        let t = tallies.entry(class).or_default();
        t.sent += 1;
        match refused {
            Some(true) => t.refused += 1,
            _ => t.other += 1,
        }
    }
    Ok((tallies, jams))
}
