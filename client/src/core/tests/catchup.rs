//! Catch-up: the watermark, aligned pages from every server, void rounds, gaps, rounds
//! lost on gossip, and absences of hundreds of rounds.

use std::collections::BTreeMap;

use super::*;
use protocol::limits::MAX_HISTORY_OUTPUTS;

fn store_at(last: Round) -> MemStore {
    let mut s = MemStore::default();
    s.last_round = Some(last);
    s
}

/// What the servers hold: outputs by round (void rounds are absent), the oldest kept
/// and the newest settled round.
struct Servers {
    outputs: BTreeMap<Round, RoundOutput>,
    oldest_kept: Round,
    settled_through: Round,
}

impl Servers {
    /// Server `s`'s answer to `History { from }`.
    fn page(&self, c: &Cluster, s: u16, from: Round) -> ClientResponse {
        let outputs: Vec<_> = self
            .outputs
            .range(from.max(self.oldest_kept)..)
            .take(MAX_HISTORY_OUTPUTS)
            .map(|(_, o)| c.vouch(o, s))
            .collect();
        ClientResponse::History {
            outputs: BoundedVec::new(outputs).unwrap(),
            oldest_kept: self
                .outputs
                .range(self.oldest_kept..)
                .next()
                .map(|(r, _)| *r),
            settled_through: Some(self.settled_through),
        }
    }

    /// Answer every history request out, from every server; returns how many.
    fn answer_all(&self, c: &Cluster, sim: &mut Sim) -> usize {
        let mut n = 0;
        while let Some((id, s, req)) = sim.take(|r| matches!(r, ClientRequest::History { .. })) {
            let ClientRequest::History { from_round } = req else {
                unreachable!()
            };
            sim.reply(id, self.page(c, s, from_round));
            n += 1;
        }
        n
    }
}

fn history_reqs(sim: &Sim) -> Vec<(u16, Round)> {
    sim.reqs
        .iter()
        .filter_map(|(_, s, r)| match r {
            ClientRequest::History { from_round } => Some((*s, *from_round)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_client_away_for_500_rounds_gets_every_message_page_by_page() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mine = Identity::from_secret_bytes(&me.ed25519_seed(), &me.x25519_secret().to_bytes());
    let mut sim = c.sim(mine, store_at(10), 1);
    // Rounds 11..=510: every seventh void, a message for us every 25th.
    let mut servers = Servers {
        outputs: BTreeMap::new(),
        oldest_kept: 1,
        settled_through: 510,
    };
    let mut sent = Vec::new();
    for r in 11..=510u64 {
        if r % 7 == 0 {
            continue;
        }
        let out = if r % 25 == 0 {
            let text = format!("while away, round {r}");
            let slot = c.slot(&bob, &me, r as u32, 0, 1, text.as_bytes(), T0);
            sent.push(text);
            c.output_with(r, &[(1, slot)])
        } else {
            c.output(r, vec![])
        };
        servers.outputs.insert(r, out);
    }
    sim.sync(&[register(&bob, "bob")]);
    // f+1 servers say so (one server's word does not move a client).
    sim.status(status(511, Some(510), &[]));
    sim.status(status(511, Some(510), &[]));
    let mut steps = 0;
    while sim.core.last_processed() < Some(510) {
        sim.tick();
        let reqs = history_reqs(&sim);
        assert!(!reqs.is_empty(), "stuck at {:?}", sim.core.last_processed());
        // Every server is asked for the same page.
        assert!(reqs.iter().all(|(_, f)| *f == reqs[0].1), "{reqs:?}");
        assert_eq!(reqs.len(), 3);
        servers.answer_all(&c, &mut sim);
        steps += 1;
        assert!(steps < 20, "too many steps");
    }
    let got: Vec<String> = sim.messages().into_iter().map(|(_, t)| t).collect();
    assert_eq!(got, sent, "every message, in order, once");
    assert!(
        !sim.events.iter().any(|e| matches!(e, Event::Gap { .. })),
        "no gap within retention"
    );
    assert_eq!(
        sim.core.store().last_round,
        Some(510),
        "the watermark is stored"
    );
}

#[test]
fn a_round_lost_on_gossip_is_fetched_and_the_watermark_waits_for_it() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mine = Identity::from_secret_bytes(&me.ed25519_seed(), &me.x25519_secret().to_bytes());
    let mut sim = c.sim(mine, store_at(10), 1);
    sim.sync(&[register(&bob, "bob")]);
    let slot = c.slot(&bob, &me, 1, 0, 1, b"the lost one", T0);
    let lost = c.output_with(11, &[(2, slot)]);
    let servers = Servers {
        outputs: [
            (11, lost),
            (12, c.output(12, vec![1])),
            (13, c.output(13, vec![2])),
        ]
        .into_iter()
        .collect(),
        oldest_kept: 1,
        settled_through: 13,
    };
    // Gossip brings 12 and 13; 11 never arrives.
    sim.vouched(&c, &servers.outputs[&12].clone(), &[0, 1]);
    sim.vouched(&c, &servers.outputs[&13].clone(), &[1, 2]);
    assert_eq!(sim.core.last_processed(), Some(10), "11 is not settled");
    sim.tick();
    assert_eq!(history_reqs(&sim), vec![(0, 11), (1, 11), (2, 11)]);
    servers.answer_all(&c, &mut sim);
    assert_eq!(sim.core.last_processed(), Some(13));
    assert_eq!(
        sim.messages(),
        vec![("bob".to_string(), "the lost one".to_string())]
    );
    sim.tick();
    assert!(history_reqs(&sim).is_empty(), "nothing more to fetch");
}

#[test]
fn rounds_beyond_retention_are_one_gap_with_its_exact_range() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, store_at(10), 1);
    sim.core.handle_server_up(0);
    let servers = Servers {
        outputs: (300..=320).map(|r| (r, c.output(r, vec![1]))).collect(),
        oldest_kept: 300,
        settled_through: 320,
    };
    // f+1 servers say so (one server's word does not move a client).
    sim.status(status(321, Some(320), &[]));
    sim.status(status(321, Some(320), &[]));
    for _ in 0..4 {
        sim.tick();
        servers.answer_all(&c, &mut sim);
    }
    let gaps: Vec<(Round, Round)> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Gap {
                from_round,
                to_round,
            } => Some((*from_round, *to_round)),
            _ => None,
        })
        .collect();
    assert_eq!(gaps, vec![(11, 299)]);
    assert_eq!(sim.core.last_processed(), Some(320));
}

#[test]
fn answers_from_fewer_than_f_plus_one_servers_settle_nothing_and_are_retried() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, store_at(10), 1);
    sim.core.handle_server_up(0);
    // f+1 servers say so (one server's word does not move a client).
    sim.status(status(13, Some(12), &[]));
    sim.status(status(13, Some(12), &[]));
    sim.tick();
    let servers = Servers {
        outputs: BTreeMap::new(),
        oldest_kept: 1,
        settled_through: 12,
    };
    // One server claims 11 and 12 were void; the other two fail.
    let mut answered = false;
    while let Some((id, s, _)) = sim.take(|r| matches!(r, ClientRequest::History { .. })) {
        if answered {
            sim.fail(id, Failure::TimedOut);
        } else {
            sim.reply(id, servers.page(&c, s, 11));
            answered = true;
        }
    }
    assert_eq!(
        sim.core.last_processed(),
        Some(10),
        "one server cannot settle rounds"
    );
    sim.tick();
    assert!(history_reqs(&sim).is_empty(), "not at once");
    sim.now += 10_000;
    sim.tick();
    assert_eq!(history_reqs(&sim).len(), 3, "tried again later");
}

#[test]
fn a_page_whose_vouches_are_not_its_servers_does_not_count() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, store_at(10), 1);
    sim.core.handle_server_up(0);
    // f+1 servers say so (one server's word does not move a client).
    sim.status(status(12, Some(11), &[]));
    sim.status(status(12, Some(11), &[]));
    sim.tick();
    let out = c.output(11, vec![5]);
    // Server 0 answers with server 1's vouch: it did not vouch itself.
    let (id, _, _) = sim
        .take(|r| matches!(r, ClientRequest::History { .. }))
        .unwrap();
    sim.reply(
        id,
        ClientResponse::History {
            outputs: BoundedVec::new(vec![c.vouch(&out, 1)]).unwrap(),
            oldest_kept: Some(1),
            settled_through: Some(11),
        },
    );
    // The other two say nothing was revealed: 11 is still not void (server 0's page
    // did not count, and the two that did cover only up to 10).
    for s in [1u16, 2] {
        let (id, _, _) = sim
            .take(|r| matches!(r, ClientRequest::History { .. }))
            .unwrap();
        sim.reply(
            id,
            ClientResponse::History {
                outputs: BoundedVec::new(Vec::new()).unwrap(),
                oldest_kept: Some(1),
                settled_through: Some(10 + u64::from(s) / 3),
            },
        );
    }
    assert_eq!(sim.core.last_processed(), Some(10));
}

#[test]
fn a_fresh_client_starts_from_now_and_fetches_nothing_older() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    sim.core.handle_server_up(0);
    // One server's word is not enough: it could be lying to make us skip rounds.
    sim.status(status(1_000_001, Some(1_000_000), &[]));
    assert_eq!(sim.core.last_processed(), None);
    sim.status(status(101, Some(100), &[]));
    assert_eq!(
        sim.core.last_processed(),
        Some(100),
        "f+1 servers agree on 100"
    );
    sim.tick();
    assert!(history_reqs(&sim).is_empty());
    // Real rounds after it are accepted, not refused as old.
    let out = c.output(101, vec![1]);
    sim.vouched(&c, &out, &[0, 1]);
    assert_eq!(sim.core.last_processed(), Some(101));
}
