//! Validity proofs against jamming: a client proves, without showing its vector, that
//! the vector has at most one nonzero message slot and at most one well-formed
//! reservation `(1, a, a²)`; servers check the proof on their shares alone.
//!
//! The proof is a fully linear proof (Boneh, Boyle, Corrigan-Gibbs, Gilboa and Ishai,
//! CRYPTO 2019) through `prio::flp`: [`Validity`] is the circuit, a `prio::flp::Type`.
//! `query` is linear in the input and the proof, so each server runs it on its Shamir
//! share (with `num_shares = 1`: the Lagrange weights sum to one, so constants count once
//! — and this circuit has none) and gets a Shamir share of the verifier; any `t + 1`
//! verifier shares interpolate the verifier, which `decide` checks. No server multiplies
//! with another, so the check works with `f` servers down.
//!
//! The circuit over the input `x` (the round's vector: `3R` cell elements, then the
//! message region grouped into the round's laid-out slots, the unused tail one more
//! group), with joint randomness `ρ, τ, ρ′, τ′`:
//! - message groups: `w_s = Σ_ℓ ρ^ℓ x_{s,ℓ}`; `A = Σ τ^s w_s`, `B = Σ w_s`,
//!   `C = Σ τ^{2s} w_s`; `A² − B·C = −½ Σ_{j,k} w_j w_k (τ^j − τ^k)²` is zero when at
//!   most one `w_s` is nonzero and otherwise a nonzero polynomial in `τ`;
//! - cells: the same test on `u_c = c + ρ′a + ρ′²b`; with `K = Σc`, `X₁ = Σa`,
//!   `X₂ = Σb`: `X₁² − X₂`, `K² − K`, `K·X₁ − X₁` (so the one cell is `(0, 0, 0)` or
//!   `(1, a, a²)`).
//!
//! Seven multiplications, one `Mul` gadget: a proof is [`PROOF_LEN`] elements and a
//! verifier [`VERIFIER_LEN`]. One proof's soundness error is about `2·max(S, R, L)/p`
//! (the polynomial tests) plus the FLP's own `~16/p`: near `2^-50` in Goldilocks, so a
//! client sends [`PROOFS`] = 2 independent proofs (independent joint and query
//! randomness): below `2^-100` per submission.
//!
//! Where the randomness comes from:
//! - joint randomness ([`joint_rand`]) is hashed from the round, the client and the
//!   digests of its sealed vector shares, so the client is bound to its vector before it
//!   learns it; the proof shares are sealed separately, after;
//! - query randomness and the consistency weights ([`ValidityKey`]) come from a 32-byte
//!   key that every server holds and no client does (written by `keygen` beside the
//!   server keys). A key, not a value committed per round in the log, because the query
//!   runs when a share arrives, off the round's critical path, and the log is read by
//!   anyone who is handed a snapshot.
//!
//! Consistency tags: each server also reports `z_i = μ_i + Σ_ℓ g^ℓ y_{i,ℓ}` for two secret
//! points `g` (per submission, from the key), over its share `y_i` of the vector and the
//! proofs, where `μ` (two of them) is a uniform mask the client shares with the proofs.
//! When more than `t + 1` servers report, the tags and the verifier shares must lie on one
//! polynomial of degree `t`; shares off one polynomial (a client that sent inconsistent
//! shares) are caught with error below `(V/p)²`. With exactly `t + 1` servers any shares
//! lie on one polynomial, and the vector they define is the one the proof was checked on.
//!
//! What the servers learn: a verifier share, the verifier (zero-knowledge: uniform wire
//! evaluations and a zero output for any valid vector) and `μ + ⟨g, y⟩` (uniform): the
//! same whether the client's slot is empty or used.

use prio::field::{Field64, FieldElement, FieldElementWithInteger};
use prio::flp::gadgets::Mul;
use prio::flp::{Flp, FlpError, Gadget, Type};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::bounded::Key32;
use crate::field::{self, fe, Fe, ELEMENT_BYTES, PACK};
use crate::params::Params;
use crate::wire::{ClientId, Round};

/// Independent proofs per submission.
pub const PROOFS: usize = 2;
/// Gadget calls: `A·A`, `B·C` for the slots and the cells, `X₁·X₁`, `K·K`, `K·X₁`.
const CALLS: usize = 7;
/// Circuit outputs (prio folds them into one with query randomness).
const OUTPUTS: usize = 5;
/// Joint randomness per proof: `ρ, τ, ρ′, τ′`.
pub const JOINT_LEN: usize = 4;
/// Query randomness per proof: one point for the gadget and one weight per output.
pub const QUERY_LEN: usize = 1 + OUTPUTS;
/// Wire polynomial length for [`CALLS`] calls.
const WIRE_LEN: usize = (1 + CALLS).next_power_of_two();
/// Elements of one proof: two wire seeds and the degree-2 gadget polynomial.
pub const PROOF_LEN: usize = 2 + 2 * (WIRE_LEN - 1) + 1;
/// Elements of one verifier: the folded output, two wire values, the gadget value.
pub const VERIFIER_LEN: usize = 1 + 2 + 1;
/// Consistency tags per submission.
pub const TAGS: usize = 2;
/// Elements a client shares beside its vector: the tags' masks, then the proofs.
pub const EXTRA_ELEMENTS: usize = TAGS + PROOFS * PROOF_LEN;
/// Elements of what each server reports per client: the verifier shares, then the tags.
pub const CHECK_ELEMENTS: usize = PROOFS * VERIFIER_LEN + TAGS;
/// Bytes of what each server reports per client.
pub const CHECK_BYTES: usize = CHECK_ELEMENTS * ELEMENT_BYTES;

/// The validity circuit of one round: the cells, and the message region grouped into
/// the round's laid-out slots (element ranges), the unused tail one more group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validity {
    cells: usize,
    groups: Vec<(usize, usize)>,
    input_len: usize,
}

impl Validity {
    /// The circuit of a round whose message region is laid out from `laid_out` (the
    /// footprints of the round before; none if it has no layout).
    pub fn for_round(params: &Params, laid_out: &[u64]) -> Self {
        let cells = params.reserve_cells as usize;
        let start = 3 * cells;
        let input_len = params.vector_elements();
        let mut groups = Vec::new();
        let mut next = start;
        for slot in crate::vector::layout(params, laid_out) {
            // Slots start on element boundaries ([`crate::reserve::layout`]); a group
            // never reaches back into the one before.
            let from = (start + slot.offset / PACK).max(next);
            let to = (start + (slot.offset + slot.len).div_ceil(PACK)).min(input_len);
            if from < to {
                groups.push((from, to));
                next = to;
            }
        }
        if next < input_len {
            groups.push((next, input_len));
        }
        Self {
            cells,
            groups,
            input_len,
        }
    }

    /// A circuit to decide verifiers with: deciding depends only on the gadget, never on
    /// the layout.
    pub fn decider() -> Self {
        Self {
            cells: 0,
            groups: Vec::new(),
            input_len: 0,
        }
    }

    /// The message groups (element ranges of the input), for tests.
    pub fn groups(&self) -> &[(usize, usize)] {
        &self.groups
    }
}

/// `(A² − B·C)` inputs for values `w_s`: `A = Σ τ^s w_s`, `B = Σ w_s`, `C = Σ τ^{2s} w_s`.
fn moments(values: impl Iterator<Item = Fe>, tau: Fe) -> (Fe, Fe, Fe) {
    let (mut a, mut b, mut c) = (Fe::zero(), Fe::zero(), Fe::zero());
    let mut power = Fe::one();
    for w in values {
        let pw = power * w;
        a += pw;
        b += w;
        c += power * pw;
        power *= tau;
    }
    (a, b, c)
}

/// `Σ_ℓ point^ℓ x_ℓ` (Horner, from the last element).
fn evaluate(xs: &[Fe], point: Fe) -> Fe {
    xs.iter().rev().fold(Fe::zero(), |acc, &x| acc * point + x)
}

impl Flp for Validity {
    type Field = Field64;

    fn gadget(&self) -> Vec<Box<dyn Gadget<Fe>>> {
        vec![Box::new(Mul::new(CALLS))]
    }

    fn num_gadgets(&self) -> usize {
        1
    }

    fn valid(
        &self,
        gadgets: &mut Vec<Box<dyn Gadget<Fe>>>,
        input: &[Fe],
        joint_rand: &[Fe],
        _num_shares: usize,
    ) -> Result<Vec<Fe>, FlpError> {
        self.valid_call_check(input, joint_rand)?;
        let (rho, tau, rho2, tau2) = (joint_rand[0], joint_rand[1], joint_rand[2], joint_rand[3]);
        let g = gadgets
            .first_mut()
            .ok_or_else(|| FlpError::Valid("no gadget".into()))?;
        let (a, b, c) = moments(
            self.groups
                .iter()
                .map(|&(from, to)| evaluate(&input[from..to], rho)),
            tau,
        );
        let slots = g.call(&[a, a])? - g.call(&[b, c])?;
        let cells = &input[..3 * self.cells];
        let (a, b, c) = moments(
            cells
                .chunks_exact(3)
                .map(|cell| cell[0] + rho2 * (cell[1] + rho2 * cell[2])),
            tau2,
        );
        let one_cell = g.call(&[a, a])? - g.call(&[b, c])?;
        let (mut k, mut x1, mut x2) = (Fe::zero(), Fe::zero(), Fe::zero());
        for cell in cells.chunks_exact(3) {
            k += cell[0];
            x1 += cell[1];
            x2 += cell[2];
        }
        let square = g.call(&[x1, x1])? - x2;
        let count = g.call(&[k, k])? - k;
        let empty = g.call(&[k, x1])? - x1;
        Ok(vec![slots, one_cell, square, count, empty])
    }

    fn input_len(&self) -> usize {
        self.input_len
    }

    fn proof_len(&self) -> usize {
        PROOF_LEN
    }

    fn verifier_len(&self) -> usize {
        VERIFIER_LEN
    }

    fn joint_rand_len(&self) -> usize {
        JOINT_LEN
    }

    fn eval_output_len(&self) -> usize {
        OUTPUTS
    }

    fn prove_rand_len(&self) -> usize {
        2
    }
}

impl Type for Validity {
    type Measurement = ();
    type AggregateResult = ();

    fn encode_measurement(&self, _: &()) -> Result<Vec<Fe>, FlpError> {
        Err(FlpError::Encode(
            "a round's vector is built by crate::vector".into(),
        ))
    }

    fn truncate(&self, input: Vec<Fe>) -> Result<Vec<Fe>, FlpError> {
        Ok(input)
    }

    fn decode_result(&self, _: &[Fe], _: usize) -> Result<(), FlpError> {
        Err(FlpError::Decode(
            "round sums are decoded by crate::vector".into(),
        ))
    }

    fn output_len(&self) -> usize {
        self.input_len
    }
}

/// `count` field elements drawn from SHA-256 of `parts` (through the seed expansion).
fn derive(parts: &[&[u8]], count: usize) -> Vec<Fe> {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let seed: Zeroizing<[u8; 32]> = Zeroizing::new(h.finalize().into());
    let bytes = field::expand_seed(&seed, count);
    (0..count).map(|j| field::element(&bytes, j)).collect()
}

fn digest_bytes(digests: &[Key32]) -> Vec<u8> {
    digests.iter().flat_map(|d| d.0).collect()
}

/// The joint randomness of each proof: hashed from the round, the client and the
/// digests of its sealed vector shares (public to every server it uploads to).
pub fn joint_rand(round: Round, client: &ClientId, digests: &[Key32]) -> Vec<Vec<Fe>> {
    let all = derive(
        &[
            b"chorus/validity/joint/v1",
            &round.to_le_bytes(),
            &client.0,
            &digest_bytes(digests),
        ],
        PROOFS * JOINT_LEN,
    );
    all.chunks(JOINT_LEN).map(<[Fe]>::to_vec).collect()
}

/// The key only servers hold: query randomness and consistency points come from it.
pub struct ValidityKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for ValidityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ValidityKey(32 bytes)")
    }
}

/// What a server derives for one submission from the key: the query randomness of each
/// proof and the consistency points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    joint: Vec<Vec<Fe>>,
    query: Vec<Vec<Fe>>,
    points: Vec<Fe>,
}

impl ValidityKey {
    /// From its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A fresh random key.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(k.as_mut());
        Self(k)
    }

    /// Its bytes (to write the key file).
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The randomness server checks of `client`'s submission to `round` use.
    pub fn challenge(&self, round: Round, client: &ClientId, digests: &[Key32]) -> Challenge {
        let all = derive(
            &[
                b"chorus/validity/query/v1",
                self.0.as_ref(),
                &round.to_le_bytes(),
                &client.0,
                &digest_bytes(digests),
            ],
            PROOFS * QUERY_LEN + TAGS,
        );
        let (query, points) = all.split_at(PROOFS * QUERY_LEN);
        Challenge {
            joint: joint_rand(round, client, digests),
            query: query.chunks(QUERY_LEN).map(<[Fe]>::to_vec).collect(),
            points: points.to_vec(),
        }
    }
}

fn decode_elements(encoded: &[u8]) -> Vec<Fe> {
    encoded
        .chunks_exact(ELEMENT_BYTES)
        .map(|w| {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            fe(u64::from_le_bytes(word))
        })
        .collect()
}

fn encode_elements(values: &[Fe]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![0u8; values.len() * ELEMENT_BYTES]);
    for (j, v) in values.iter().enumerate() {
        field::put(&mut out, j, *v);
    }
    out
}

/// The client's side: what it shares beside its vector (`vector`: encoded elements),
/// encoded — [`TAGS`] random masks, then [`PROOFS`] proofs under `joint`
/// ([`joint_rand`] of its sealed vector shares).
pub fn prove<R: RngCore + CryptoRng>(
    circuit: &Validity,
    vector: &[u8],
    joint: &[Vec<Fe>],
    rng: &mut R,
) -> Result<Zeroizing<Vec<u8>>, FlpError> {
    let input = decode_elements(vector);
    let mut extra = Vec::with_capacity(EXTRA_ELEMENTS);
    let mut random = || {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        seed
    };
    let seed = random();
    let masks = field::expand_seed(&seed, TAGS + PROOFS * 2);
    let masks = decode_elements(&masks);
    extra.extend_from_slice(&masks[..TAGS]);
    for (k, joint) in joint.iter().enumerate().take(PROOFS) {
        let prove_rand = &masks[TAGS + 2 * k..TAGS + 2 * k + 2];
        extra.extend(circuit.prove(&input, prove_rand, joint)?);
    }
    if extra.len() != EXTRA_ELEMENTS {
        return Err(FlpError::Prove(format!(
            "{} joint randomness vectors for {PROOFS} proofs",
            joint.len()
        )));
    }
    Ok(encode_elements(&extra))
}

/// One server's check of its shares: `share` of the vector and `extra` (masks and
/// proofs), both encoded. Returns its verifier shares and tags, encoded
/// ([`CHECK_BYTES`]); an error means the shares are not the circuit's size.
pub fn query(
    circuit: &Validity,
    share: &[u8],
    extra: &[u8],
    challenge: &Challenge,
) -> Result<[u8; CHECK_BYTES], FlpError> {
    let input = decode_elements(share);
    let extra = decode_elements(extra);
    if extra.len() != EXTRA_ELEMENTS {
        return Err(FlpError::Query(format!(
            "{} extra elements, expected {EXTRA_ELEMENTS}",
            extra.len()
        )));
    }
    let mut check = Vec::with_capacity(CHECK_ELEMENTS);
    for k in 0..PROOFS {
        let proof = &extra[TAGS + k * PROOF_LEN..TAGS + (k + 1) * PROOF_LEN];
        check.extend(circuit.query(&input, proof, &challenge.query[k], &challenge.joint[k], 1)?);
    }
    for (t, &point) in challenge.points.iter().enumerate() {
        // The tag covers the vector and the proofs: x^0.. over the vector, then on.
        let over_vector = evaluate(&input, point);
        let shift = point.pow(input.len() as u64);
        let over_proofs = evaluate(&extra[TAGS..], point);
        check.push(extra[t] + over_vector + shift * over_proofs);
    }
    let mut out = [0u8; CHECK_BYTES];
    out.copy_from_slice(&encode_elements(&check));
    Ok(out)
}

/// What the servers' checks of one client say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every proof holds and the checks lie on one polynomial.
    Valid,
    /// A proof does not hold: the vector is not well formed.
    BadProof,
    /// The checks of more than `t + 1` servers do not lie on one polynomial of degree
    /// `t`: the client sent shares of different vectors.
    Inconsistent,
}

/// Decide from the servers' checks `(server, check)` (distinct servers, at least
/// `threshold + 1`): interpolate the verifiers from the first `t + 1`, decide each
/// proof, and check the others lie on the same polynomial.
pub fn decide(checks: &[(usize, &[u8; CHECK_BYTES])], threshold: usize) -> Verdict {
    let needed = threshold + 1;
    if checks.len() < needed {
        return Verdict::BadProof;
    }
    let basis: Vec<(u8, &[u8])> = checks[..needed]
        .iter()
        .map(|(s, c)| (crate::shamir::x_of(*s), &c[..]))
        .collect();
    for &(server, check) in &checks[needed..] {
        match crate::shamir::interpolate_at(&basis, crate::shamir::x_of(server)) {
            Ok(predicted) if predicted.as_slice() == &check[..] => {}
            _ => return Verdict::Inconsistent,
        }
    }
    let Ok(secret) = crate::shamir::interpolate_at(&basis, 0) else {
        return Verdict::BadProof;
    };
    let values = decode_elements(&secret);
    let decider = Validity::decider();
    let holds = values
        .chunks(VERIFIER_LEN)
        .take(PROOFS)
        .all(|v| decider.decide(v).unwrap_or(false));
    if holds {
        Verdict::Valid
    } else {
        Verdict::BadProof
    }
}

#[cfg(test)]
#[path = "validity_tests.rs"]
mod tests;
