//! What a client's actions make the servers see: sending and receiving cause no request
//! of their own; names resolve in the client's local copy of the directory.

use std::collections::BTreeMap;
use std::time::Instant;

use tests::cluster::{Cluster, ClusterOpts};

use crate::util::{clients, cluster, until};

/// `chorus_client_requests_total` of node `i`, by kind.
async fn kinds(c: &Cluster, i: usize) -> BTreeMap<String, u64> {
    let text = tests::metrics::node_text(c, i).await.unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("chorus_client_requests_total{kind=\"")?;
            let (kind, rest) = rest.split_once('"')?;
            let value = rest.rsplit_once(' ')?.1.parse::<f64>().ok()?;
            Some((kind.to_string(), value as u64))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_and_receiving_ask_the_servers_nothing_about_anyone() {
    let c = cluster(ClusterOpts {
        clients: 4,
        round_ms: 400,
        min_anonymity_set: 3,
        ..ClusterOpts::default()
    })
    .await;
    let mut clients = clients(&c, 4).await;
    // One message each way first, so that every client has synced every name and the
    // counts below hold only what the twenty messages cause.
    clients[0]
        .engine
        .send("client-2", "warm-up", false)
        .await
        .unwrap();
    clients[3]
        .engine
        .send("client-1", "warm-up", false)
        .await
        .unwrap();
    until(&c, &mut clients, "the warm-up messages", |cl| {
        cl[1].received().len() == 1 && cl[0].received().len() == 1
    })
    .await;

    let before: Vec<_> = futures::future::join_all((0..3).map(|i| kinds(&c, i))).await;
    let started = Instant::now();
    // Ten to a registered contact, ten from a sender client-1 has never heard of
    // before now.
    for k in 0..10 {
        let text = format!("to a contact {k}");
        clients[0]
            .engine
            .send("client-2", &text, false)
            .await
            .unwrap();
        let text = format!("from a stranger {k}");
        clients[2]
            .engine
            .send("client-1", &text, false)
            .await
            .unwrap();
    }
    until(&c, &mut clients, "all twenty messages", |cl| {
        cl[1].received().len() == 11 && cl[0].received().len() == 11
    })
    .await;
    assert!(clients[0]
        .received()
        .iter()
        .any(|(from, text)| from == "client-3" && text == "from a stranger 9"));
    let after: Vec<_> = futures::future::join_all((0..3).map(|i| kinds(&c, i))).await;
    let secs = started.elapsed().as_secs();

    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(
            a.keys().all(|k| !k.starts_with("lookup")),
            "node {i} counts lookups: {a:?}"
        );
        // Only what every online client sends on its own schedule grew: status,
        // submissions, directory pages every 5 s, and history pages (catch-up of a
        // round missed on gossip).
        for (kind, n) in a {
            let grew = n - b.get(kind).copied().unwrap_or(0);
            let scheduled = ["status", "submit", "directory", "history"];
            assert!(
                grew == 0 || scheduled.contains(&kind.as_str()),
                "node {i}: {kind} grew by {grew}"
            );
        }
        // Directory pages: one per client per server per 5 s, not one per message.
        let pages =
            a.get("directory").copied().unwrap_or(0) - b.get("directory").copied().unwrap_or(0);
        let allowed = 4 * (secs / 5 + 2);
        assert!(
            pages <= allowed,
            "node {i}: {pages} directory pages in {secs} s (at most {allowed} by schedule)"
        );
    }
}
