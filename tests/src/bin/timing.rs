//! `timing`: are idle, sending and receiving clients alike in when they submit?
//!
//! Starts a real cluster (node processes on 127.0.0.1) and in-process client engines:
//! client-1 sends to client-2 in alternating blocks of rounds (a message every round in
//! one block, nothing in the next); the other clients are online and idle. Each engine
//! records, at trace level on target `chorus_timing`, when it accepted an output and
//! when a submission left; this binary collects those records and, per client, takes
//! for each output round `r` the delay until that client's next submission.
//!
//! Each round of client-1 is labelled `sending` (its message was sent in that round)
//! or `idle`; each round of client-2 `receiving` (a message arrived in it) or `idle`.
//! The same client is compared with itself, so its tick phase is the same in both
//! samples. The two-sample Kolmogorov–Smirnov test says whether the delays could come
//! from one distribution.
//!
//! ```sh
//! cargo build --release -p node -p tests --bin node --bin timing
//! CHORUS_PROFILE=release CHORUS_NO_BUILD=1 target/release/timing --rounds 1000
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use client::engine::{Delivery, Event};
use tests::cluster::{Cluster, ClusterOpts};
use tests::stats::percentile;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event as TraceEvent, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Compare submission timing of idle, sending and receiving clients.
#[derive(Parser, Debug)]
#[command(name = "timing", about)]
struct Args {
    /// Rounds to measure.
    #[arg(long, default_value_t = 1000)]
    rounds: u64,
    /// Round length (ms).
    #[arg(long, default_value_t = 200)]
    round_ms: u64,
    /// Rounds per sending or idle block of client-1.
    #[arg(long, default_value_t = 10)]
    block: u64,
}

/// One record: (engine, "output" | "submit", round, when).
type Record = (String, &'static str, u64, Instant);

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Record>>>);

/// The engine span's `client` field.
struct EngineName(String);

#[derive(Default)]
struct Fields {
    client: Option<String>,
    round: Option<u64>,
    message: Option<String>,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "round" {
            self.round = Some(value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "client" => self.client = Some(format!("{value:?}")),
            "message" => self.message = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "engine" {
            return;
        }
        let mut f = Fields::default();
        attrs.record(&mut f);
        if let (Some(span), Some(name)) = (ctx.span(id), f.client) {
            span.extensions_mut().insert(EngineName(name));
        }
    }

    fn on_event(&self, event: &TraceEvent<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != "chorus_timing" {
            return;
        }
        let at = Instant::now();
        let mut f = Fields::default();
        event.record(&mut f);
        let kind = match f.message.as_deref() {
            Some("output") => "output",
            Some("submit") => "submit",
            _ => return,
        };
        let engine = ctx.event_scope(event).and_then(|scope| {
            scope
                .from_root()
                .find_map(|s| s.extensions().get::<EngineName>().map(|n| n.0.clone()))
        });
        if let (Some(engine), Some(round)) = (engine, f.round) {
            if let Ok(mut v) = self.0.lock() {
                v.push((engine, kind, round, at));
            }
        }
    }
}

/// Per output round: ms from accepting it to the next submission that left.
fn delays(records: &[Record], engine: &str) -> BTreeMap<u64, f64> {
    let mine: Vec<_> = records.iter().filter(|r| r.0 == engine).collect();
    let mut out = BTreeMap::new();
    for (i, (_, kind, round, at)) in mine.iter().enumerate() {
        if *kind != "output" {
            continue;
        }
        if let Some((_, _, _, next)) = mine[i + 1..].iter().find(|r| r.1 == "submit") {
            out.insert(*round, next.duration_since(*at).as_secs_f64() * 1000.0);
        }
    }
    out
}

/// Two-sample Kolmogorov–Smirnov statistic D and its asymptotic p-value.
fn ks(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    let ne = n * m / (n + m);
    let lambda = (ne.sqrt() + 0.12 + 0.11 / ne.sqrt()) * d;
    let mut p = 0.0;
    for k in 1..=100 {
        let k = f64::from(k);
        let sign = if k as u64 % 2 == 1 { 1.0 } else { -1.0 };
        p += sign * 2.0 * (-2.0 * k * k * lambda * lambda).exp();
    }
    (d, p.clamp(0.0, 1.0))
}

fn summary(v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let p = |q| percentile(&s, q).unwrap_or(f64::NAN);
    format!(
        "n={:>4}  p10 {:>6.1}  p50 {:>6.1}  p90 {:>6.1}  p99 {:>6.1} ms",
        s.len(),
        p(0.1),
        p(0.5),
        p(0.9),
        p(0.99)
    )
}

fn compare(label: &str, busy_name: &str, busy: &[f64], idle: &[f64]) -> bool {
    let (d, p) = ks(busy, idle);
    println!("{label}");
    println!("  {busy_name:<9} {}", summary(busy));
    println!("  {:<9} {}", "idle", summary(idle));
    println!("  Kolmogorov-Smirnov: D = {d:.3}, p = {p:.3}");
    p > 0.01
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let recorder = Recorder::default();
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("chorus_timing", tracing::Level::TRACE)
        .with_target("client", tracing::Level::INFO);
    tracing_subscriber::registry()
        .with(recorder.clone().with_filter(filter))
        .init();

    let c = Cluster::start(ClusterOpts {
        clients: 5,
        round_ms: args.round_ms,
        min_anonymity_set: 3,
        retention_rounds: 3600,
        ..ClusterOpts::default()
    })?;
    let mut clients = Vec::new();
    for j in 1..=5 {
        clients.push(c.registered_client(j).await?);
    }
    // Every client's directory has every name once a sync has run.
    tokio::time::sleep(Duration::from_secs(12)).await;
    // The engines' span names: their signing keys' first bytes.
    let engine_name = |j: u32| -> anyhow::Result<String> {
        let s = client::config::Settings::load(&c.client_config(j))?;
        Ok(hex::encode(&s.identity.public().sign[..4]))
    };
    let (sender, receiver) = (engine_name(1)?, engine_name(2)?);
    let start = Instant::now();
    let round_len = Duration::from_millis(args.round_ms);
    let mut sent_rounds = BTreeSet::new();
    let mut got_rounds = BTreeSet::new();
    let mut i = 0u64;
    let total = round_len * args.rounds as u32;
    while start.elapsed() < total {
        let block = start.elapsed().as_millis() as u64 / (args.round_ms * args.block);
        if block % 2 == 0 {
            let text = format!("timing {i}");
            let _ = clients[0].0.send("client-2", &text, false).await;
            i += 1;
        }
        tokio::time::sleep(round_len).await;
        for (k, (_, rx)) in clients.iter_mut().enumerate() {
            while let Ok(ev) = rx.try_recv() {
                match ev {
                    Event::State {
                        delivery: Delivery::Sent(r),
                        ..
                    } if k == 0 => {
                        sent_rounds.insert(r);
                    }
                    Event::Message { round, .. } if k == 1 => {
                        got_rounds.insert(round);
                    }
                    _ => {}
                }
            }
        }
    }
    let records = recorder
        .0
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let by_engine: HashMap<&str, BTreeMap<u64, f64>> = [&sender, &receiver]
        .into_iter()
        .map(|n| (n.as_str(), delays(&records, n)))
        .collect();
    let split = |engine: &str, marked: &BTreeSet<u64>| -> (Vec<f64>, Vec<f64>) {
        let mut busy = Vec::new();
        let mut idle = Vec::new();
        if let Some(d) = by_engine.get(engine) {
            for (r, ms) in d {
                if marked.contains(r) {
                    busy.push(*ms);
                } else {
                    idle.push(*ms);
                }
            }
        }
        (busy, idle)
    };
    let (sending, idle1) = split(&sender, &sent_rounds);
    let (receiving, idle2) = split(&receiver, &got_rounds);
    println!(
        "timing: {} rounds of {} ms, 3 servers, 5 clients; delay from accepting output r to the next submission",
        args.rounds, args.round_ms
    );
    let a = compare("client-1 (sender)", "sending", &sending, &idle1);
    let b = compare("client-2 (recipient)", "receiving", &receiving, &idle2);
    println!(
        "timing: {}",
        if a && b {
            "alike (p > 0.01 for both)"
        } else {
            "DIFFERENT"
        }
    );
    Ok(())
}
