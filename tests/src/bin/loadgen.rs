//! Round benchmark load generator: C simulated clients in one process, sharing one
//! connection to the cluster. Every round each client submits exactly one fixed-size
//! submission; a fraction of them start a message to a random other client, which
//! reserves a slot (a footprint in a random cell), and sends in the slot the next round,
//! as the client core does: each round is submitted to as soon as the output that opens
//! and lays it out is accepted. Reports
//! end-to-end latency (queued → revealed and opened by the recipient), delivered
//! messages per second, rounds per second, first-try success and bytes uploaded.
//!
//! The clients are protocol-complete (real Shamir split, sealing, signatures, slot
//! encryption, f+1 vouch checking, trial decryption by the recipient) but share one
//! libp2p connection and one status poller, so that 500 of them fit on a 2-core machine
//! beside the servers.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use client::conn::ConnEvent;
use futures::{SinkExt, StreamExt};
use keys::manifest::{read_manifest, ClusterManifest};
use protocol::reserve::{footprint, Slot};
use protocol::seal::Sealer;
use protocol::slot::{open_slot, seal_slot, slot_len_for, Sender, SlotMessage};
use protocol::submission::build_submission_sealed;
use protocol::vector::{layout, Vector};
use protocol::wire::{
    ClientRequest, ClientResponse, RejectReason, Round, RoundOutput, ShareUpload, SignedOutput,
};
use protocol::Params;
use rand::{Rng, SeedableRng};
use tests::cluster::{attach, servers_of};
use tests::jam::Jam;
use tests::stats::percentile;

/// Round benchmark load generator.
#[derive(Parser, Debug)]
struct Args {
    /// cluster.toml written by keygen.
    #[arg(long)]
    cluster: std::path::PathBuf,
    /// Simulated clients.
    #[arg(long)]
    clients: usize,
    /// Fraction of clients that start a new message each round.
    #[arg(long, default_value_t = 0.05)]
    send_fraction: f64,
    /// Measured seconds (after a warm-up of 3 rounds).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// RNG seed (printed in the result).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Clients (of `--clients`) that jam every round with `--jam` instead of chatting
    /// (without `--jam` they only submit cover: the baseline of a jamming run).
    #[arg(long, default_value_t = 0)]
    jammers: usize,
    /// What the jammers send.
    #[arg(long, value_enum)]
    jam: Option<Jam>,
    /// After the measured seconds, keep going without new messages until every honest
    /// message is delivered, for at most this long; the rest count as undelivered.
    #[arg(long, default_value_t = 0)]
    drain_seconds: u64,
}

/// An output and the servers that vouched for its hash.
type Vouched = (RoundOutput, BTreeSet<u16>);

struct Msg {
    id: u64,
    stage: Stage,
    to: usize,
    queued: Instant,
    attempts: u32,
    body: Vec<u8>,
}

/// Where a queued message is. A client sends at most one message and makes at most one
/// reservation per round, so several of its messages are on their way at once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Idle,
    Reserved,
    Granted { round: Round, slot: Slot },
    Sent,
}

/// A message in its slot, waiting for the round's output.
struct InFlight {
    client: usize,
    id: u64,
    footprint: u64,
    bytes: Vec<u8>,
}

/// Threads that build submissions (the machine's cores).
const BUILDERS: usize = 2;

/// Built uploads waiting to be sent, at most (the builders wait beyond it).
const UPLOAD_QUEUE: usize = 256;

/// Round lengths a round waits for the output that lays it out before it is submitted
/// to without it, as clients do (a void round publishes a void output, so this is
/// spent only when gossip is lost or a round is abandoned unpublished).
const LAYOUT_WAIT_ROUNDS: u64 = 3;
/// Status polls, one every this many milliseconds.
const POLL_MS: u64 = 50;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let m: ClusterManifest = read_manifest(&args.cluster)?;
    let n = m.servers.len();
    let params = Params::from_manifest(&m.servers, &m.round, &m.admission)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.cluster.display()))?;
    let mut server_dh = Vec::new();
    let mut server_sign = Vec::new();
    for s in &m.servers {
        server_dh.push(x25519_dalek::PublicKey::from(keys::identity::parse_hex32(
            &s.x25519,
        )?));
        server_sign.push(keys::identity::parse_hex32(&s.ed25519)?);
    }
    let servers = servers_of(&args.cluster)?;
    let needed = (n - 1) / 2 + 1;
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let ids: std::sync::Arc<Vec<keys::Identity>> = std::sync::Arc::new(
        (0..args.clients)
            .map(|_| keys::Identity::generate(&mut rng))
            .collect(),
    );

    // Each client's sealing key, reused over rounds as the client core does.
    let sealers: std::sync::Arc<Vec<std::sync::Mutex<Sealer>>> = std::sync::Arc::new(
        (0..args.clients)
            .map(|_| std::sync::Mutex::new(Sealer::new(&server_dh, &mut rand_core::OsRng)))
            .collect(),
    );
    let (conn, mut events) = attach(servers, Duration::from_secs(30)).await?;

    let slot_bytes = params.slot_bytes as usize;
    let slots = params.slots as usize;
    let mut queues: Vec<VecDeque<Msg>> = (0..args.clients).map(|_| VecDeque::new()).collect();
    let mut next_id = 0u64;
    // Reservations per round: (client, message id, footprint).
    let mut reserved: BTreeMap<Round, Vec<(usize, u64, u64)>> = BTreeMap::new();
    // Each round's layout (the footprints of the output before it), once known.
    let mut layouts: BTreeMap<Round, Vec<u64>> = BTreeMap::new();
    let mut in_flight: BTreeMap<Round, Vec<InFlight>> = BTreeMap::new();
    let mut reservations_lost = 0u64;
    let mut layout_wait: (Round, u32) = (0, 0);
    let mut vouches: BTreeMap<Round, HashMap<[u8; 32], Vouched>> = BTreeMap::new();
    let mut accepted: BTreeSet<Round> = BTreeSet::new();
    let mut latencies = Vec::new();
    let (mut delivered, mut first_try, mut collisions, mut missed, mut bytes_up, mut submissions) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut held_everywhere, mut measured_submissions) = (0u64, 0u64);
    let mut participants = Vec::new();
    let mut submitted_round: Round = 0;
    let mut warm_rounds = 3u32;
    let mut measure_start: Option<Instant> = None;
    let mut outputs_measured = 0u64;
    let mut next_server = 0usize;
    let mut poll = tokio::time::interval(Duration::from_millis(POLL_MS));
    let layout_wait_polls = (LAYOUT_WAIT_ROUNDS * m.round.round_ms / POLL_MS).max(1) as u32;
    anyhow::ensure!(
        args.jammers + 2 <= args.clients,
        "--jammers {} leaves fewer than two honest clients of {}",
        args.jammers,
        args.clients
    );
    // Clients 0..honest chat; the rest jam.
    let honest = args.clients - args.jammers;
    let mut draining = false;
    loop {
        if let Some(start) = measure_start {
            let measured = Duration::from_secs(args.seconds);
            let drained = queues.iter().all(VecDeque::is_empty);
            if start.elapsed() >= measured + Duration::from_secs(args.drain_seconds)
                || (start.elapsed() >= measured && (args.drain_seconds == 0 || drained))
            {
                break;
            }
            draining = start.elapsed() >= measured;
        }
        // The round to submit to: the one an output just opened (each output opens the
        // next round and lays it out), or the one status reports.
        let want: Round;
        tokio::select! {
            ev = events.recv() => {
                let Some(ConnEvent::Gossip { data, .. }) = ev else { continue };
                let Ok(SignedOutput { output, vouch }) = protocol::decode::<SignedOutput>(&data) else { continue };
                let Some(key) = server_sign.get(vouch.server as usize) else { continue };
                let hash = output.hash();
                if vouch.output_hash.0 != hash || !vouch.signature_valid(key) || accepted.contains(&output.round) {
                    continue;
                }
                let r = output.round;
                let e = vouches.entry(r).or_default().entry(hash).or_insert_with(|| (output, BTreeSet::new()));
                e.1.insert(vouch.server);
                if e.1.len() < needed {
                    continue;
                }
                let output = e.0.clone();
                vouches.remove(&r);
                accepted.insert(r);
                let measuring = measure_start.is_some();
                if measuring {
                    outputs_measured += 1;
                    participants.push(output.participants);
                } else if warm_rounds > 0 {
                    warm_rounds -= 1;
                    if warm_rounds == 0 {
                        measure_start = Some(Instant::now());
                    }
                }
                want = r + 1;
                // Reservations made in r get a slot in r + 1, or reserve again; every
                // vector of r + 1 is proved valid for that layout.
                let laid = layout(&params, output.reservations.as_slice());
                layouts.insert(r + protocol::vector::RESERVE_AHEAD, output.reservations.as_slice().to_vec());
                while layouts.len() > 4 { layouts.pop_first(); }
                for (c, id, fp) in reserved.remove(&r).unwrap_or_default() {
                    let Some(m) = queues[c].iter_mut().find(|m| m.id == id) else { continue };
                    m.stage = match laid.iter().find(|s| s.footprint == fp) {
                        Some(slot) => Stage::Granted { round: r + protocol::vector::RESERVE_AHEAD, slot: *slot },
                        None => {
                            if measuring { reservations_lost += 1; }
                            m.attempts += 1;
                            Stage::Idle
                        }
                    };
                }
                for f in in_flight.remove(&r).unwrap_or_default() {
                    let c = f.client;
                    if output.void {
                        // Nothing of a void round was revealed: its senders retry.
                        if let Some(m) = queues[c].iter_mut().find(|m| m.id == f.id) { m.stage = Stage::Idle; }
                        continue;
                    }
                    let Some(pos) = queues[c].iter().position(|m| m.id == f.id) else { continue };
                    let to = queues[c][pos].to;
                    let slot = output.slot(f.footprint).unwrap_or_default();
                    // The recipient trial-decrypts: only an intact slot opens.
                    let opened = slot == f.bytes.as_slice() && open_slot(slot, ids[to].x25519_secret()).is_ok();
                    if opened {
                        let Some(msg) = queues[c].remove(pos) else { continue };
                        if measuring {
                            delivered += 1;
                            latencies.push(msg.queued.elapsed().as_secs_f64() * 1000.0);
                            if msg.attempts == 0 {
                                first_try += 1;
                            }
                        }
                    } else {
                        if measuring {
                            collisions += 1;
                        }
                        let m = &mut queues[c][pos];
                        m.attempts += 1;
                        m.stage = Stage::Idle;
                    }
                }
            }
            _ = poll.tick() => {
                let server = (next_server % n) as u16;
                next_server += 1;
                let Ok(Ok(ClientResponse::Status(st))) = tokio::time::timeout(Duration::from_secs(2), conn.request(server, ClientRequest::Status)).await else { continue };
                // Rounds whose output never came (void, abandoned): put their messages back.
                let stale = |r: &Round| st.recent_void.as_slice().contains(r) || r + 20 < st.open_round;
                let lost: Vec<Round> = in_flight.keys().chain(reserved.keys()).copied().filter(stale).collect();
                let mut back: Vec<(usize, u64)> = Vec::new();
                for r in lost {
                    back.extend(in_flight.remove(&r).unwrap_or_default().into_iter().map(|f| (f.client, f.id)));
                    back.extend(reserved.remove(&r).unwrap_or_default().into_iter().map(|(c, id, _)| (c, id)));
                }
                for (c, id) in back {
                    if let Some(m) = queues[c].iter_mut().find(|m| m.id == id) { m.stage = Stage::Idle; }
                }
                if st.open_round <= submitted_round {
                    continue;
                }
                let round = st.open_round;
                // Wait a little for the output that lays this round out, as clients do.
                if layout_wait.0 != round {
                    layout_wait = (round, 0);
                }
                layout_wait.1 += 1;
                if round > 1 && !accepted.contains(&(round - 1)) && layout_wait.1 <= layout_wait_polls {
                    continue;
                }
                want = round;
            }
        }
        if want <= submitted_round {
            continue;
        }
        let round = want;
        submitted_round = round;
        // New messages this round (none while draining, none from jammers).
        for (c, q) in queues.iter_mut().enumerate().take(honest) {
            if !draining && rng.gen_bool(args.send_fraction.clamp(0.0, 1.0)) {
                let mut to = rng.gen_range(0..honest - 1);
                if to >= c {
                    to += 1;
                }
                let body: Vec<u8> = (0..64).map(|_| rng.gen()).collect();
                next_id += 1;
                q.push_back(Msg {
                    id: next_id,
                    stage: Stage::Idle,
                    to,
                    queued: Instant::now(),
                    attempts: 0,
                    body,
                });
            }
        }
        // Every client's vector: a message in its granted slot, a reservation for
        // the first queued message, or cover.
        let mut vectors = Vec::with_capacity(args.clients);
        let mut flights = Vec::new();
        let mut reservations = Vec::new();
        for (c, q) in queues.iter_mut().enumerate() {
            let mut vector = match layouts.get(&round) {
                Some(footprints) => Vector::laid_out(&params, footprints),
                None => Vector::zero(&params),
            };
            for m in q.iter_mut() {
                if matches!(m.stage, Stage::Granted { round: g, .. } if g < round) {
                    m.stage = Stage::Idle;
                }
            }
            let granted = q.iter().find_map(|m| match m.stage {
                Stage::Granted { round: g, slot } if g == round => Some((m, slot)),
                _ => None,
            });
            if let Some((msg, slot)) = granted {
                let sm = SlotMessage {
                    sender: Sender::Identity(ids[c].public().dh),
                    conversation: [0; 16],
                    seq: rng.gen(),
                    timestamp_ms: 0,
                    fragment_index: 0,
                    fragment_count: 1,
                    body: msg.body.clone(),
                };
                let bytes = seal_slot(
                    &sm,
                    ids[c].x25519_secret(),
                    &ids[msg.to].public().x25519(),
                    slot.len,
                    &mut rand_core::OsRng,
                )
                .context("seal")?;
                vector.write(&slot, &bytes);
                flights.push(InFlight {
                    client: c,
                    id: msg.id,
                    footprint: slot.footprint,
                    bytes,
                });
            }
            if let Some(msg) = q.iter().find(|m| m.stage == Stage::Idle) {
                let len = slot_len_for(msg.body.len(), slot_bytes);
                let fp = loop {
                    if let Some(fp) = footprint(rng.gen(), len) {
                        break fp;
                    }
                };
                vector.reserve(rng.gen_range(0..vector.cells()), fp);
                reservations.push((c, msg.id, fp));
            }
            vectors.push((c, vector));
        }
        submissions += args.clients as u64;
        // Split, seal and sign on every core, and upload each client's shares as
        // soon as they are built (real clients build theirs in parallel).
        let (tx, rx) = futures::channel::mpsc::channel(UPLOAD_QUEUE);
        let chunk = args.clients.div_ceil(BUILDERS).max(1);
        let mut builders = Vec::new();
        let mut vectors = vectors.into_iter();
        let footprints = layouts.get(&round).cloned().unwrap_or_default();
        loop {
            let part: Vec<(usize, Vector)> = vectors.by_ref().take(chunk).collect();
            if part.is_empty() {
                break;
            }
            let (mut tx, params, ids, sealers) =
                (tx.clone(), params.clone(), ids.clone(), sealers.clone());
            let (jam, footprints) = (args.jam, footprints.clone());
            builders.push(tokio::task::spawn_blocking(
                move || -> anyhow::Result<u64> {
                    let mut bytes = 0u64;
                    for (c, vector) in part {
                        let mut sealer = sealers[c].lock().unwrap_or_else(|p| p.into_inner());
                        let mut rng = rand_core::OsRng;
                        let sub = if let Some(jam) = jam.filter(|_| c >= honest) {
                            jam.build(&params, round, &footprints, &ids[c], &mut sealer, &mut rng)?
                        } else {
                            build_submission_sealed(
                                &params,
                                round,
                                &vector,
                                &ids[c],
                                &mut sealer,
                                &mut rng,
                            )?
                        };
                        // Each server is sent only its own share (round protocol v2).
                        for up in sub.uploads() {
                            bytes += protocol::encode(&ClientRequest::Share(up.clone()))
                                .map(|b| b.len() as u64)
                                .unwrap_or(0);
                            // Builders wait here while the uploads lag behind.
                            if futures::executor::block_on(tx.send((c, up))).is_err() {
                                return Ok(bytes);
                            }
                        }
                    }
                    Ok(bytes)
                },
            ));
        }
        drop(tx);
        let results: Vec<(usize, bool)> = rx
            .map(|(c, up): (usize, ShareUpload)| {
                let conn = conn.clone();
                async move {
                    let r = conn.request(up.server, ClientRequest::Share(up)).await;
                    let ok = matches!(
                        r,
                        Ok(ClientResponse::Accepted { .. })
                            | Ok(ClientResponse::Rejected(
                                RejectReason::DuplicateSubmission { .. }
                            ))
                    );
                    (c, ok)
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        for b in builders {
            bytes_up += b.await.context("builder")??;
        }
        // In its round where one server holds it, as the client counts it; in it
        // for sure where every server does (what `in_round_rate` reports).
        let mut held_by: Vec<usize> = vec![0; args.clients];
        for (c, ok) in &results {
            held_by[*c] += usize::from(*ok);
        }
        if measure_start.is_some() {
            held_everywhere += held_by.iter().filter(|h| **h == n).count() as u64;
            measured_submissions += args.clients as u64;
        }
        let mut set_stage = |c: usize, id: u64, stage: Stage| {
            if let Some(m) = queues[c].iter_mut().find(|m| m.id == id) {
                m.stage = stage;
            }
        };
        let mut round_flights = Vec::new();
        for f in flights {
            if held_by[f.client] > 0 {
                set_stage(f.client, f.id, Stage::Sent);
                round_flights.push(f);
            } else {
                if measure_start.is_some() {
                    missed += 1;
                }
                set_stage(f.client, f.id, Stage::Idle);
            }
        }
        in_flight.insert(round, round_flights);
        let held: Vec<(usize, u64, u64)> = reservations
            .into_iter()
            .filter(|(c, _, _)| held_by[*c] > 0)
            .collect();
        for (c, id, _) in &held {
            set_stage(*c, *id, Stage::Reserved);
        }
        reserved.insert(round, held);
    }
    let secs = measure_start
        .map(|s| s.elapsed().as_secs_f64())
        .unwrap_or(f64::NAN);
    latencies.sort_by(f64::total_cmp);
    let avg_participants = if participants.is_empty() {
        0.0
    } else {
        participants.iter().map(|p| f64::from(*p)).sum::<f64>() / participants.len() as f64
    };
    println!(
        "{}",
        serde_json::json!({
            "clients": args.clients,
            "slots": slots,
            "slot_bytes": slot_bytes,
            "seconds": secs,
            "delivered": delivered,
            "msgs_per_sec": delivered as f64 / secs,
            "rounds_per_sec": outputs_measured as f64 / secs,
            "p50_ms": percentile(&latencies, 0.5).unwrap_or(f64::NAN),
            "p99_ms": percentile(&latencies, 0.99).unwrap_or(f64::NAN),
            "first_try_rate": if delivered > 0 { first_try as f64 / delivered as f64 } else { f64::NAN },
            "collisions": collisions,
            "reservations_lost": reservations_lost,
            "missed_rounds": missed,
            "bytes_per_client_round": bytes_up.checked_div(submissions).unwrap_or(0),
            "in_round_rate": if measured_submissions > 0 { held_everywhere as f64 / measured_submissions as f64 } else { f64::NAN },
            "avg_participants": avg_participants,
            "seed": args.seed,
            "jammers": args.jammers,
            "jam": args.jam.map_or_else(|| "none".to_string(), |j| format!("{j:?}")),
            "undelivered": queues.iter().take(honest).map(VecDeque::len).sum::<usize>(),
        })
    );
    Ok(())
}
