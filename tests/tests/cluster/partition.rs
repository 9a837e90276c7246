//! Real network partitions: nodes in their own namespaces, links cut with blackhole
//! routes (see `tests::netns`).

use std::sync::Arc;

use tests::cluster::{Cluster, ClusterOpts};
use tests::netns::Net;

use crate::util::{converged, leader, probe, DEADLINE};

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_is_replaced_and_catches_up_after_the_heal() {
    let net = match Net::create(3) {
        Ok(net) => Arc::new(net),
        // CI runs as root; elsewhere say why nothing ran instead of failing.
        Err(e) if !is_root() => {
            eprintln!("skipped: network namespaces need root ({e:#})");
            return;
        }
        Err(e) => panic!("cannot set up network namespaces as root: {e:#}"),
    };
    let c = Cluster::start(ClusterOpts {
        net: Some(net.clone()),
        ..ClusterOpts::default()
    })
    .unwrap();
    let old = leader(&c).await as usize;
    let all = [0, 1, 2];
    net.cut(old, &all).unwrap();
    let majority: Vec<usize> = all.into_iter().filter(|i| *i != old).collect();

    let new = c
        .wait_for(
            "the majority side to agree on another leader",
            DEADLINE,
            || async {
                let a = c.status(majority[0]).await?["leader"].as_u64()?;
                let b = c.status(majority[1]).await?["leader"].as_u64()?;
                (a == b && a as usize != old).then_some(a)
            },
        )
        .await
        .unwrap();

    // The majority commits while the old leader is cut off; it cannot have applied them.
    for id in 0..10 {
        probe(&c, 3, new as u16, id, 32).await;
    }
    let cut_off = c
        .status(old)
        .await
        .expect("the cut node still answers its admin port");
    // At most the cluster's Init, if it committed before the cut; never a probe.
    assert!(
        cut_off["commands_applied"].as_u64() <= Some(1),
        "a node cut off from every peer applied commands: {cut_off}"
    );

    net.heal(old, &all).unwrap();
    // After the heal it catches up: every node applied all ten with the same state.
    converged(&c, 10).await;
    leader(&c).await;
}
