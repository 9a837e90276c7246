//! A lying server cannot corrupt an output: with n = 5, t = 2 and one server revealing a
//! wrong sum every round, every output is decoded from the honest reveals (five reveals
//! correct one liar), every message arrives intact, and every node names the liar.

use std::time::Duration;

use tests::cluster::ClusterOpts;

use crate::util::{clients, cluster, until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_revealing_garbage_is_outvoted_and_named_on_every_node() {
    let liar = 3usize;
    let c = cluster(ClusterOpts {
        servers: 5,
        clients: 5,
        // 1 s rounds: the leader waits 3 s for all reveals before finalizing with fewer,
        // so on a loaded machine the honest reveals are in long before.
        round_ms: 1000,
        min_anonymity_set: 3,
        env: vec![(liar, "CHORUS_FAULT_WRONG_REVEALS".into(), "1".into())],
        ..ClusterOpts::default()
    })
    .await;
    let mut clients = clients(&c, 5).await;
    let mut sent = Vec::new();
    for m in 0..15usize {
        let (from, to) = (m % 5, (m + 1 + m / 5) % 5);
        let to = if to == from { (to + 1) % 5 } else { to };
        let text = format!("robust {m}: {} to {}", clients[from].name, clients[to].name);
        clients[from]
            .engine
            .send(&clients[to].name, &text, false)
            .await
            .unwrap();
        sent.push((to, text));
    }
    until(&c, &mut clients, "all 15 messages delivered intact", |cl| {
        sent.iter()
            .all(|(to, text)| cl[*to].received().iter().any(|(_, t)| t == text))
    })
    .await;

    // Every node names the liar, and only the liar; no output was published unchecked
    // (the one way a lie among the first t+1 reveals could get through).
    let named = c
        .wait_for(
            "every node names the lying server",
            Duration::from_secs(60),
            || async {
                let mut rounds = Vec::new();
                for i in 0..5 {
                    let s = c.status(i).await?;
                    let o = &s["outputs"];
                    let d = o["dissenting_servers"].as_object()?;
                    if d.keys().collect::<Vec<_>>() != vec![&liar.to_string()] {
                        return None;
                    }
                    assert_eq!(o["unchecked_outputs"].as_u64(), Some(0), "node {i}: {o}");
                    rounds.push(d[&liar.to_string()]["rounds"].as_u64()?);
                }
                Some(rounds)
            },
        )
        .await
        .unwrap();
    assert!(named.iter().all(|r| *r >= 1), "{named:?}");
    // And in the metrics, for an operator's alert.
    let (_, metrics) = c.nodes[0].get("/metrics").await.unwrap();
    assert!(
        metrics.contains(&format!(
            "chorus_reveal_dissent_rounds{{server=\"{liar}\"}}"
        )),
        "no dissent metric for server {liar}"
    );
}
