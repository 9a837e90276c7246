//! Rooms among simulated clients sharing every round: join approval, history for the
//! newcomer, removal, and a member offline through membership changes.

use super::*;
use crate::core::RoomRequest;

/// A few clients in the same rounds, the outputs kept (servers 0 and 1 answer history).
pub(super) struct World {
    pub(super) c: Cluster,
    rounds: Rounds,
    pub(super) sims: Vec<Sim>,
    outputs: Vec<RoundOutput>,
    r: Round,
    pub(super) ids: Vec<Identity>,
}

pub(super) fn twin(id: &Identity) -> Identity {
    Identity::from_secret_bytes(&id.ed25519_seed(), &id.x25519_secret().to_bytes())
}

impl World {
    pub(super) fn new(names: &[&str]) -> Self {
        Self::new_with(names, |p| p)
    }

    /// Clients named `names`, with the round parameters changed by `params`.
    pub(super) fn new_with(names: &[&str], params: impl FnOnce(Params) -> Params) -> Self {
        let mut c = Cluster::new(12);
        c.params = params(c.params.clone());
        let ids: Vec<Identity> = names.iter().map(|_| c.identity()).collect();
        let dir: Vec<Register> = ids.iter().zip(names).map(|(i, n)| register(i, n)).collect();
        let sims: Vec<Sim> = ids
            .iter()
            .enumerate()
            .map(|(k, i)| c.sim(twin(i), MemStore::default(), k as u64 + 1))
            .collect();
        let mut sims = sims;
        for s in &mut sims {
            s.sync(&dir);
        }
        Self {
            c,
            rounds: Rounds::default(),
            sims,
            outputs: Vec::new(),
            r: 10,
            ids,
        }
    }

    fn room(&mut self, who: usize, req: RoomRequest) -> Result<serde_json::Value, String> {
        let s = &mut self.sims[who];
        let t = s.user(UserRequest::Room(req));
        match s.answers.iter().find(|(tok, _)| *tok == t) {
            Some((_, Answer::Room(r))) => r.clone(),
            other => panic!("no room answer: {other:?}"),
        }
    }

    /// One round: every online client submits, the output goes to all of them, and
    /// history pages asked are answered from the outputs so far.
    pub(super) fn round(&mut self, online: &[usize]) {
        self.r += 1;
        let r = self.r;
        let mut subs = Vec::new();
        for &k in online {
            let s = &mut self.sims[k];
            s.now += 1000;
            s.status(status(r, None, &[]));
            subs.push(s.accept_submit());
        }
        let refs: Vec<&Submission> = subs.iter().collect();
        let out = self.rounds.publish(&self.c, r, &refs);
        self.outputs.push(out.clone());
        for &k in online {
            self.sims[k].vouched(&self.c, &out, &[0, 1]);
            self.answer_history(k);
        }
    }

    fn answer_history(&mut self, k: usize) {
        while let Some((id, server, ClientRequest::History { from_round })) =
            self.sims[k].take(|q| matches!(q, ClientRequest::History { .. }))
        {
            let page: Vec<SignedOutput> = self
                .outputs
                .iter()
                .filter(|o| o.round >= from_round)
                .take(protocol::limits::MAX_HISTORY_OUTPUTS)
                .map(|o| self.c.vouch(o, server))
                .collect();
            let resp = ClientResponse::History {
                outputs: BoundedVec::new(page).unwrap(),
                oldest_kept: self.outputs.first().map(|o| o.round),
                settled_through: Some(self.r),
            };
            self.sims[k].reply(id, resp);
        }
    }

    /// Rounds until `done` holds (at most 300).
    pub(super) fn until(&mut self, online: &[usize], what: &str, done: impl Fn(&World) -> bool) {
        for _ in 0..300 {
            if done(self) {
                return;
            }
            self.round(online);
        }
        panic!(
            "never: {what}; events: {:#?}",
            self.sims.iter().map(notes).collect::<Vec<_>>()
        );
    }
}

pub(super) fn notes(s: &Sim) -> Vec<String> {
    s.events
        .iter()
        .filter_map(|e| match e {
            Event::RoomNotice { notice, .. } => Some(notice.clone()),
            Event::RoomMessage { from, text, .. } => Some(format!("{from}: {text}")),
            Event::Error { message } => Some(format!("error: {message}")),
            _ => None,
        })
        .collect()
}

pub(super) fn said(w: &World, k: usize, needle: &str) -> bool {
    notes(&w.sims[k]).iter().any(|n| n.contains(needle))
}

pub(super) fn create(w: &mut World, who: usize, name: &str, history: bool) {
    let req = RoomRequest::Create {
        name: name.into(),
        admins_only: false,
        history,
    };
    w.room(who, req).expect("created");
}

fn say(w: &mut World, who: usize, room: &str, text: &str) {
    let req = RoomRequest::Send {
        name: room.into(),
        text: text.into(),
    };
    w.room(who, req).expect("queued");
}

/// bob asks alice to let him into `room`, she approves, he is in.
pub(super) fn admit_bob(w: &mut World, room: &str) {
    let req = RoomRequest::Join {
        name: room.into(),
        via: "alice".into(),
    };
    let v = w.room(1, req).expect("asked");
    assert_eq!(v["state"], "waiting for approval");
    let everyone = [0, 1, 2, 3];
    w.until(&everyone, "alice sees bob's request", |w| {
        said(w, 0, "bob asks to join")
    });
    let req = RoomRequest::Approve {
        name: room.into(),
        user: "bob".into(),
    };
    w.room(0, req).expect("approved");
    w.until(&everyone, "bob is in", |w| {
        said(w, 1, "you joined, approved by alice")
    });
}

/// alice's room "club" with bob in it, approved by alice.
fn club() -> World {
    let mut w = World::new(&["alice", "bob", "carol", "dave"]);
    create(&mut w, 0, "club", true);
    say(&mut w, 0, "club", "before bob came");
    admit_bob(&mut w, "club");
    w
}

#[test]
fn a_newcomer_approved_by_a_member_reads_what_was_said_before_it_came() {
    let mut w = club();
    let everyone = [0, 1, 2, 3];
    w.until(&everyone, "bob reads the history", |w| {
        said(w, 1, "alice: before bob came")
    });
    assert!(said(&w, 0, "bob joined, approved by you"));
    say(&mut w, 1, "club", "hello alice");
    w.until(&everyone, "alice hears bob", |w| {
        said(w, 0, "bob: hello alice")
    });
    // Carol, not a member, read nothing of the room.
    assert!(notes(&w.sims[2]).is_empty(), "{:?}", notes(&w.sims[2]));
    // The room list shows both, and no request left.
    let list = w.room(0, RoomRequest::List).expect("list");
    assert_eq!(
        list["rooms"][0]["members"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        list["rooms"][0]["requests"].as_array().map(Vec::len),
        Some(0)
    );
}

#[test]
fn a_removed_member_reads_nothing_sent_after_its_removal() {
    let mut w = club();
    let everyone = [0, 1, 2, 3];
    let req = RoomRequest::Remove {
        name: "club".into(),
        user: "bob".into(),
    };
    w.room(0, req).expect("removing");
    w.until(&everyone, "bob is removed", |w| {
        said(w, 1, "you were removed by alice")
    });
    say(&mut w, 0, "club", "after bob left");
    w.until(&everyone, "alice's message is out", |w| {
        w.sims[0].core.store().outbox.is_empty()
    });
    for _ in 0..5 {
        w.round(&everyone);
    }
    assert!(!said(&w, 1, "after bob left"));
    let sent: Vec<_> = w.sims[1]
        .core
        .store()
        .history
        .values()
        .map(|e| e.text.clone())
        .collect();
    assert!(
        !sent.iter().any(|t| t.contains("after bob left")),
        "{sent:?}"
    );
    assert!(w
        .room(
            1,
            RoomRequest::Send {
                name: "club".into(),
                text: "x".into()
            }
        )
        .is_err());
}

/// A room message takes the same slots whatever the room's size: it is sealed once
/// under the epoch's key, not once per member. Slot counts (256-byte slots, as keygen's
/// default) for rooms of 3 and 30, and the sizes of what a join costs, for the record.
#[test]
fn a_room_message_costs_one_slot_whatever_the_room_size() {
    use crate::rooms::mls::Mls;
    use crate::rooms::wire::{Body, Signed};
    let slot_bytes = 256;
    for size in [3usize, 30] {
        let ids: Vec<Identity> = (0..size)
            .map(|_| Identity::generate(&mut rand_core::OsRng))
            .collect();
        let creator = Mls::new(&ids[0]);
        let room = [size as u8; 16];
        creator.create(room).expect("create");
        let kps: Vec<Vec<u8>> = ids[1..size - 1]
            .iter()
            .map(|i| Mls::new(i).key_package().expect("kp"))
            .collect();
        for kp in &kps {
            creator.add(&room, kp).expect("add");
            creator.merge_own(&room).expect("merge");
        }
        // The last one's join: what a member commits and the newcomer is sent.
        let last = Mls::new(&ids[size - 1]).key_package().expect("kp");
        let (commit, welcome) = creator.add(&room, &last).expect("add");
        creator.merge_own(&room).expect("merge");
        assert_eq!(creator.members(&room).expect("members").len(), size);
        let text = Signed::new(&ids[0], &room, T0, Body::Text("see you at eight?".into()))
            .expect("signed");
        let bytes = protocol::encode(&text).expect("encode");
        let slots = protocol::room::fragment_room(&bytes, slot_bytes)
            .expect("fits")
            .len();
        eprintln!(
            "room of {size}: a text takes {slots} slot(s) ({} B); joining: commit {} B \
             ({} slots), welcome {} B",
            bytes.len(),
            commit.len(),
            protocol::room::fragment_room(&commit, slot_bytes).map_or(0, |f| f.len()),
            welcome.len()
        );
        assert_eq!(slots, 1, "room of {size}");
    }
}

#[test]
fn a_member_who_leaves_is_removed_and_a_renamed_room_survives_a_restart() {
    let mut w = club();
    let everyone = [0, 1, 2, 3];
    w.room(
        1,
        RoomRequest::Leave {
            name: "club".into(),
        },
    )
    .expect("leaving");
    w.until(&everyone, "bob's removal is committed", |w| {
        said(w, 1, "you left") && said(w, 0, "bob was removed by you")
    });
    assert!(w.room(1, RoomRequest::List).expect("list")["rooms"]
        .as_array()
        .is_some_and(Vec::is_empty));
    let rename = RoomRequest::Rename {
        name: "club".into(),
        to: "reading".into(),
    };
    w.room(0, rename).expect("renaming");
    w.until(&everyone, "the rename lands", |w| {
        said(w, 0, "alice renamed the room to reading")
    });
    // alice restarts: the room, its keys and its members come back from her store.
    let store = w.sims[0].core.store().clone();
    let id = twin(&w.ids[0]);
    w.sims[0] = w.c.sim(id, store, 99);
    let list = w.room(0, RoomRequest::List).expect("list");
    assert_eq!(list["rooms"][0]["name"], "reading");
    assert_eq!(
        list["rooms"][0]["members"].as_array().map(Vec::len),
        Some(1)
    );
    say(&mut w, 0, "reading", "still here");
    w.until(&everyone, "the message goes out after the restart", |w| {
        w.sims[0].core.store().outbox.is_empty()
    });
}

#[test]
fn a_room_message_processed_again_after_a_crash_is_shown_once() {
    let mut w = club();
    let everyone = [0, 1, 2, 3];
    let before = w.r;
    say(&mut w, 0, "club", "only once");
    w.until(&everyone, "bob hears it", |w| {
        said(w, 1, "alice: only once")
    });
    for _ in 0..3 {
        w.round(&everyone);
    }
    // bob's process died after storing the message but before its watermark was
    // written: at restart it processes those rounds again.
    let heard_in = w.sims[1]
        .events
        .iter()
        .find_map(|e| match e {
            Event::RoomMessage { text, round, .. } if text == "only once" => Some(*round),
            _ => None,
        })
        .expect("heard");
    let mut store = w.sims[1].core.store().clone();
    store.last_round = Some(before);
    let id = twin(&w.ids[1]);
    w.sims[1] = w.c.sim(id, store, 77);
    // The outputs since then reach it again (as a catch-up would fetch them).
    let again: Vec<RoundOutput> = w
        .outputs
        .iter()
        .filter(|o| o.round > before)
        .cloned()
        .collect();
    for o in &again {
        w.sims[1].vouched(&w.c, o, &[0, 1]);
    }
    assert!(
        w.sims[1].core.last_processed() >= Some(heard_in),
        "processed the message's round ({heard_in}) again: {:?}",
        w.sims[1].core.last_processed()
    );
    let copies = w.sims[1]
        .core
        .store()
        .history
        .values()
        .filter(|e| e.text == "alice: only once")
        .count();
    assert_eq!(copies, 1);
    assert!(
        !said(&w, 1, "alice: only once"),
        "not shown again after the restart"
    );
}

#[test]
fn a_room_that_keeps_its_history_to_itself_hands_a_newcomer_none() {
    let mut w = World::new(&["alice", "bob", "carol", "dave"]);
    create(&mut w, 0, "quiet", false);
    say(&mut w, 0, "quiet", "before bob came");
    let everyone = [0, 1, 2, 3];
    w.until(&everyone, "alice's message is out", |w| {
        w.sims[0].core.store().outbox.is_empty()
    });
    admit_bob(&mut w, "quiet");
    say(&mut w, 0, "quiet", "after bob came");
    w.until(&everyone, "bob hears what is said after", |w| {
        said(w, 1, "alice: after bob came")
    });
    assert!(!said(&w, 1, "before bob came"), "{:?}", notes(&w.sims[1]));
}
