//! Helpers shared by the cluster suites.

use std::time::Duration;

use client::conn::ClusterConn;
use protocol::bounded::Bytes;
use protocol::wire::{ClientRequest, ClientResponse};
use tests::cluster::Cluster;

/// Generous deadline for anything cluster-wide on a loaded 2-core CI machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Commit one probe through server `via`, retrying other servers on failure.
pub async fn probe(
    conn: &ClusterConn,
    n: u16,
    via: u16,
    id: u64,
    payload: usize,
) -> ClientResponse {
    let req = ClientRequest::Probe {
        id,
        payload: Bytes::new(vec![(id % 251) as u8; payload]).unwrap(),
    };
    let mut last = None;
    for attempt in 0..(n * 4) {
        let server = (via + attempt) % n;
        match conn.request(server, req.clone()).await {
            Ok(r @ ClientResponse::Accepted { .. }) => return r,
            Ok(r) => last = Some(format!("{r:?}")),
            Err(e) => last = Some(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("probe {id} never committed: {last:?}");
}

/// Commit `count` probes with `parallel` in flight, spread over all servers.
pub async fn probes(
    conn: &ClusterConn,
    n: u16,
    first_id: u64,
    count: u64,
    payload: usize,
    parallel: usize,
) {
    use futures::StreamExt;
    futures::stream::iter(first_id..first_id + count)
        .map(|id| {
            let conn = conn.clone();
            async move { probe(&conn, n, (id % u64::from(n)) as u16, id, payload).await }
        })
        .buffer_unordered(parallel)
        .for_each(|r| async move { assert!(matches!(r, ClientResponse::Accepted { .. }), "{r:?}") })
        .await;
}

/// Wait until every running node has applied `count` commands and all state hashes match;
/// returns the hash.
pub async fn converged(c: &Cluster, count: u64) -> String {
    c.wait_for(
        &format!("all running nodes applied {count} commands with equal state hashes"),
        DEADLINE,
        || async {
            let mut hash = None;
            for i in 0..c.nodes.len() {
                if !c.is_up(i) {
                    continue;
                }
                let s = c.status(i).await?;
                if s["commands_applied"].as_u64()? < count {
                    return None;
                }
                let h = s["state_hash"].as_str()?.to_string();
                if hash.as_ref().is_some_and(|x| x != &h) {
                    return None;
                }
                hash = Some(h);
            }
            hash
        },
    )
    .await
    .unwrap()
}

/// Wait for a leader all running nodes agree on.
pub async fn leader(c: &Cluster) -> u64 {
    c.wait_for("an agreed leader", DEADLINE, || c.agreed_leader())
        .await
        .unwrap()
}
