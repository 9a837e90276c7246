//! Messages arrive exactly once, at their recipient only, through crashes, absences,
//! void rounds and collisions; servers never see a plaintext.

use std::collections::HashMap;

use client::engine::{Delivery, RetryReason};
use rand::{Rng, SeedableRng};
use tests::cluster::{Cluster, ClusterOpts};

use crate::util::{until, walk, Client};

fn opts(clients: u32) -> ClusterOpts {
    ClusterOpts {
        clients,
        round_ms: 400,
        min_anonymity_set: 3,
        ..ClusterOpts::default()
    }
}

async fn leader(c: &Cluster) -> u64 {
    c.wait_for(
        "an agreed leader",
        std::time::Duration::from_secs(60),
        || c.agreed_leader(),
    )
    .await
    .unwrap()
}

/// Send `count` messages between random pairs; return (sender index, recipient index, text).
async fn send_random(
    clients: &[Client],
    count: usize,
    seed: u64,
    tag: &str,
) -> Vec<(usize, usize, String)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut sent = Vec::new();
    for m in 0..count {
        let from = rng.gen_range(0..clients.len());
        let mut to = rng.gen_range(0..clients.len() - 1);
        if to >= from {
            to += 1;
        }
        let text = format!(
            "{tag} message {m} from {} to {} #{:08x}",
            clients[from].name,
            clients[to].name,
            rng.gen::<u32>()
        );
        clients[from]
            .engine
            .send(&clients[to].name, &text, false)
            .await
            .unwrap();
        sent.push((from, to, text));
    }
    sent
}

fn assert_exactly_once(clients: &[Client], sent: &[(usize, usize, String)]) {
    for (from, to, text) in sent {
        for (i, cl) in clients.iter().enumerate() {
            let n = cl.received().iter().filter(|(_, t)| t == text).count();
            let expect = usize::from(i == *to);
            assert_eq!(
                n, expect,
                "{text:?} reached {} {n} times (expected {expect})",
                cl.name
            );
        }
        let got = clients[*to].received();
        let (who, _) = got.iter().find(|(_, t)| t == text).unwrap();
        assert_eq!(who, &clients[*from].name, "sender shown wrongly");
    }
}

fn all_delivered(clients: &[Client], sent: &[(usize, usize, String)]) -> bool {
    sent.iter()
        .all(|(_, to, text)| clients[*to].received().iter().any(|(_, t)| t == text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_messages_among_eight_clients_arrive_exactly_once_and_servers_never_see_them() {
    let c = Cluster::start(opts(8)).unwrap();
    leader(&c).await;
    let mut clients = Vec::new();
    for j in 1..=8 {
        clients.push(Client::start(&c, j).await);
    }
    let sent = send_random(&clients, 50, 1, "fifty").await;
    until(&c, &mut clients, "all 50 messages delivered", |cl| {
        all_delivered(cl, &sent)
    })
    .await;
    // Let a few more rounds pass so a duplicate would have time to show up.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for cl in clients.iter_mut() {
        cl.drain();
    }
    assert_exactly_once(&clients, &sent);
    // Every sender saw its message as sent.
    let sent_states = clients
        .iter()
        .flat_map(|cl| cl.seen.iter())
        .filter(|e| {
            matches!(
                e,
                client::engine::Event::State {
                    delivery: client::engine::Delivery::Sent(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(sent_states, 50);

    // No plaintext in server logs, data directories, metrics or status.
    let mut haystack = c.logs().into_bytes();
    let mut exported = String::new();
    for n in &c.nodes {
        for entry in walk(&n.data_dir) {
            haystack.extend(std::fs::read(entry).unwrap_or_default());
        }
        for path in ["/metrics", "/status"] {
            let (_, body) = n.get(path).await.unwrap();
            exported.push_str(&body);
        }
        // Honest clients' proofs always hold and their shares are always of one vector.
        let (_, metrics) = n.get("/metrics").await.unwrap();
        for reason in ["bad_proof", "inconsistent", "conflicting", "cooling"] {
            assert_eq!(
                tests::metrics::total(&metrics, "chorus_clients_excluded", reason),
                0,
                "honest clients excluded as {reason}"
            );
        }
    }
    haystack.extend(exported.as_bytes());
    // Metrics and status name no client: no name, key or fingerprint appears there.
    for j in 1..=8 {
        let s = client::config::Settings::load(&c.client_config(j)).unwrap();
        let public = s.identity.public();
        for id in [
            s.name.clone(),
            format!("client-{j}"),
            hex::encode(public.sign),
            hex::encode(public.dh),
            public.fingerprint().to_hex(),
        ] {
            assert!(
                !exported.contains(&id),
                "metrics or status mention client {j} ({id})"
            );
        }
    }
    for (_, _, text) in &sent {
        let needle = text.as_bytes();
        assert!(
            !haystack.windows(needle.len()).any(|w| w == needle),
            "plaintext {text:?} found on a server"
        );
        let marker = &needle[needle.len() - 9..]; // the random #xxxxxxxx suffix alone
        assert!(
            !haystack.windows(marker.len()).any(|w| w == marker),
            "fragment of {text:?} found on a server"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_mid_run_loses_no_message() {
    let mut c = Cluster::start(opts(6)).unwrap();
    let old = leader(&c).await;
    let mut clients = Vec::new();
    for j in 1..=6 {
        clients.push(Client::start(&c, j).await);
    }
    let sent = send_random(&clients, 20, 2, "crash").await;
    until(
        &c,
        &mut clients,
        "a few messages delivered before the crash",
        |cl| {
            sent.iter()
                .filter(|(_, to, t)| cl[*to].received().iter().any(|(_, x)| x == t))
                .count()
                >= 3
        },
    )
    .await;
    c.kill(old as usize);
    let more = send_random(&clients, 10, 3, "after-crash").await;
    let all: Vec<_> = sent.into_iter().chain(more).collect();
    until(
        &c,
        &mut clients,
        "every message delivered despite the crash",
        |cl| all_delivered(cl, &all),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for cl in clients.iter_mut() {
        cl.drain();
    }
    assert_exactly_once(&clients, &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_away_for_twenty_rounds_receives_what_was_sent_meanwhile() {
    let c = Cluster::start(opts(5)).unwrap();
    leader(&c).await;
    let mut clients = Vec::new();
    for j in 1..=5 {
        clients.push(Client::start(&c, j).await);
    }
    // Everyone sees at least one round, so the absent client knows where it left off.
    until(&c, &mut clients, "every client accepted a round", |cl| {
        cl.iter().all(|c| {
            c.seen
                .iter()
                .any(|e| matches!(e, client::engine::Event::Round { .. }))
        })
    })
    .await;
    let away = clients.remove(4);
    drop(away); // engine stops: the client is offline
    let start_round = status_round(&c).await;
    let texts: Vec<String> = (0..3)
        .map(|i| format!("while you were away {i} #{:08x}", rand::random::<u32>()))
        .collect();
    for t in &texts {
        clients[0].engine.send("client-5", t, false).await.unwrap();
    }
    let cfg = c.client_config(5);
    let _ = cfg;
    // Wait until 20 rounds have passed and the messages are revealed.
    c.wait_for(
        "20 rounds to pass",
        std::time::Duration::from_secs(120),
        || async { (status_round(&c).await >= start_round + 20).then_some(()) },
    )
    .await
    .unwrap();
    until(
        &c,
        &mut clients,
        "messages for the absent client sent",
        |cl| {
            cl[0]
                .seen
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        client::engine::Event::State {
                            delivery: client::engine::Delivery::Sent(_),
                            ..
                        }
                    )
                })
                .count()
                >= 3
        },
    )
    .await;
    let mut back = vec![Client::start(&c, 5).await];
    until(
        &c,
        &mut back,
        "the returning client received every message",
        |cl| {
            texts
                .iter()
                .all(|t| cl[0].received().iter().any(|(_, x)| x == t))
        },
    )
    .await;
    let got = back[0].received();
    for t in &texts {
        assert_eq!(
            got.iter()
                .filter(|(from, x)| x == t && from == "client-1")
                .count(),
            1,
            "{t}"
        );
    }
}

async fn status_round(c: &Cluster) -> u64 {
    for i in 0..c.nodes.len() {
        if let Some(s) = c.status(i).await {
            if let Some(r) = s["round"].as_u64() {
                return r;
            }
        }
    }
    0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_below_the_anonymity_set_are_void_and_the_sender_retries() {
    let c = Cluster::start(opts(3)).unwrap();
    leader(&c).await;
    // Only two clients online with k = 3: every round is void.
    let mut clients = vec![Client::start(&c, 1).await, Client::start(&c, 2).await];
    let id = clients[0]
        .engine
        .send("client-2", "not yet", false)
        .await
        .unwrap();
    until(
        &c,
        &mut clients,
        "the sender is told its round was void",
        |cl| {
            cl[0].states(id).iter().any(|d| {
                matches!(
                    d,
                    Delivery::Retrying {
                        reason: RetryReason::Void,
                        ..
                    }
                )
            })
        },
    )
    .await;
    assert!(
        clients[1].received().is_empty(),
        "a void round revealed something"
    );
    let void = c.status(0).await.unwrap();
    assert!(void["round"].as_u64().unwrap() > 1);
    // A third client joins: rounds reach k, and the message arrives.
    clients.push(Client::start(&c, 3).await);
    until(
        &c,
        &mut clients,
        "the message arrives once k clients take part",
        |cl| cl[1].received().iter().any(|(_, t)| t == "not yet"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_contending_for_a_one_slot_round_all_get_through_ungarbled() {
    // One slot's worth of message region per round: senders who reserve in the same
    // round cannot all be laid out, so some reserve again; none writes over another.
    let c = Cluster::start(ClusterOpts {
        slots: 1,
        ..opts(3)
    })
    .unwrap();
    leader(&c).await;
    let mut clients = vec![
        Client::start(&c, 1).await,
        Client::start(&c, 2).await,
        Client::start(&c, 3).await,
    ];
    let mut expected = Vec::new();
    let mut ids = Vec::new();
    for attempt in 0..3 {
        for (i, who) in ["one", "two"].iter().enumerate() {
            let text = format!("from {who} #{attempt}");
            let id = clients[i]
                .engine
                .send("client-3", &text, false)
                .await
                .unwrap();
            ids.push((i, id));
            expected.push(text);
        }
    }
    until(&c, &mut clients, "every message arrives", |cl| {
        let got = cl[2].received();
        expected.iter().all(|t| got.iter().any(|(_, g)| g == t))
    })
    .await;
    for (i, id) in ids {
        let states = clients[i].states(id);
        assert!(
            !states.iter().any(|d| matches!(
                d,
                Delivery::Retrying {
                    reason: RetryReason::Collision,
                    ..
                }
            )),
            "a reserved slot was garbled: {states:?}"
        );
    }
    let counts: HashMap<String, usize> =
        clients[2]
            .received()
            .into_iter()
            .fold(HashMap::new(), |mut m, (_, t)| {
                *m.entry(t).or_default() += 1;
                m
            });
    for t in &expected {
        assert_eq!(
            counts.get(t),
            Some(&1),
            "{t} delivered {:?} times",
            counts.get(t)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_sender_stays_hidden_and_still_gets_a_reply() {
    let c = Cluster::start(opts(3)).unwrap();
    leader(&c).await;
    let mut clients = vec![
        Client::start(&c, 1).await,
        Client::start(&c, 2).await,
        Client::start(&c, 3).await,
    ];
    clients[0]
        .engine
        .send("client-2", "guess who", true)
        .await
        .unwrap();
    until(&c, &mut clients, "the anonymous message arrives", |cl| {
        cl[1].received().iter().any(|(_, t)| t == "guess who")
    })
    .await;
    let (from, _, anonymous, reply_to) = clients[1]
        .received_full()
        .into_iter()
        .find(|m| m.1 == "guess who")
        .unwrap();
    assert!(
        anonymous && from.starts_with("anonymous-"),
        "sender exposed as {from:?}"
    );
    clients[1]
        .engine
        .send(&reply_to, "no idea, but thanks", false)
        .await
        .unwrap();
    until(
        &c,
        &mut clients,
        "the reply reaches the anonymous sender",
        |cl| {
            cl[0]
                .received()
                .iter()
                .any(|(from, t)| t == "no idea, but thanks" && from == "client-2")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_away_beyond_retention_is_told_what_it_missed() {
    let c = Cluster::start(ClusterOpts {
        retention_rounds: 5,
        ..opts(4)
    })
    .unwrap();
    leader(&c).await;
    let mut clients = Vec::new();
    for j in 1..=4 {
        clients.push(Client::start(&c, j).await);
    }
    until(&c, &mut clients, "every client accepted a round", |cl| {
        cl.iter().all(|c| {
            c.seen
                .iter()
                .any(|e| matches!(e, client::engine::Event::Round { .. }))
        })
    })
    .await;
    drop(clients.remove(3));
    let start = status_round(&c).await;
    c.wait_for(
        "12 rounds to pass (retention is 5)",
        std::time::Duration::from_secs(120),
        || async { (status_round(&c).await >= start + 12).then_some(()) },
    )
    .await
    .unwrap();
    let mut back = vec![Client::start(&c, 4).await];
    until(
        &c,
        &mut back,
        "the returning client is told of the gap",
        |cl| {
            cl[0]
                .seen
                .iter()
                .any(|e| matches!(e, client::engine::Event::Gap { .. }))
        },
    )
    .await;
}
