//! Catch-up: when it starts, pages, the gap event, and counting servers that answered.

use super::*;
use crate::core::catchup::{CatchUp, Step};
use protocol::limits::MAX_HISTORY_OUTPUTS;

fn history(
    c: &Cluster,
    rounds: std::ops::RangeInclusive<Round>,
    server: u16,
    oldest: Option<Round>,
) -> ClientResponse {
    let outputs = rounds
        .map(|r| c.vouch(&c.output(r, vec![r as u8]), server))
        .collect();
    ClientResponse::History {
        outputs: BoundedVec::new(outputs).unwrap(),
        oldest_kept: oldest,
    }
}

fn store_at(last: Round) -> MemStore {
    let mut s = MemStore::default();
    s.last_round = Some(last);
    s
}

fn history_req(sim: &mut Sim) -> Option<(RequestId, u16, Round)> {
    match sim.take(|r| matches!(r, ClientRequest::History { .. }))? {
        (id, server, ClientRequest::History { from_round }) => Some((id, server, from_round)),
        _ => None,
    }
}

#[test]
fn catch_up_starts_when_the_first_server_connects() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, store_at(10), 1);
    sim.tick();
    assert!(history_req(&mut sim).is_none(), "no server connected yet");
    sim.core.handle_server_up(2);
    sim.tick();
    assert_eq!(history_req(&mut sim).map(|(_, s, f)| (s, f)), Some((0, 11)));
    sim.tick();
    assert!(history_req(&mut sim).is_none(), "only once");
}

#[test]
fn a_fresh_client_does_not_catch_up() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    sim.core.handle_server_up(0);
    sim.tick();
    assert!(history_req(&mut sim).is_none());
}

#[test]
fn pages_are_followed_gaps_reported_once_and_f_plus_one_servers_suffice() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, store_at(10), 1);
    sim.core.handle_server_up(0);
    sim.tick();
    // Server 0 kept rounds from 20 on: 11..=19 are gone. Its first page is full.
    let (id, s, from) = history_req(&mut sim).unwrap();
    assert_eq!((s, from), (0, 11));
    let last = 20 + MAX_HISTORY_OUTPUTS as Round - 1;
    sim.reply(id, history(&c, 20..=last, 0, Some(20)));
    let gaps: Vec<_> = sim
        .events
        .iter()
        .filter(|e| matches!(e, Event::Gap { .. }))
        .collect();
    assert_eq!(gaps.len(), 1);
    assert!(matches!(
        gaps[0],
        Event::Gap {
            from_round: 11,
            to_round: 19
        }
    ));
    let (id, s, from) = history_req(&mut sim).unwrap();
    assert_eq!((s, from), (0, last + 1), "a full page asks for the next");
    sim.reply(id, history(&c, (last + 1)..=(last + 2), 0, Some(20)));
    // Server 0 is done; server 1 fails; server 2 answers and completes f+1 = 2.
    let (id, s, from) = history_req(&mut sim).unwrap();
    assert_eq!((s, from), (1, 11));
    sim.fail(id, Failure::TimedOut);
    let (id, s, from) = history_req(&mut sim).unwrap();
    assert_eq!((s, from), (2, 11));
    sim.reply(id, history(&c, 20..=last, 2, Some(20)));
    let (id, s, from) = history_req(&mut sim).unwrap();
    assert_eq!((s, from), (2, last + 1));
    sim.reply(id, history(&c, (last + 1)..=(last + 2), 2, Some(20)));
    assert!(
        history_req(&mut sim).is_none(),
        "two servers answered: done"
    );
    assert_eq!(
        sim.events
            .iter()
            .filter(|e| matches!(e, Event::Gap { .. }))
            .count(),
        1
    );
    // Every round was vouched by servers 0 and 2, but vouches wait for at most
    // VOUCH_WINDOW rounds: server 0's 66 single vouches pushed out the oldest two.
    let rounds = sim.rounds();
    assert_eq!(rounds.len() as u64, crate::core::vouch::VOUCH_WINDOW);
    assert_eq!(rounds.first(), Some(&22));
    assert_eq!(sim.core.last_processed(), Some(last + 2));
}

#[test]
fn catch_up_bookkeeping_counts_answers_not_attempts() {
    let (mut c, step) = CatchUp::start(4, 2, 3);
    assert_eq!(
        step,
        Step::Ask {
            server: 0,
            from_round: 5
        }
    );
    let empty = ClientResponse::History {
        outputs: BoundedVec::new(Vec::new()).unwrap(),
        oldest_kept: Some(9),
    };
    // Server 0 answers (an empty page still counts) and reports the gap.
    let page = c.on_answer(Some(empty.clone()));
    assert_eq!(page.gap, Some((5, 8)));
    assert_eq!(
        page.next,
        Some(Step::Ask {
            server: 1,
            from_round: 5
        })
    );
    assert_eq!(c.answered(), 1);
    // Server 1 says something else: not an answer.
    let page = c.on_answer(Some(ClientResponse::Identity(None)));
    assert_eq!(c.answered(), 1);
    assert_eq!(
        page.next,
        Some(Step::Ask {
            server: 2,
            from_round: 5
        })
    );
    // Server 2 answers: no second gap event.
    let page = c.on_answer(Some(empty));
    assert_eq!(page.gap, None);
    assert_eq!(page.next, Some(Step::Done));
    assert_eq!(c.answered(), 2);
    // All servers failing ends too.
    let (mut c, _) = CatchUp::start(4, 2, 2);
    assert_eq!(
        c.on_answer(None).next,
        Some(Step::Ask {
            server: 1,
            from_round: 5
        })
    );
    assert_eq!(c.on_answer(None).next, Some(Step::Done));
    assert_eq!(c.answered(), 0);
}

#[test]
fn three_ticks_behind_start_a_catch_up() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, store_at(10), 1);
    // Connected and caught up at start (server answers with nothing new).
    sim.core.handle_server_up(0);
    sim.tick();
    for _ in 0..2 {
        let (id, _, _) = history_req(&mut sim).unwrap();
        sim.reply(
            id,
            ClientResponse::History {
                outputs: BoundedVec::new(Vec::new()).unwrap(),
                oldest_kept: None,
            },
        );
    }
    assert!(history_req(&mut sim).is_none());
    // The cluster revealed round 12 but its gossip never came.
    for _ in 0..2 {
        sim.status(status(13, Some(12), &[]));
        assert!(history_req(&mut sim).is_none());
    }
    sim.status(status(13, Some(12), &[]));
    assert_eq!(history_req(&mut sim).map(|(_, s, f)| (s, f)), Some((0, 11)));
}

#[test]
fn a_catch_up_nobody_answered_is_tried_again_next_tick() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, store_at(10), 1);
    sim.core.handle_server_up(0);
    sim.tick();
    for server in 0..3 {
        let (id, s, _) = history_req(&mut sim).unwrap();
        assert_eq!(s, server);
        sim.fail(id, Failure::Conn(format!("server {s}: dial failure")));
    }
    assert!(history_req(&mut sim).is_none());
    sim.tick();
    assert_eq!(history_req(&mut sim).map(|(_, s, f)| (s, f)), Some((0, 11)));
}

#[test]
fn the_first_catch_up_starts_from_the_stored_round_even_after_fresh_gossip() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, store_at(10), 1);
    sim.core.handle_server_up(0);
    // Gossip of round 30 is accepted before the first tick.
    let out = c.output(30, vec![3]);
    sim.vouched(&c, &out, &[0, 1]);
    assert_eq!(sim.core.last_processed(), Some(30));
    sim.tick();
    assert_eq!(history_req(&mut sim).map(|(_, s, f)| (s, f)), Some((0, 11)));
}
