//! Helpers shared by the cluster suites.

use std::time::Duration;

use tests::cluster::Cluster;
use tests::http::post_at;

/// Generous deadline for anything cluster-wide on a loaded 2-core CI machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Commit one probe through server `via`'s admin endpoint (probes are not part of the
/// client protocol), retrying other servers on failure.
pub async fn probe(c: &Cluster, n: u16, via: u16, id: u64, payload: usize) {
    let mut last = None;
    for attempt in 0..(n * 4) {
        let server = usize::from((via + attempt) % n);
        let node = &c.nodes[server];
        if c.is_up(server) {
            let path = format!("/probe?id={id}&bytes={payload}");
            match post_at(
                &node.admin_host,
                node.admin_port,
                &path,
                Duration::from_secs(30),
            )
            .await
            {
                Ok((200, _)) => return,
                Ok((code, body)) => last = Some(format!("{code} {body}")),
                Err(e) => last = Some(e.to_string()),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("probe {id} never committed: {last:?}");
}

/// Commit `count` probes with `parallel` in flight, spread over all servers.
pub async fn probes(
    c: &Cluster,
    n: u16,
    first_id: u64,
    count: u64,
    payload: usize,
    parallel: usize,
) {
    use futures::StreamExt;
    futures::stream::iter(first_id..first_id + count)
        .map(|id| async move { probe(c, n, (id % u64::from(n)) as u16, id, payload).await })
        .buffer_unordered(parallel)
        .for_each(|()| async {})
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
