//! The world the round-machine tests share: a cluster's servers as pure code (each
//! checks, opens and holds only its own shares), and clients building real submissions.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // test code

use std::collections::BTreeMap;

use keys::Identity;
use protocol::bounded::{Bytes, Fixed};
use protocol::reserve::Slot;
use protocol::round::check_upload;
use protocol::seal::OpenCache;
use protocol::shamir::add_into;
use protocol::slot::{seal_slot, Sender, SlotMessage};
use protocol::submission::{build_submission, open_upload};
use protocol::validity::{Validity, ValidityKey};
use protocol::vector::{layout, Vector};
use protocol::wire::{ClientId, Have, HeldEntry, Reveal, RoundOutput, Submission};
use protocol::{Admission, Command, Effect, Params, RoundMachine};
use rand::SeedableRng;
use x25519_dalek::PublicKey;

/// One server's held shares of one round: client → (its list entry, opened share).
type ServerHeld = BTreeMap<ClientId, (HeldEntry, Vec<u8>)>;

/// The servers' validity key in these tests.
pub const VALIDITY_KEY: [u8; 32] = [42; 32];

pub struct World {
    pub params: Params,
    pub servers: Vec<Identity>,
    server_keys: Vec<PublicKey>,
    rng: rand::rngs::StdRng,
    /// What each server holds: round → server → client → (digest, opened share).
    held: BTreeMap<u64, Vec<ServerHeld>>,
    /// The test layout: eight slots of 252 bytes, reserved by [`World::warm`].
    pub layout: Vec<Slot>,
    /// The footprints of the test layout.
    pub footprints: Vec<u64>,
    /// Rounds laid out as the test layout (the round [`World::warm`] opens).
    pub laid_out_rounds: Vec<u64>,
}

impl World {
    pub fn new(n: usize, t: usize, k: usize, admission: Admission) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let servers: Vec<Identity> = (0..n).map(|_| Identity::generate(&mut rng)).collect();
        let server_keys = servers.iter().map(|s| s.public().x25519()).collect();
        let params = Params::new(n, t, 8, 256, k, 4, admission)
            .and_then(|p| {
                p.with_server_keys(servers.iter().map(|s| Fixed(s.public().sign)).collect())
            })
            .expect("params");
        let footprints: Vec<u64> = (1..=8u64).map(|i| (i << 40) | 252).collect();
        let layout = layout(&params, &footprints);
        assert_eq!(layout.len(), 8);
        Self {
            params,
            servers,
            server_keys,
            rng,
            held: BTreeMap::new(),
            layout,
            footprints,
            laid_out_rounds: Vec::new(),
        }
    }

    /// Run a fresh machine through a round in which the test layout's footprints are
    /// reserved (by eight clients, one each) so that the round returned, now open, is
    /// laid out as [`World::layout`].
    pub fn warm(&mut self, m: &mut RoundMachine) -> u64 {
        let first = m.state().open_round;
        let k = (self.params.min_anonymity_set as usize).max(self.layout.len());
        let mut rng = rand::rngs::StdRng::seed_from_u64(first);
        let fillers: Vec<Identity> = (0..k).map(|_| Identity::generate(&mut rng)).collect();
        for r in [first] {
            for (j, who) in fillers.iter().enumerate() {
                let mut v = Vector::zero(&self.params);
                if let Some(slot) = self.layout.get(j) {
                    assert!(v.reserve(j, slot.footprint));
                }
                self.submit(r, who, &v);
            }
            assert!(matches!(
                self.close_and_decide(m, r),
                Effect::Decided { .. }
            ));
            let mut out = None;
            for rev in self.reveals(m, r) {
                if let Effect::Output(o) = m.apply(&rev) {
                    out = Some(o);
                }
            }
            let out = out.expect("a warm-up round outputs");
            assert_eq!(out.reservations.len(), self.layout.len());
        }
        let open = m.state().open_round;
        assert_eq!(open, first + protocol::vector::RESERVE_AHEAD);
        self.laid_out_rounds.push(open);
        open
    }

    /// A zero vector laid out as the test layout.
    pub fn laid_out_vector(&self) -> Vector {
        Vector::laid_out(&self.params, &self.footprints)
    }

    /// Slot `slot` of the test layout in `out`.
    pub fn slot<'a>(&self, out: &'a RoundOutput, slot: usize) -> Option<&'a [u8]> {
        out.slot(self.layout.get(slot)?.footprint)
    }

    /// A vector carrying `text` from `from` to `to` in slot `slot` of the test layout.
    pub fn vector(&mut self, from: &Identity, to: &Identity, slot: usize, text: &[u8]) -> Vector {
        let msg = SlotMessage {
            sender: Sender::Identity(from.public().dh),
            conversation: [1; 16],
            seq: 1,
            timestamp_ms: 0,
            fragment_index: 0,
            fragment_count: 1,
            body: text.to_vec(),
        };
        let sealed = seal_slot(
            &msg,
            from.x25519_secret(),
            &to.public().x25519(),
            self.layout[slot].len,
            &mut self.rng,
        )
        .expect("seal slot");
        let mut v = self.laid_out_vector();
        assert!(v.write(&self.layout[slot], &sealed));
        v
    }

    /// A submission whose proof does not hold (`bad`), otherwise well formed.
    pub fn build_bad(
        &mut self,
        round: u64,
        who: &Identity,
        vector: &Vector,
        bad: protocol::submission::BadProof,
    ) -> Submission {
        let mut sealer = protocol::seal::Sealer::new(&self.server_keys, &mut self.rng);
        let params = self.params.clone();
        protocol::submission::build_submission_with_bad_proof(
            &params,
            round,
            bad,
            vector,
            who,
            &mut sealer,
            &mut self.rng,
        )
        .expect("build")
    }

    pub fn build(&mut self, round: u64, who: &Identity, vector: &Vector) -> Submission {
        let keys = self.server_keys.clone();
        let params = self.params.clone();
        build_submission(&params, round, vector, who, &keys, &mut self.rng).expect("build")
    }

    /// Server `i` takes its upload of `sub`: checks it, opens its share and holds it.
    pub fn deliver(&mut self, sub: &Submission, i: usize) {
        let up = sub.upload_for(i as u16).expect("upload");
        check_upload(&self.params, &up, i as u16).expect("a valid upload");
        let key = OpenCache::new(self.servers[i].x25519_secret().clone())
            .share_key(&up.share, up.round, &up.client, i as u16)
            .expect("key");
        let (share, proof) = open_upload(&self.params, &key, &up, i).expect("a well-formed share");
        let laid_out: &[u64] = if self.laid_out_rounds.contains(&up.round) {
            &self.footprints
        } else {
            &[]
        };
        let circuit = Validity::for_round(&self.params, laid_out);
        let challenge = ValidityKey::from_bytes(VALIDITY_KEY).challenge(
            up.round,
            &up.client,
            up.digests.as_slice(),
        );
        let check = protocol::validity::query(&circuit, &share, &proof, &challenge).expect("query");
        let entry = HeldEntry {
            client: up.client,
            digest: up.submission_digest(),
            check: Fixed(check),
        };
        let n = self.servers.len();
        let held = self
            .held
            .entry(up.round)
            .or_insert_with(|| vec![BTreeMap::new(); n]);
        held[i].insert(up.client, (entry, share.to_vec()));
    }

    /// Build a submission and deliver it to every server.
    pub fn submit(&mut self, round: u64, who: &Identity, vector: &Vector) -> Submission {
        let sub = self.build(round, who, vector);
        for i in 0..self.servers.len() {
            self.deliver(&sub, i);
        }
        sub
    }

    /// Each server's signed list of what it holds for `round`.
    pub fn haves(&self, round: u64) -> Vec<Command> {
        (0..self.servers.len())
            .map(|i| {
                let list: Vec<HeldEntry> = self
                    .held
                    .get(&round)
                    .map(|h| h[i].values().map(|(e, _)| *e).collect())
                    .unwrap_or_default();
                Command::Have(Have::new(round, i as u16, list, &self.servers[i]).expect("fits"))
            })
            .collect()
    }

    /// Close `round` and apply every server's list: the round is decided.
    pub fn close_and_decide(&self, m: &mut RoundMachine, round: u64) -> Effect {
        assert_eq!(m.apply(&Command::Close { round }), Effect::Closed { round });
        let mut last = None;
        for have in self.haves(round) {
            last = Some(m.apply(&have));
        }
        last.expect("servers")
    }

    /// Each server's signed sum of its shares of the round's included clients (all it
    /// holds while the round is undecided).
    pub fn reveals(&self, machine: &RoundMachine, round: u64) -> Vec<Command> {
        let included: Option<Vec<ClientId>> = machine
            .state()
            .awaiting
            .get(&round)
            .and_then(|c| c.decided.as_ref())
            .map(|d| d.included.clone());
        (0..self.servers.len())
            .map(|i| {
                let mut sum = vec![0u8; self.params.share_bytes()];
                if let Some(held) = self.held.get(&round) {
                    for (client, (_, share)) in &held[i] {
                        if included.as_ref().is_none_or(|inc| inc.contains(client)) {
                            add_into(&mut sum, share).expect("add");
                        }
                    }
                }
                Command::Reveal(Reveal::new(
                    round,
                    i as u16,
                    Bytes::new(sum).expect("fits"),
                    &self.servers[i],
                ))
            })
            .collect()
    }
}

/// A warmed machine, its open round `r` with one submission from a fresh client
/// (carrying a message in slot 1), decided with every server serving, and `r`'s reveals.
pub fn closed_round(w: &mut World) -> (RoundMachine, u64, Vec<Command>) {
    let a = Identity::generate(&mut rand::rngs::StdRng::seed_from_u64(77));
    let mut m = RoundMachine::new(w.params.clone());
    let r = w.warm(&mut m);
    let bob = Identity::generate(&mut rand::rngs::StdRng::seed_from_u64(78));
    let v = w.vector(&a, &bob, 1, b"for bob");
    w.submit(r, &a, &v);
    assert!(matches!(
        w.close_and_decide(&mut m, r),
        Effect::Decided { .. }
    ));
    let reveals = w.reveals(&m, r);
    (m, r, reveals)
}
