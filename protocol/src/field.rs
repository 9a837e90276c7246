//! The Goldilocks prime field, p = 2^64 − 2^32 + 1 (`prio::field::Field64`), and how
//! byte vectors live in it.
//!
//! - A round's vector of `len` bytes is packed 7 bytes to an element (little-endian, the
//!   last element zero-padded), so every packed element is below 2^56 < p.
//! - Shares and sums travel and are stored as 8 little-endian bytes per element, always
//!   canonical (below p). [`decode`] refuses anything else, so a client that seals a
//!   non-canonical share to a server is caught when it is opened.
//! - A sum of two packed elements can exceed 2^56 (two messages in one place): [`unpack`]
//!   keeps the low 7 bytes, and the slot's own check tells the result is garbled.
//!
//! Why a prime field and not GF(2^8): validity proofs need an FFT-friendly prime field,
//! collision decoding of reservations needs squaring to be non-linear, and commitments
//! need one too (see `../shared/DESIGN.md`, "Round protocol v2").

use prio::field::{Field64, FieldElement};
use zeroize::Zeroizing;

/// Payload bytes carried by one element.
pub const PACK: usize = 7;
/// Bytes of one encoded element.
pub const ELEMENT_BYTES: usize = 8;

/// The field's modulus.
pub const MODULUS: u64 = 0xffff_ffff_0000_0001;

/// The field element type.
pub type Fe = Field64;

/// An encoded element was not below p, or the bytes are not whole elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FieldDecodeError {
    /// Not a multiple of [`ELEMENT_BYTES`].
    #[error("{0} bytes is not a whole number of 8-byte field elements")]
    Length(usize),
    /// Element `index` is p or larger.
    #[error("field element {index} is not below the modulus")]
    NotCanonical {
        /// Its position.
        index: usize,
    },
}

/// Elements needed for `len` payload bytes.
pub const fn elements_for(len: usize) -> usize {
    len.div_ceil(PACK)
}

/// Encoded bytes of the share (or sum) of a `len`-byte vector.
pub const fn share_bytes(len: usize) -> usize {
    elements_for(len) * ELEMENT_BYTES
}

/// The element with integer value `v` (reduced mod p).
pub fn fe(v: u64) -> Fe {
    Fe::from(v)
}

/// Element `j` of a payload: its bytes `7j..7j+7`, little-endian, zero-padded.
pub fn payload_element(bytes: &[u8], j: usize) -> Fe {
    let start = (j * PACK).min(bytes.len());
    let chunk = &bytes[start..(start + PACK).min(bytes.len())];
    let mut word = [0u8; 8];
    word[..chunk.len()].copy_from_slice(chunk);
    fe(u64::from_le_bytes(word))
}

/// Element `j` of an encoded vector already checked with [`check`] (a word that is not
/// canonical is reduced, never a panic).
pub fn element(encoded: &[u8], j: usize) -> Fe {
    let mut word = [0u8; 8];
    if let Some(w) = encoded.get(j * ELEMENT_BYTES..(j + 1) * ELEMENT_BYTES) {
        word.copy_from_slice(w);
    }
    fe(u64::from_le_bytes(word))
}

/// Write element `j` of an encoded vector.
pub fn put(encoded: &mut [u8], j: usize, value: Fe) {
    if let Some(w) = encoded.get_mut(j * ELEMENT_BYTES..(j + 1) * ELEMENT_BYTES) {
        w.copy_from_slice(&u64::from(value).to_le_bytes());
    }
}

/// Pack payload bytes, 7 to an element, and encode them.
pub fn pack(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    let elements = elements_for(bytes.len());
    let mut out = Zeroizing::new(vec![0u8; elements * ELEMENT_BYTES]);
    for j in 0..elements {
        put(&mut out, j, payload_element(bytes, j));
    }
    out
}

/// The first `len` payload bytes of an encoded vector of packed elements (the low 7
/// bytes of each).
pub fn unpack(encoded: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + PACK);
    for w in encoded.chunks_exact(ELEMENT_BYTES) {
        if out.len() >= len {
            break;
        }
        out.extend_from_slice(&w[..PACK]);
    }
    out.resize(len, 0);
    out
}

/// Check that `bytes` are whole, canonical elements.
pub fn check(bytes: &[u8]) -> Result<(), FieldDecodeError> {
    if bytes.len() % ELEMENT_BYTES != 0 {
        return Err(FieldDecodeError::Length(bytes.len()));
    }
    for (index, w) in bytes.chunks_exact(ELEMENT_BYTES).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        if u64::from_le_bytes(word) >= MODULUS {
            return Err(FieldDecodeError::NotCanonical { index });
        }
    }
    Ok(())
}

/// `acc += other`, element-wise, both encoded; `acc` is unchanged on error.
pub fn add_encoded(acc: &mut [u8], other: &[u8]) -> Result<(), FieldDecodeError> {
    if acc.len() != other.len() {
        return Err(FieldDecodeError::Length(other.len()));
    }
    check(acc)?;
    check(other)?;
    for (a, b) in acc
        .chunks_exact_mut(ELEMENT_BYTES)
        .zip(other.chunks_exact(ELEMENT_BYTES))
    {
        let mut wa = [0u8; 8];
        let mut wb = [0u8; 8];
        wa.copy_from_slice(a);
        wb.copy_from_slice(b);
        let sum = add_canonical(u64::from_le_bytes(wa), u64::from_le_bytes(wb));
        a.copy_from_slice(&sum.to_le_bytes());
    }
    Ok(())
}

/// `a·b + c mod p` for canonical `a, b, c < p`, on the integers themselves (the
/// validity sketches evaluate polynomials over whole shares this way: converting every
/// element into `Field64`'s Montgomery form cost as much as the products).
pub fn mul_add_canonical(a: u64, b: u64, c: u64) -> u64 {
    // a·b + c < p² + p < 2^128.
    reduce128(u128::from(a) * u128::from(b) + u128::from(c))
}

/// `x mod p` for any 128-bit `x`, using 2^64 ≡ 2^32 − 1 and 2^96 ≡ −1 (mod p).
fn reduce128(x: u128) -> u64 {
    const EPSILON: u64 = 0xffff_ffff; // 2^64 mod p
    let lo = x as u64;
    let hi = (x >> 64) as u64;
    let (hi_hi, hi_lo) = (hi >> 32, hi & EPSILON);
    // lo − hi_hi·2^96 ≡ lo + hi_hi (mod p)… as lo − hi_hi, borrowing p on underflow.
    let (mut t, borrow) = lo.overflowing_sub(hi_hi);
    if borrow {
        t = t.wrapping_sub(EPSILON); // + p ≡ − (2^64 − p) = − EPSILON, mod 2^64
    }
    // + hi_lo·2^64 ≡ hi_lo·EPSILON (below 2^64).
    let (mut r, carry) = t.overflowing_add(hi_lo * EPSILON);
    if carry {
        r = r.wrapping_add(EPSILON);
    }
    if r >= MODULUS {
        r - MODULUS
    } else {
        r
    }
}

/// A little-endian word of an encoded vector, reduced into the field (a share from the
/// network may hold any word; checked shares hold canonical ones).
pub fn word(encoded: &[u8], j: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(b) = encoded.get(j * ELEMENT_BYTES..(j + 1) * ELEMENT_BYTES) {
        w.copy_from_slice(b);
    }
    let w = u64::from_le_bytes(w);
    if w >= MODULUS {
        w - MODULUS
    } else {
        w
    }
}

/// `a + b mod p` for canonical `a, b < p`, on the integers themselves. Addition is the
/// same in `Field64`'s Montgomery form, but converting every element of every share in
/// and out of it was most of what summing a round cost a server.
pub fn add_canonical(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    if carry {
        // The true sum is s + 2^64 < 2p, and 2^64 ≡ 2^32 − 1 (mod p): the result is
        // below p, so this cannot overflow.
        s + 0xffff_ffff
    } else if s >= MODULUS {
        s - MODULUS
    } else {
        s
    }
}

/// The pseudo-random vector of `elements` elements expanded from a 32-byte seed, encoded:
/// ChaCha20 keyed by the seed, read as little-endian 64-bit words, words of p or more
/// skipped (probability below 2^-32 each). Client and server expand alike, so a seed
/// stands for a whole share.
pub fn expand_seed(seed: &[u8; 32], elements: usize) -> Zeroizing<Vec<u8>> {
    use chacha20::cipher::{KeyIvInit, StreamCipher};
    let mut stream = chacha20::ChaCha20::new(seed.into(), b"chorus/seed1".into());
    let mut out = Zeroizing::new(vec![0u8; elements * ELEMENT_BYTES]);
    stream.apply_keystream(&mut out);
    let mut j = 0;
    while j < elements {
        let mut word = [0u8; 8];
        word.copy_from_slice(&out[j * ELEMENT_BYTES..(j + 1) * ELEMENT_BYTES]);
        if u64::from_le_bytes(word) < MODULUS {
            j += 1;
            continue;
        }
        // Draw a replacement word from the stream's continuation.
        let mut fresh = Zeroizing::new([0u8; 8]);
        stream.apply_keystream(fresh.as_mut());
        out[j * ELEMENT_BYTES..(j + 1) * ELEMENT_BYTES].copy_from_slice(fresh.as_ref());
    }
    out
}

/// `1 / a` for a non-zero public value.
pub fn inv(a: Fe) -> Fe {
    a.inv()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prio::field::FieldElementWithInteger;
    use proptest::prelude::*;

    #[test]
    fn the_modulus_is_goldilocks() {
        assert_eq!(u128::from(MODULUS), (1u128 << 64) - (1u128 << 32) + 1);
        assert_eq!(u64::from(fe(MODULUS - 1) + fe(1)), 0);
        assert_eq!(Fe::modulus(), MODULUS);
    }

    #[test]
    fn non_canonical_and_ragged_encodings_are_refused() {
        let mut bytes = vec![0u8; 16];
        put(&mut bytes, 0, fe(5));
        put(&mut bytes, 1, fe(MODULUS - 1));
        assert_eq!(check(&bytes), Ok(()));
        bytes[8..].copy_from_slice(&MODULUS.to_le_bytes());
        assert_eq!(
            check(&bytes),
            Err(FieldDecodeError::NotCanonical { index: 1 })
        );
        assert_eq!(check(&bytes[..7]), Err(FieldDecodeError::Length(7)));
        let before = bytes.clone();
        assert!(add_encoded(&mut bytes, &before).is_err());
        assert_eq!(bytes, before, "a refused addition changes nothing");
    }

    proptest! {
        #[test]
        fn integer_addition_agrees_with_the_field(a in 0..MODULUS, b in 0..MODULUS) {
            prop_assert_eq!(add_canonical(a, b), u64::from(fe(a) + fe(b)));
        }

        #[test]
        fn integer_multiply_add_agrees_with_the_field(
            a in 0..MODULUS, b in 0..MODULUS, c in 0..MODULUS
        ) {
            prop_assert_eq!(mul_add_canonical(a, b, c), u64::from(fe(a) * fe(b) + fe(c)));
        }

        #[test]
        fn any_word_reads_as_a_field_element(w in any::<u64>()) {
            let bytes = w.to_le_bytes();
            prop_assert_eq!(word(&bytes, 0), u64::from(fe(w)));
        }
    }

    #[test]
    fn integer_multiply_add_at_the_edges() {
        let top = MODULUS - 1;
        let edges = [
            0,
            1,
            2,
            top,
            top - 1,
            1 << 32,
            (1 << 32) - 1,
            (1 << 32) + 1,
            1 << 63,
        ];
        for a in edges {
            for b in edges {
                for c in [0, 1, top] {
                    assert_eq!(
                        mul_add_canonical(a, b, c),
                        u64::from(fe(a) * fe(b) + fe(c)),
                        "{a} * {b} + {c}"
                    );
                }
            }
        }
    }

    #[test]
    fn integer_addition_at_the_edges() {
        let top = MODULUS - 1;
        for (a, b) in [
            (top, top),
            (top, 1),
            (0, 0),
            (u64::MAX >> 1, top),
            (1 << 63, 1 << 63),
        ] {
            assert_eq!(add_canonical(a, b), u64::from(fe(a) + fe(b)), "{a} + {b}");
        }
    }

    #[test]
    fn seeds_expand_to_canonical_vectors_deterministically() {
        let a = expand_seed(&[7; 32], 1000);
        assert_eq!(check(&a), Ok(()));
        assert_eq!(a, expand_seed(&[7; 32], 1000));
        assert_ne!(a, expand_seed(&[8; 32], 1000));
    }

    proptest! {
        #[test]
        fn pack_unpack_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let packed = pack(&bytes);
            prop_assert_eq!(packed.len(), share_bytes(bytes.len()));
            prop_assert_eq!(check(&packed), Ok(()));
            prop_assert_eq!(unpack(&packed, bytes.len()), bytes);
        }

        #[test]
        fn check_never_panics_and_accepts_only_canonical_words(
            bytes in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            match check(&bytes) {
                Ok(()) => prop_assert_eq!(bytes.len() % 8, 0),
                Err(FieldDecodeError::Length(n)) => prop_assert!(n % 8 != 0),
                Err(FieldDecodeError::NotCanonical { index }) => {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&bytes[index * 8..index * 8 + 8]);
                    prop_assert!(u64::from_le_bytes(w) >= MODULUS);
                }
            }
            // unpack takes any bytes.
            let _ = unpack(&bytes, bytes.len());
        }

        #[test]
        fn encoded_addition_is_field_addition(a in any::<u64>(), b in any::<u64>()) {
            let (a, b) = (a % MODULUS, b % MODULUS);
            let mut acc = a.to_le_bytes().to_vec();
            prop_assert_eq!(add_encoded(&mut acc, &b.to_le_bytes()), Ok(()));
            let expect = ((u128::from(a) + u128::from(b)) % u128::from(MODULUS)) as u64;
            prop_assert_eq!(acc, expect.to_le_bytes().to_vec());
        }
    }
}
