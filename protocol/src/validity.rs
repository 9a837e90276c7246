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
//! The round's vector `x` (`3R` cell elements, then the message region grouped into the
//! round's laid-out slots, the unused tail one more group) is first reduced, with joint
//! randomness `ρ, ρ′`, to a linear sketch ([`Validity::sketch`]): per group
//! `w_s = Σ_ℓ ρ^ℓ x_{s,ℓ}`, per cell `u_c = c + ρ′a + ρ′²b`, and `K = Σc`, `X₁ = Σa`,
//! `X₂ = Σb`. The sketch is linear, so a share's sketch is a share of the vector's, and
//! it is a few hundred elements where the vector is thousands: the FLP's input is the
//! sketch. Two nonzero groups (cells) give two nonzero `w` (`u`) but for a chance of
//! about `L/p` over `ρ`, which the client learns only after its shares are fixed. The
//! circuit over the sketch, with joint randomness `τ, τ′`:
//! - `A = Σ τ^s w_s`, `B = Σ w_s`, `C = Σ τ^{2s} w_s`; `A² − B·C =
//!   −½ Σ_{j,k} w_j w_k (τ^j − τ^k)²` is zero when at most one `w_s` is nonzero and
//!   otherwise a nonzero polynomial in `τ`;
//! - the same test on the `u_c` with `τ′`; and `X₁² − X₂`, `K² − K`, `K·X₁ − X₁` (so the
//!   one cell is `(0, 0, 0)` or `(1, a, a²)`).
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
/// Joint randomness per proof: `ρ, τ, ρ′, τ′` (the sketch's, then the circuit's).
pub const JOINT_LEN: usize = 4;
/// Of which the circuit's: `τ, τ′`.
const CIRCUIT_JOINT_LEN: usize = 2;
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
    /// Elements of the round's vector.
    vector_len: usize,
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
            vector_len: input_len,
        }
    }

    /// A circuit to decide verifiers with: deciding depends only on the gadget, never on
    /// the layout.
    pub fn decider() -> Self {
        Self {
            cells: 0,
            groups: Vec::new(),
            vector_len: 0,
        }
    }

    /// The message groups (element ranges of the vector), for tests.
    pub fn groups(&self) -> &[(usize, usize)] {
        &self.groups
    }

    /// Elements of the sketch: one per group, one per cell, then `K, X₁, X₂`.
    pub fn sketch_len(&self) -> usize {
        self.groups.len() + self.cells + 3
    }

    /// The linear sketch of an encoded vector (or a share of one) under each proof's
    /// `ρ, ρ′` (`joint`), what the proofs are about, and the vector as a polynomial at
    /// each of `points` (Horner over every element in order: the consistency tags). One
    /// pass of integer multiply-adds, the independent chains side by side so that the
    /// processor overlaps them.
    pub fn sketch(
        &self,
        encoded: &[u8],
        joint: &[Vec<Fe>],
        points: &[Fe; TAGS],
    ) -> Result<(Vec<Vec<Fe>>, [u64; TAGS]), FlpError> {
        if joint.len() != PROOFS || joint.iter().any(|j| j.len() != JOINT_LEN) {
            return Err(FlpError::InvalidParameter(format!(
                "joint randomness for {} proofs, expected {PROOFS} of {JOINT_LEN}",
                joint.len()
            )));
        }
        let rho: [u64; PROOFS] = [u64::from(joint[0][0]), u64::from(joint[1][0])];
        let rho2: [u64; PROOFS] = [u64::from(joint[0][2]), u64::from(joint[1][2])];
        let g: [u64; TAGS] = [u64::from(points[0]), u64::from(points[1])];
        let ma = field::mul_add_canonical;
        let mut tags = [0u64; TAGS];
        let mut out: Vec<Vec<Fe>> = (0..PROOFS)
            .map(|_| Vec::with_capacity(self.sketch_len()))
            .collect();
        let words = |from: usize, to: usize| {
            let bytes = encoded
                .get(from * ELEMENT_BYTES..to * ELEMENT_BYTES)
                .unwrap_or_default();
            bytes.chunks_exact(ELEMENT_BYTES).map(|w| {
                let mut word = [0u8; ELEMENT_BYTES];
                word.copy_from_slice(w);
                let w = u64::from_le_bytes(word);
                w.checked_sub(field::MODULUS).unwrap_or(w)
            })
        };
        let mut cursor = 3 * self.cells;
        for &(from, to) in &self.groups {
            // Elements in no group (none in a layout built here) count in the tags alone.
            for x in words(cursor, from) {
                tags = [ma(tags[0], g[0], x), ma(tags[1], g[1], x)];
            }
            let mut group = [0u64; PROOFS];
            for x in words(from, to) {
                tags = [ma(tags[0], g[0], x), ma(tags[1], g[1], x)];
                group = [ma(group[0], rho[0], x), ma(group[1], rho[1], x)];
            }
            for (o, w) in out.iter_mut().zip(group) {
                o.push(fe(w));
            }
            cursor = to;
        }
        for x in words(cursor, self.vector_len) {
            tags = [ma(tags[0], g[0], x), ma(tags[1], g[1], x)];
        }
        // The cells come first in the vector: their tag terms are the polynomial's top
        // coefficients, added as the vector's head times point^(message length).
        let mut head = [0u64; TAGS];
        let (mut k, mut x1, mut x2) = (0, 0, 0);
        for c in 0..self.cells {
            let (c0, a, b) = (
                field::word(encoded, 3 * c),
                field::word(encoded, 3 * c + 1),
                field::word(encoded, 3 * c + 2),
            );
            for (o, r2) in out.iter_mut().zip(rho2) {
                o.push(fe(ma(ma(b, r2, a), r2, c0)));
            }
            for (h, gt) in head.iter_mut().zip(g) {
                *h = ma(ma(ma(*h, gt, c0), gt, a), gt, b);
            }
            k = field::add_canonical(k, c0);
            x1 = field::add_canonical(x1, a);
            x2 = field::add_canonical(x2, b);
        }
        for o in out.iter_mut() {
            o.extend([fe(k), fe(x1), fe(x2)]);
        }
        let shift = (self.vector_len - 3 * self.cells) as u64;
        for (t, (h, gt)) in tags.iter_mut().zip(head.into_iter().zip(g)) {
            let scale = u64::from(fe(gt).pow(shift));
            *t = ma(h, scale, *t);
        }
        Ok((out, tags))
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
        let (tau, tau2) = (joint_rand[0], joint_rand[1]);
        let g = gadgets
            .first_mut()
            .ok_or_else(|| FlpError::Valid("no gadget".into()))?;
        let groups = self.groups.len();
        let (w, rest) = input.split_at(groups);
        let (u, sums) = rest.split_at(self.cells);
        let (a, b, c) = moments(w.iter().copied(), tau);
        let slots = g.call(&[a, a])? - g.call(&[b, c])?;
        let (a, b, c) = moments(u.iter().copied(), tau2);
        let one_cell = g.call(&[a, a])? - g.call(&[b, c])?;
        let (k, x1, x2) = (sums[0], sums[1], sums[2]);
        let square = g.call(&[x1, x1])? - x2;
        let count = g.call(&[k, k])? - k;
        let empty = g.call(&[k, x1])? - x1;
        Ok(vec![slots, one_cell, square, count, empty])
    }

    fn input_len(&self) -> usize {
        self.sketch_len()
    }

    fn proof_len(&self) -> usize {
        PROOF_LEN
    }

    fn verifier_len(&self) -> usize {
        VERIFIER_LEN
    }

    fn joint_rand_len(&self) -> usize {
        CIRCUIT_JOINT_LEN
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
        self.sketch_len()
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
    if joint.len() != PROOFS || joint.iter().any(|j| j.len() != JOINT_LEN) {
        return Err(FlpError::Prove(format!(
            "joint randomness for {} proofs, expected {PROOFS} of {JOINT_LEN}",
            joint.len()
        )));
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(seed.as_mut());
    let masks = decode_elements(&field::expand_seed(&seed, TAGS + PROOFS * 2));
    let mut extra = Vec::with_capacity(EXTRA_ELEMENTS);
    extra.extend_from_slice(&masks[..TAGS]);
    let (sketches, _) = circuit.sketch(vector, joint, &[Fe::zero(); TAGS])?;
    for (k, (joint, sketch)) in joint.iter().zip(&sketches).enumerate() {
        let prove_rand = &masks[TAGS + 2 * k..TAGS + 2 * k + 2];
        extra.extend(circuit.prove(sketch, prove_rand, &[joint[1], joint[3]])?);
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
    if share.len() != circuit.vector_len * ELEMENT_BYTES {
        return Err(FlpError::Query(format!(
            "a share of {} bytes, expected {}",
            share.len(),
            circuit.vector_len * ELEMENT_BYTES
        )));
    }
    let extra = decode_elements(extra);
    if extra.len() != EXTRA_ELEMENTS {
        return Err(FlpError::Query(format!(
            "{} extra elements, expected {EXTRA_ELEMENTS}",
            extra.len()
        )));
    }
    let points = [challenge.points[0], challenge.points[1]];
    let (sketches, tags) = circuit.sketch(share, &challenge.joint, &points)?;
    let mut check = Vec::with_capacity(CHECK_ELEMENTS);
    for (k, (joint, sketch)) in challenge.joint.iter().zip(&sketches).enumerate() {
        let proof = &extra[TAGS + k * PROOF_LEN..TAGS + (k + 1) * PROOF_LEN];
        let circuit_joint = [joint[1], joint[3]];
        check.extend(circuit.query(sketch, proof, &challenge.query[k], &circuit_joint, 1)?);
    }
    for (t, (&point, vector_part)) in points.iter().zip(tags).enumerate() {
        // The tag covers the vector, then the proofs, as one polynomial at `point`.
        let point = u64::from(point);
        let over_all = extra[TAGS..].iter().fold(vector_part, |acc, &e| {
            field::mul_add_canonical(acc, point, u64::from(e))
        });
        check.push(extra[t] + fe(over_all));
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
