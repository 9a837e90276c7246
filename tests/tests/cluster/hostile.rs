//! Peers that are not servers, and bytes that are not frames.

use std::time::Duration;

use actors::types::{PeerRequest, PeerResponse};
use libp2p::request_response::{self, ProtocolSupport};
use p2p::frame::FrameCodec;
use p2p::names::{CLIENT_PROTOCOL, RAFT_PROTOCOL};
use protocol::bounded::Bytes;
use protocol::wire::{ClientRequest, ClientResponse, Command};
use tests::cluster::{Cluster, ClusterOpts};
use tests::hostile::{one, swarm, Raw};

use crate::util::{converged, leader, probes, DEADLINE};

async fn rejections(c: &Cluster, i: usize, reason: &str) -> u64 {
    let text = tests::metrics::node_text(c, i).await.unwrap();
    tests::metrics::total(&text, "chorus_network_rejections_total", reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_is_not_a_server_cannot_get_a_raft_request_accepted() {
    let c = Cluster::start(ClusterOpts::default()).unwrap();
    let l = leader(&c).await as usize;
    // Once the cluster's parameters are committed, nothing else is written unasked.
    let before = c
        .wait_for("the cluster parameters committed", DEADLINE, || async {
            let s = c.status(l).await?;
            s["outputs"]["parameters_committed"]
                .as_bool()?
                .then(|| s["commands_applied"].as_u64())?
        })
        .await
        .unwrap();
    let mut sw = swarm(request_response::Behaviour::<
        FrameCodec<PeerRequest, PeerResponse>,
    >::new(
        [(RAFT_PROTOCOL, ProtocolSupport::Outbound)],
        request_response::Config::default(),
    ))
    .unwrap();
    let forged = PeerRequest::Forward(Command::Probe {
        id: 7,
        payload: Bytes::new(b"intruder".to_vec()).unwrap(),
    });
    match one(&mut sw, &c.servers[l], forged, Duration::from_secs(30)).await {
        Ok(PeerResponse::Refused(why)) => assert!(why.contains("not a configured server"), "{why}"),
        other => panic!("expected a refusal naming the peer, got {other:?}"),
    }
    assert!(rejections(&c, l, "raft_from_non_server").await >= 1);
    // Nothing was committed by the intruder.
    let s = c.status(l).await.unwrap();
    assert_eq!(s["commands_applied"].as_u64(), Some(before));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_are_rejected_and_the_node_keeps_serving() {
    let c = Cluster::start(ClusterOpts::default()).unwrap();
    leader(&c).await;
    let mut sw = swarm(request_response::Behaviour::<Raw>::new(
        [
            (CLIENT_PROTOCOL, ProtocolSupport::Outbound),
            (RAFT_PROTOCOL, ProtocolSupport::Outbound),
        ],
        request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
    ))
    .unwrap();
    let mut garbage = vec![0u8, 0, 0, 40];
    garbage.extend((0..40u8).map(|b| b.wrapping_mul(37)));
    let oversized = u32::MAX.to_be_bytes().to_vec();
    let truncated = vec![0u8, 0, 1, 0, 1, 2, 3];
    for (name, bytes) in [
        ("garbage", garbage),
        ("oversized", oversized),
        ("truncated", truncated),
    ] {
        // Against the client protocol and the Raft protocol alike: no valid answer.
        let r = one(&mut sw, &c.servers[0], bytes, Duration::from_secs(30)).await;
        assert!(
            r.as_ref().map_or(true, |b| b.is_empty()),
            "{name}: got an answer {r:?}"
        );
    }
    c.wait_for(
        "each malformed frame counted in metrics by its reason",
        DEADLINE,
        || async {
            let m = rejections(&c, 0, "client_malformed_frame").await;
            let o = rejections(&c, 0, "client_frame_too_large").await;
            let t = rejections(&c, 0, "client_truncated_frame").await;
            (m >= 1 && o >= 1 && t >= 1).then_some(())
        },
    )
    .await
    .unwrap();
    // The node still serves honest clients and the cluster still commits.
    let (conn, _events) = c.connect().await.unwrap();
    let status = conn.request(0, ClientRequest::Status).await.unwrap();
    assert!(matches!(status, ClientResponse::Status(_)), "{status:?}");
    // Every client request is counted by kind, so anyone can see what causes what.
    let (_, metrics) = c.nodes[0].get("/metrics").await.unwrap();
    assert!(
        metrics.contains("chorus_client_requests_total{kind=\"status\"}"),
        "no client request count by kind"
    );
    probes(&c, 3, 0, 20, 64, 4).await;
    converged(&c, 20).await;
}

/// What an outsider's libp2p node publishes on the output topic reaches no one: the
/// server it is connected to drops it (never relays it), counts it by reason, and bans
/// the peer after a few. A second outsider on the same server is the witness: before
/// servers validated gossip, it received every junk message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_on_the_output_topic_is_dropped_counted_and_its_publisher_banned() {
    use futures::StreamExt;
    use libp2p::gossipsub;
    use libp2p::swarm::SwarmEvent;
    let c = Cluster::start(ClusterOpts::default()).unwrap();
    leader(&c).await;
    let server = c.servers[0].clone();
    let (mut junk, mut witness) = (
        tests::hostile::gossip_swarm().unwrap(),
        tests::hostile::gossip_swarm().unwrap(),
    );
    for sw in [&mut junk, &mut witness] {
        sw.dial(
            libp2p::swarm::dial_opts::DialOpts::peer_id(server.peer_id)
                .addresses(vec![server.addr.clone()])
                .build(),
        )
        .unwrap();
    }
    let topic = gossipsub::IdentTopic::new(p2p::names::OUTPUT_TOPIC);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut published = 0u32;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // Until the mesh forms, publishing fails with "no peers": keep trying.
                if junk.behaviour_mut().publish(topic.clone(), format!("junk {published}").into_bytes()).is_ok() {
                    published += 1;
                }
            }
            _ = junk.select_next_some() => {}
            ev = witness.select_next_some() => {
                if let SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) = ev {
                    panic!("the server relayed a non-server's message: {:?}", String::from_utf8_lossy(&message.data));
                }
            }
        }
        let banned = rejections(&c, 0, "gossip_peer_banned").await;
        if banned >= 1 && published >= 8 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ban within {DEADLINE:?}: published {published}, dropped {}",
            rejections(&c, 0, "gossip_from_non_server").await
        );
    }
    assert!(rejections(&c, 0, "gossip_from_non_server").await >= 8);
    // The server keeps serving: writes through it still commit.
    probes(&c, 3, 0, 5, 64, 1).await;
}
