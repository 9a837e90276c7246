//! Jamming: what a client that wants to garble rounds can send, class by class, and the
//! metric that must count it. The abuse run sends each class among honest chat; the
//! load generator's `--jammers` makes some of its clients send one class every round.
//!
//! Every class is signed and sent to every server like an honest submission; only its
//! contents are wrong. A server refuses what it can tell alone (a share that does not
//! open); the rest are left out of the round when it is decided, by reason, and their
//! senders strike towards a cooling-off period.

use protocol::bounded::{BoundedVec, Bytes, Fixed};
use protocol::field::MODULUS;
use protocol::reserve::{footprint, Slot};
use protocol::seal::Sealer;
use protocol::submission::{
    build_submission_sealed, build_submission_with_bad_proof, is_seed_server, BadProof,
};
use protocol::vector::{layout, Vector};
use protocol::wire::{Round, Submission};
use protocol::Params;
use rand::Rng;
use rand_core::CryptoRng;

/// A jamming class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Jam {
    /// Random bytes over the whole vector (every slot and cell).
    RandomVector,
    /// Two message slots written.
    TwoSlots,
    /// A reservation cell `(1, a, b)` with `b ≠ a²`.
    MalformedReservation,
    /// One server's share sealed so that it does not open.
    UnopenableShare,
    /// An honest vector with random elements where the proofs should be, shared and
    /// sealed like honest proofs.
    BadProof,
    /// One server given a share of another vector.
    InconsistentShares,
    /// A proof made for the previous round's challenge.
    ReplayedProof,
}

impl Jam {
    /// Every class.
    pub const ALL: [Jam; 7] = [
        Jam::RandomVector,
        Jam::TwoSlots,
        Jam::MalformedReservation,
        Jam::UnopenableShare,
        Jam::BadProof,
        Jam::InconsistentShares,
        Jam::ReplayedProof,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::RandomVector => "jam: random vector",
            Self::TwoSlots => "jam: two message slots",
            Self::MalformedReservation => "jam: malformed reservation",
            Self::UnopenableShare => "jam: share that does not open",
            Self::BadProof => "jam: bad proof",
            Self::InconsistentShares => "jam: inconsistent shares",
            Self::ReplayedProof => "jam: proof from another round",
        }
    }

    /// The metric (family, reason) that counts it on every node.
    pub fn metric(self) -> (&'static str, &'static str) {
        const EXCLUDED: &str = "chorus_clients_excluded";
        match self {
            Self::UnopenableShare => ("chorus_commands_rejected_total", "share_does_not_open"),
            Self::InconsistentShares => (EXCLUDED, "inconsistent"),
            _ => (EXCLUDED, "bad_proof"),
        }
    }

    /// Build this class's submission to `round`, laid out from `footprints`, signed by
    /// `identity` and sealed with `sealer` (which must not seal for `round` again before
    /// the submission is sent).
    pub fn build<R: rand::RngCore + CryptoRng>(
        self,
        params: &Params,
        round: Round,
        footprints: &[u64],
        identity: &keys::Identity,
        sealer: &mut Sealer,
        rng: &mut R,
    ) -> anyhow::Result<Submission> {
        let slots = layout(params, footprints);
        let mut v = Vector::laid_out(params, footprints);
        let client = Fixed(identity.public().sign);
        // A server that gets a whole share (not a seed) from this client this round.
        let target = (0..usize::from(params.servers))
            .find(|&i| !is_seed_server(params, round, &client, i))
            .ok_or_else(|| anyhow::anyhow!("every server is a seed server"))?;
        let honest_reservation = |v: &mut Vector, rng: &mut R| loop {
            if let Some(fp) = footprint(rng.gen(), 100) {
                let cell = rng.gen_range(0..v.cells());
                v.reserve(cell, fp);
                break;
            }
        };
        let mut sub = match self {
            Self::RandomVector => {
                let whole = Slot {
                    footprint: 0,
                    offset: 0,
                    len: params.message_bytes(),
                };
                let bytes: Vec<u8> = (0..whole.len).map(|_| rng.gen()).collect();
                v.write(&whole, &bytes);
                for cell in 0..v.cells() {
                    v.write_cell(cell, [0; 3].map(|_: u64| rng.gen::<u64>() % MODULUS));
                }
                build_submission_sealed(params, round, &v, identity, sealer, rng)?
            }
            Self::TwoSlots => {
                for slot in slots.iter().take(2) {
                    let bytes: Vec<u8> = (0..slot.len).map(|_| rng.gen()).collect();
                    v.write(slot, &bytes);
                }
                if slots.len() < 2 {
                    // Too few slots laid out to write two: two reservations instead.
                    honest_reservation(&mut v, rng);
                    honest_reservation(&mut v, rng);
                }
                build_submission_sealed(params, round, &v, identity, sealer, rng)?
            }
            Self::MalformedReservation => {
                let a = rng.gen::<u64>() % MODULUS;
                let square = u64::from(protocol::field::fe(a) * protocol::field::fe(a));
                let cell = rng.gen_range(0..v.cells());
                v.write_cell(cell, [1, a, (square + 1) % MODULUS]);
                build_submission_sealed(params, round, &v, identity, sealer, rng)?
            }
            Self::UnopenableShare => {
                honest_reservation(&mut v, rng);
                let mut sub = build_submission_sealed(params, round, &v, identity, sealer, rng)?;
                let mut shares = sub.shares.as_slice().to_vec();
                let mut ct = shares[target].ciphertext.as_slice().to_vec();
                ct[0] ^= 1;
                shares[target].ciphertext = Bytes::new(ct)?;
                sub.shares = BoundedVec::new(shares)?;
                sub
            }
            Self::BadProof => {
                honest_reservation(&mut v, rng);
                build_submission_with_bad_proof(
                    params,
                    round,
                    BadProof::Random,
                    &v,
                    identity,
                    sealer,
                    rng,
                )?
            }
            Self::InconsistentShares => {
                honest_reservation(&mut v, rng);
                let mut sub = build_submission_sealed(params, round, &v, identity, sealer, rng)?;
                let other = build_submission_sealed(
                    params,
                    round,
                    &Vector::laid_out(params, footprints),
                    identity,
                    sealer,
                    rng,
                )?;
                let mut shares = sub.shares.as_slice().to_vec();
                let mut proofs = sub.proofs.as_slice().to_vec();
                shares[target] = other.shares.as_slice()[target].clone();
                proofs[target] = other.proofs.as_slice()[target].clone();
                sub.shares = BoundedVec::new(shares)?;
                sub.proofs = BoundedVec::new(proofs)?;
                sub
            }
            Self::ReplayedProof => {
                honest_reservation(&mut v, rng);
                build_submission_with_bad_proof(
                    params,
                    round,
                    BadProof::ForRound(round.saturating_sub(1)),
                    &v,
                    identity,
                    sealer,
                    rng,
                )?
            }
        };
        // Signed as sent: the servers check the signature before anything else.
        let signed =
            Submission::signed_bytes(round, &sub.client, &sub.digests(), &sub.proof_digests());
        sub.signature = Fixed(identity.sign(&signed));
        Ok(sub)
    }
}
