//! Unit tests of the client core: in-process and deterministic (seeded rngs, time passed
//! in, the in-memory store). The fixture plays the servers: it answers the core's
//! requests, opens its submissions, and signs outputs with real server keys.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

mod acceptance;
mod board;
mod catchup;
mod directory;
mod files;
mod inbox;
mod outbox;
mod requests;
mod rooms;
mod timing;

use keys::Identity;
use protocol::bounded::{BoundedVec, Bytes, Fixed};
use protocol::params::Admission;
use protocol::slot::{seal_slot, Sender, SlotMessage};
use protocol::wire::{
    ClientRequest, ClientResponse, OutputSlot, OutputVouch, Register, Round, RoundOutput,
    SignedOutput, StatusInfo, Submission,
};
use protocol::Params;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::local::MemStore;
use super::{Answer, ClientCore, Command, CoreConfig, Failure, RequestId, Token, UserRequest};
use crate::delivery::Delivery;
use crate::event::Event;

/// Slot size of the test cluster: 53 body bytes per slot.
pub const SLOT_BYTES: usize = 200;
/// A fixed clock (ms); tests move it by hand.
pub const T0: u64 = 1_000_000;

/// Three servers (f = 1, so two vouches accept), their keys, and the round parameters.
pub struct Cluster {
    pub servers: Vec<Identity>,
    pub params: Params,
    pub rng: StdRng,
}

impl Cluster {
    pub fn new(slots: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(7);
        let servers = (0..3).map(|_| Identity::generate(&mut rng)).collect();
        let params = Params::new(3, 1, slots, SLOT_BYTES, 1, 100, Admission::Open).unwrap();
        Self {
            servers,
            params,
            rng,
        }
    }

    pub fn identity(&mut self) -> Identity {
        Identity::generate(&mut self.rng)
    }

    pub fn config(&self, identity: Identity) -> CoreConfig {
        CoreConfig {
            identity,
            params: self.params.clone(),
            round_ms: 1000,
            server_dh: self.servers.iter().map(|s| s.public().x25519()).collect(),
            server_sign: self.servers.iter().map(|s| s.public().sign).collect(),
        }
    }

    /// A client core over `store`, with a seeded rng.
    pub fn sim(&self, identity: Identity, store: MemStore, seed: u64) -> Sim {
        let core = ClientCore::new(self.config(identity), store, StdRng::seed_from_u64(seed))
            .expect("memory store");
        let mut s = Sim {
            core,
            reqs: Vec::new(),
            events: Vec::new(),
            answers: Vec::new(),
            now: T0,
            next_token: 0,
            share_groups: Default::default(),
        };
        s.pump();
        s
    }

    /// An output of `round` with one slot holding `data` (none if `data` is empty).
    pub fn output(&self, round: Round, data: Vec<u8>) -> RoundOutput {
        let slots = if data.is_empty() {
            Vec::new()
        } else {
            vec![(0, data)]
        };
        self.output_slots(round, slots)
    }

    /// An output of `round` with these slots: (a number standing for the footprint, bytes).
    fn output_slots(&self, round: Round, slots: Vec<(u64, Vec<u8>)>) -> RoundOutput {
        let mut out = RoundOutput::empty(round, 3);
        out.slots = BoundedVec::new(
            slots
                .into_iter()
                .map(|(i, data)| OutputSlot {
                    footprint: ((i + 1) << 20) | data.len() as u64,
                    data: Bytes::new(data).unwrap(),
                })
                .collect(),
        )
        .unwrap();
        out
    }

    /// What the servers publish for `round` from these submissions, its message region
    /// laid out from `laid_out` (the footprints of round − 2).
    pub fn round_output(
        &self,
        round: Round,
        subs: &[&Submission],
        laid_out: &[u64],
    ) -> RoundOutput {
        let mut sum = vec![0u8; self.params.share_bytes()];
        for sub in subs {
            protocol::field::add_encoded(&mut sum, &self.vector_of(sub)).unwrap();
        }
        protocol::vector::output(&self.params, round, subs.len() as u32, &sum, laid_out)
    }

    /// Server `i`'s signed statement about `output`.
    pub fn vouch(&self, output: &RoundOutput, i: u16) -> SignedOutput {
        let hash = output.hash();
        let sig =
            self.servers[usize::from(i)].sign(&OutputVouch::signed_bytes(output.round, &hash));
        SignedOutput {
            output: output.clone(),
            vouch: OutputVouch {
                round: output.round,
                output_hash: Fixed(hash),
                server: i,
                signature: Fixed(sig),
            },
        }
    }

    /// The vector a submission carries (encoded elements), as servers 0 and 1 together
    /// reconstruct it.
    pub fn vector_of(&self, sub: &Submission) -> Vec<u8> {
        let opened: Vec<(u8, Vec<u8>)> = (0..2usize)
            .map(|i| {
                let share = protocol::seal::open_share(
                    &sub.shares.as_slice()[i],
                    sub.round,
                    &sub.client,
                    i as u16,
                    self.servers[i].x25519_secret(),
                )
                .unwrap();
                let share = protocol::submission::share_from_opened(
                    &self.params,
                    sub.round,
                    &sub.client,
                    i,
                    &share,
                )
                .unwrap();
                (protocol::shamir::x_of(i), share.to_vec())
            })
            .collect();
        let refs: Vec<(u8, &[u8])> = opened.iter().map(|(x, v)| (*x, v.as_slice())).collect();
        protocol::shamir::interpolate_at(&refs, 0).unwrap().to_vec()
    }

    /// Slot bytes sealed by `from` to `to` (fragment `index` of `count`).
    #[allow(clippy::too_many_arguments)]
    pub fn slot(
        &mut self,
        from: &Identity,
        to: &Identity,
        seq: u32,
        index: u16,
        count: u16,
        body: &[u8],
        timestamp_ms: u64,
    ) -> Vec<u8> {
        let msg = SlotMessage {
            sender: Sender::Identity(from.public().dh),
            conversation: [9; 16],
            seq,
            timestamp_ms,
            fragment_index: index,
            fragment_count: count,
            body: body.to_vec(),
        };
        seal_slot(
            &msg,
            from.x25519_secret(),
            &to.public().x25519(),
            SLOT_BYTES,
            &mut self.rng,
        )
        .unwrap()
    }

    /// An output with these slots filled (slot number, bytes).
    pub fn output_with(&self, round: Round, slots: &[(usize, Vec<u8>)]) -> RoundOutput {
        self.output_slots(
            round,
            slots.iter().map(|(i, b)| (*i as u64, b.clone())).collect(),
        )
    }
}

/// A status answer.
pub fn status(open_round: Round, last_revealed: Option<Round>, void: &[Round]) -> ClientResponse {
    ClientResponse::Status(StatusInfo {
        server: 0,
        leader: Some(0),
        open_round,
        last_revealed,
        last_participants: 3,
        last_closed: None,
        recent_void: BoundedVec::new(void.to_vec()).unwrap(),
    })
}

/// `who`'s self-signed registration of `name`.
pub fn register(who: &Identity, name: &str) -> Register {
    Register::new(name, who).unwrap()
}

/// A server's directory page: `dir` from position `from` on.
pub fn directory_page(dir: &[Register], from: u64) -> ClientResponse {
    let start = (from as usize).min(dir.len());
    let end = (start + protocol::limits::MAX_DIRECTORY_PAGE).min(dir.len());
    ClientResponse::Directory {
        entries: BoundedVec::new(dir[start..end].to_vec()).unwrap(),
        total: dir.len() as u64,
    }
}

/// A core and everything it asked for so far.
pub struct Sim {
    pub core: ClientCore<MemStore>,
    /// Requests not answered yet: (id, server, request).
    pub reqs: Vec<(RequestId, u16, ClientRequest)>,
    pub events: Vec<Event>,
    pub answers: Vec<(Token, Answer)>,
    pub now: u64,
    next_token: Token,
    /// The share requests of one submission, by the id `take_submit` returned for it:
    /// `reply` and `fail` answer them all alike.
    share_groups: std::collections::HashMap<RequestId, Vec<RequestId>>,
}

impl Sim {
    pub fn pump(&mut self) {
        while let Some(c) = self.core.poll_command() {
            match c {
                Command::Request {
                    id, server, req, ..
                } => self.reqs.push((id, server, req)),
                Command::Answer { token, answer } => self.answers.push((token, answer)),
            }
        }
        while let Some(e) = self.core.poll_event() {
            self.events.push(e);
        }
    }

    pub fn tick(&mut self) {
        self.core.handle_tick(self.now);
        self.pump();
    }

    pub fn user(&mut self, req: UserRequest) -> Token {
        self.next_token += 1;
        self.core.handle_user(self.next_token, req, self.now);
        self.pump();
        self.next_token
    }

    /// Remove and return the first request matching `pred`.
    pub fn take(
        &mut self,
        pred: impl Fn(&ClientRequest) -> bool,
    ) -> Option<(RequestId, u16, ClientRequest)> {
        let i = self.reqs.iter().position(|(_, _, r)| pred(r))?;
        Some(self.reqs.remove(i))
    }

    pub fn reply(&mut self, id: RequestId, resp: ClientResponse) {
        for i in self.share_groups.remove(&id).unwrap_or_else(|| vec![id]) {
            self.core.handle_response(i, Ok(resp.clone()), self.now);
        }
        self.pump();
    }

    pub fn fail(&mut self, id: RequestId, f: Failure) {
        for i in self.share_groups.remove(&id).unwrap_or_else(|| vec![id]) {
            self.core.handle_response(i, Err(f.clone()), self.now);
        }
        self.pump();
    }

    /// One tick whose status request is answered with `resp`.
    pub fn status(&mut self, resp: ClientResponse) {
        self.tick();
        let (id, _, _) = self
            .take(|r| matches!(r, ClientRequest::Status))
            .expect("a status request");
        self.reply(id, resp);
    }

    /// The pending submission, if any: every server's share of it taken, put back
    /// together. The id returned answers them all (`reply`, `fail`).
    pub fn take_submit(&mut self) -> Option<(RequestId, Submission)> {
        let (first, _, ClientRequest::Share(up)) =
            self.take(|r| matches!(r, ClientRequest::Share(_)))?
        else {
            return None;
        };
        let mut ids = vec![first];
        let mut ups = vec![up.clone()];
        while let Some((id, _, ClientRequest::Share(u))) =
            self.take(|r| matches!(r, ClientRequest::Share(u) if u.round == up.round))
        {
            ids.push(id);
            ups.push(u);
        }
        ups.sort_by_key(|u| u.server);
        let shares = ups.iter().map(|u| u.share.clone()).collect();
        let proofs = ups.iter().map(|u| u.proof.clone()).collect();
        self.share_groups.insert(first, ids);
        Some((
            first,
            Submission {
                round: up.round,
                client: up.client,
                shares: BoundedVec::new(shares).unwrap(),
                proofs: BoundedVec::new(proofs).unwrap(),
                signature: up.signature,
            },
        ))
    }

    /// Submissions: answer the one out with `Accepted` for its round; returns it.
    pub fn accept_submit(&mut self) -> Submission {
        let events = format!("{:?}", self.events.iter().rev().take(5).collect::<Vec<_>>());
        let (id, sub) = self
            .take_submit()
            .unwrap_or_else(|| panic!("no submission; last events: {events}"));
        self.reply(id, ClientResponse::Accepted { round: sub.round });
        sub
    }

    pub fn states(&self, id: u64) -> Vec<Delivery> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::State {
                    id: i, delivery, ..
                } if *i == id => Some(delivery.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn rounds(&self) -> Vec<Round> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Round { round, .. } => Some(*round),
                _ => None,
            })
            .collect()
    }

    pub fn messages(&self) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message { from, text, .. } => Some((from.clone(), text.clone())),
                _ => None,
            })
            .collect()
    }

    /// Offer an output with vouches from these servers.
    pub fn vouched(&mut self, c: &Cluster, output: &RoundOutput, servers: &[u16]) {
        for &i in servers {
            self.core.handle_signed_output(c.vouch(output, i), self.now);
        }
        self.pump();
    }

    /// A directory sync as the schedule runs it: the servers are up, the sync period
    /// passes, and every server answers every page from `dir`.
    pub fn sync(&mut self, dir: &[Register]) {
        for i in 0..3 {
            self.core.handle_server_up(i);
        }
        self.now += crate::core::directory::SYNC_PERIOD_MS;
        self.tick();
        self.answer_directory(|_| Some(dir));
    }

    /// Answer every directory page asked (and those asked meanwhile) from what `dir`
    /// gives for the server (`None`: that server fails).
    pub fn answer_directory<'a>(&mut self, dir: impl Fn(u16) -> Option<&'a [Register]>) {
        while let Some((id, server, req)) =
            self.take(|r| matches!(r, ClientRequest::Directory { .. }))
        {
            let ClientRequest::Directory { from } = req else {
                unreachable!()
            };
            match dir(server) {
                Some(d) => self.reply(id, directory_page(d, from)),
                None => self.fail(id, Failure::TimedOut),
            }
        }
    }

    /// Requests other than status, submissions and directory pages asked so far.
    pub fn unscheduled_requests(&self) -> Vec<&ClientRequest> {
        self.reqs
            .iter()
            .map(|(_, _, r)| r)
            .filter(|r| {
                !matches!(
                    r,
                    ClientRequest::Status
                        | ClientRequest::Share(_)
                        | ClientRequest::Directory { .. }
                )
            })
            .collect()
    }

    /// Queue a message to a `key:` address (no directory lookup); returns its id.
    pub fn send_to_key(&mut self, to: &Identity, text: &str) -> u64 {
        let t = self.user(UserRequest::Send {
            to: format!("key:{}", hex::encode(to.public().dh)),
            text: text.into(),
            anonymous: false,
        });
        match self.answers.iter().find(|(tok, _)| *tok == t) {
            Some((_, Answer::Send(Ok(id)))) => *id,
            other => panic!("not queued: {other:?}"),
        }
    }
}

/// Plays the servers round by round: each round's output is what its submissions add
/// up to, its message region laid out from the reservations of the round before.
#[derive(Default)]
pub struct Rounds {
    reservations: std::collections::BTreeMap<Round, Vec<u64>>,
}

impl Rounds {
    /// What round `r` publishes from `subs`.
    pub fn publish(&mut self, c: &Cluster, r: Round, subs: &[&Submission]) -> RoundOutput {
        let laid_out = self
            .reservations
            .get(&r.saturating_sub(protocol::vector::RESERVE_AHEAD))
            .cloned()
            .unwrap_or_default();
        let out = c.round_output(r, subs, &laid_out);
        self.reservations
            .insert(r, out.reservations.as_slice().to_vec());
        out
    }

    /// Open round `r` for `sim`, take its submission, and publish the output (changed
    /// by `edit` first) vouched by servers 0 and 1.
    pub fn play_with(
        &mut self,
        c: &Cluster,
        sim: &mut Sim,
        r: Round,
        edit: impl FnOnce(&mut RoundOutput),
    ) -> (Submission, RoundOutput) {
        sim.status(status(r, None, &[]));
        let sub = sim.accept_submit();
        assert_eq!(sub.round, r);
        let mut out = self.publish(c, r, &[&sub]);
        edit(&mut out);
        sim.vouched(c, &out, &[0, 1]);
        (sub, out)
    }

    /// [`Rounds::play_with`], the output unchanged.
    pub fn play(&mut self, c: &Cluster, sim: &mut Sim, r: Round) -> (Submission, RoundOutput) {
        self.play_with(c, sim, r, |_| {})
    }
}
