//! Hostile uploads are refused by name while honest traffic goes through.

use client::config::Settings;
use client::conn::ClusterConn;
use keys::manifest::Policy;
use protocol::bounded::{BoundedVec, Bytes};
use protocol::submission::build_submission;
use protocol::wire::{ClientRequest, ClientResponse, RejectReason, ShareUpload, Submission};
use tests::cluster::{Cluster, ClusterOpts};

use crate::util::{until, Client};

async fn open_round(conn: &ClusterConn) -> u64 {
    match conn.request(0, ClientRequest::Status).await.unwrap() {
        ClientResponse::Status(s) => s.open_round,
        other => panic!("status: {other:?}"),
    }
}

/// Server 0's share of `s`, sent to server 0.
async fn submit(conn: &ClusterConn, s: &Submission) -> ClientResponse {
    upload(conn, s.upload_for(0).unwrap()).await
}

async fn upload(conn: &ClusterConn, up: ShareUpload) -> ClientResponse {
    conn.request(0, ClientRequest::Share(up)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_submissions_are_refused_by_name_and_honest_traffic_is_delivered() {
    let c = Cluster::start(ClusterOpts {
        clients: 4,
        round_ms: 1500,
        policy: Policy::Listed,
        ..ClusterOpts::default()
    })
    .unwrap();
    c.wait_for(
        "an agreed leader",
        std::time::Duration::from_secs(60),
        || c.agreed_leader(),
    )
    .await
    .unwrap();
    let mut honest = vec![
        Client::start(&c, 2).await,
        Client::start(&c, 3).await,
        Client::start(&c, 4).await,
    ];
    honest[0]
        .engine
        .send("client-3", "honest in a hostile round", false)
        .await
        .unwrap();

    let me = Settings::load(&c.client_config(1)).unwrap();
    let (conn, _events) = c.connect().await.unwrap();
    let vector = protocol::vector::Vector::zero(&me.params);
    let mut rng = rand_core::OsRng;
    let build = |round: u64, who: &keys::Identity| {
        build_submission(
            &me.params,
            round,
            &vector,
            who,
            &me.server_dh,
            &mut rand_core::OsRng,
        )
        .unwrap()
    };

    let r = open_round(&conn).await;
    let good = build(r, &me.identity);
    let first = submit(&conn, &good).await;
    if let ClientResponse::Rejected(RejectReason::StaleRound { .. }) = first {
        // The round closed in between; not what this test is about.
        return;
    }
    assert!(
        matches!(first, ClientResponse::Accepted { .. }),
        "{first:?}"
    );
    let replay = submit(&conn, &good).await;
    assert!(
        matches!(
            replay,
            ClientResponse::Rejected(RejectReason::DuplicateSubmission { .. })
        ),
        "replay: {replay:?}"
    );

    let future = submit(&conn, &build(r + 5, &me.identity)).await;
    assert!(
        matches!(
            future,
            ClientResponse::Rejected(RejectReason::FutureRound { .. })
        ),
        "future: {future:?}"
    );

    let mut forged = build(r, &me.identity);
    forged.signature.0[10] ^= 0x40;
    let bad_sig = submit(&conn, &forged).await;
    assert_eq!(
        bad_sig,
        ClientResponse::Rejected(RejectReason::BadSignature),
        "forged signature"
    );

    let stranger = keys::Identity::generate(&mut rng);
    let unknown = submit(&conn, &build(r, &stranger)).await;
    assert_eq!(
        unknown,
        ClientResponse::Rejected(RejectReason::UnknownClient),
        "unlisted client"
    );

    let mut short = build(r, &me.identity).upload_for(0).unwrap();
    short.digests = BoundedVec::new(short.digests.as_slice()[..2].to_vec()).unwrap();
    let count = upload(&conn, short).await;
    assert!(
        matches!(
            count,
            ClientResponse::Rejected(RejectReason::WrongDigestCount {
                expected: 3,
                got: 2
            })
        ),
        "{count:?}"
    );

    let mut sized = build(r, &me.identity).upload_for(0).unwrap();
    sized.share.ciphertext = Bytes::new(vec![1u8; 100]).unwrap();
    let size = upload(&conn, sized).await;
    assert!(
        matches!(
            size,
            ClientResponse::Rejected(RejectReason::WrongShareSize { got: 100, .. })
        ),
        "{size:?}"
    );

    // A share swapped for other bytes of the same size: not the one signed for.
    let mut swapped = build(r, &me.identity).upload_for(0).unwrap();
    let mut ct = swapped.share.ciphertext.as_slice().to_vec();
    ct[3] ^= 1;
    swapped.share.ciphertext = Bytes::new(ct).unwrap();
    assert_eq!(
        upload(&conn, swapped).await,
        ClientResponse::Rejected(RejectReason::DigestMismatch)
    );

    // Garbage sealed to server 0 and validly signed: only server 0 can tell, and it
    // refuses it at once instead of adding it into the round (v1 had to).
    let mut garbage = build(r, &me.identity);
    let mut shares = garbage.shares.as_slice().to_vec();
    let len = shares[0].ciphertext.len();
    shares[0].ciphertext = Bytes::new(vec![7u8; len]).unwrap();
    garbage.shares = BoundedVec::new(shares).unwrap();
    let signed = Submission::signed_bytes(
        garbage.round,
        &garbage.client,
        &garbage.digests(),
        &garbage.proof_digests(),
    );
    garbage.signature = protocol::bounded::Fixed(me.identity.sign(&signed));
    assert_eq!(
        submit(&conn, &garbage).await,
        ClientResponse::Rejected(RejectReason::ShareDoesNotOpen)
    );

    // After the round closes, the old submission is stale.
    c.wait_for(
        "the round to close",
        std::time::Duration::from_secs(30),
        || async { (open_round(&conn).await > r).then_some(()) },
    )
    .await
    .unwrap();
    let stale = submit(&conn, &good).await;
    assert!(
        matches!(stale, ClientResponse::Rejected(RejectReason::StaleRound { got, .. }) if got == r),
        "stale: {stale:?}"
    );

    // Each refusal is visible in the receiving server's metrics by its reason.
    let reasons = [
        "duplicate_submission",
        "future_round",
        "bad_signature",
        "unknown_client",
        "wrong_digest_count",
        "wrong_share_size",
        "digest_mismatch",
        "share_does_not_open",
        "stale_round",
    ];
    c.wait_for(
        "every refusal reason in node 0's metrics",
        std::time::Duration::from_secs(30),
        || async {
            let samples = tests::metrics::parse(&tests::metrics::node_text(&c, 0).await?);
            reasons
                .iter()
                .all(|reason| {
                    samples.iter().any(|s| {
                        s.family == "chorus_commands_rejected_total" && s.reason == *reason
                    })
                })
                .then_some(())
        },
    )
    .await
    .unwrap();

    until(&c, &mut honest, "the honest message arrives", |cl| {
        cl[1]
            .received()
            .iter()
            .any(|(_, t)| t == "honest in a hostile round")
    })
    .await;
}
