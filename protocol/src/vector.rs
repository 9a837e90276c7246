//! The layout of a round's vector (round protocol v2): `R` reservation cells of three
//! field elements, then the message region of `S × L` bytes packed 7 to an element.
//!
//! A client writes at most one reservation `(1, a, a²)` into a random cell
//! ([`crate::reserve`]) and at most one sealed slot payload into the slot a reservation
//! of an earlier round was given ([`layout`]); everything else is zero. The servers add
//! vectors without looking at them; [`output`] turns a round's sum into what the round
//! publishes: the footprints its cells decode and its laid-out slots.

use zeroize::Zeroizing;

use crate::bounded::{BoundedVec, Bytes};
use crate::field::{self, ELEMENT_BYTES};
use crate::params::Params;
use crate::reserve::{self, Slot};
use crate::slot::MIN_SLOT_BYTES;
use crate::wire::{OutputSlot, Round, RoundOutput};

/// One client's vector for one round, before sharing.
pub struct Vector {
    /// The footprints its message region is laid out from (the validity proof is made
    /// for that layout, which must be the round's).
    laid_out: Vec<u64>,
    cells: usize,
    /// The reservation cells, encoded (`3R` elements).
    reservations: Zeroizing<Vec<u8>>,
    /// The message region's bytes.
    message: Zeroizing<Vec<u8>>,
}

impl Vector {
    /// All zero: a client with nothing to reserve or send.
    pub fn zero(params: &Params) -> Self {
        Self::laid_out(params, &[])
    }

    /// All zero, in a round whose message region is laid out from `footprints` (the
    /// reservations of the round before, as its output published them).
    pub fn laid_out(params: &Params, footprints: &[u64]) -> Self {
        let cells = params.reserve_cells as usize;
        Self {
            laid_out: footprints.to_vec(),
            cells,
            reservations: Zeroizing::new(vec![0u8; 3 * cells * ELEMENT_BYTES]),
            message: Zeroizing::new(vec![0u8; params.message_bytes()]),
        }
    }

    /// The footprints its message region is laid out from.
    pub fn layout(&self) -> &[u64] {
        &self.laid_out
    }

    /// Reservation cells.
    pub fn cells(&self) -> usize {
        self.cells
    }

    /// Write reservation `footprint` into cell `cell` (false if there is no such cell).
    pub fn reserve(&mut self, cell: usize, footprint: u64) -> bool {
        if cell >= self.cells {
            return false;
        }
        for (k, v) in reserve::cell(footprint).into_iter().enumerate() {
            field::put(&mut self.reservations, 3 * cell + k, v);
        }
        true
    }

    /// Write raw field elements into cell `cell` (false if there is no such cell). An
    /// honest client only ever [`Vector::reserve`]s; this is how the abuse run and the
    /// tests make malformed reservations that validity proofs must refuse.
    pub fn write_cell(&mut self, cell: usize, values: [u64; 3]) -> bool {
        if cell >= self.cells {
            return false;
        }
        for (k, v) in values.into_iter().enumerate() {
            field::put(&mut self.reservations, 3 * cell + k, field::fe(v));
        }
        true
    }

    /// Write `bytes` into the message region at `slot` (false if they do not fit it).
    pub fn write(&mut self, slot: &Slot, bytes: &[u8]) -> bool {
        if bytes.len() != slot.len {
            return false;
        }
        match self.message.get_mut(slot.offset..slot.offset + slot.len) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }

    /// The vector as encoded field elements, ready to share.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let packed = field::pack(&self.message);
        let mut out = Zeroizing::new(Vec::with_capacity(self.reservations.len() + packed.len()));
        out.extend_from_slice(&self.reservations);
        out.extend_from_slice(&packed);
        out
    }
}

/// Rounds from a reservation to the round whose message region it lays out: the
/// footprints decoded from round `r`'s output lay out round `r + 1`. Round `r + 1` opens
/// when `r` closes, and every client waits for `r`'s output before submitting to it, so
/// a message takes two rounds (reserve, send) and the summing of one round overlaps
/// nothing but the wait for it.
pub const RESERVE_AHEAD: Round = 1;

/// The message region laid out from an earlier round's decoded footprints: every slot is
/// at least [`MIN_SLOT_BYTES`] (so it can hold a sealed payload) and at most `L`, but
/// for at most `F` file slots of at most `Lf` laid out after them.
pub fn layout(params: &Params, footprints: &[u64]) -> Vec<Slot> {
    reserve::layout(
        footprints,
        reserve::Region {
            bytes: params.message_bytes(),
            min_len: MIN_SLOT_BYTES,
            max_len: params.slot_bytes as usize,
            file_slots: params.file_slots as usize,
            file_len: params.file_slot_bytes as usize,
        },
    )
}

/// What round `round` publishes from its decoded sum (`sum`: every element, encoded),
/// with its message region laid out from `laid_out` (footprints of an earlier round).
pub fn output(
    params: &Params,
    round: Round,
    participants: u32,
    sum: &[u8],
    laid_out: &[u64],
) -> RoundOutput {
    let cells = params.reserve_cells as usize;
    let split = (3 * cells * ELEMENT_BYTES).min(sum.len());
    let (cell_bytes, message) = sum.split_at(split);
    let mut reservations = Vec::new();
    let mut lost_cells = 0u32;
    for c in 0..cells {
        let e = |k| field::element(cell_bytes, 3 * c + k);
        match reserve::decode(e(0), e(1), e(2)) {
            reserve::Cell::Empty => {}
            reserve::Cell::One(a) => reservations.push(a),
            reserve::Cell::Two(a, b) => reservations.extend([a, b]),
            reserve::Cell::Lost => lost_cells += 1,
        }
    }
    reservations.sort_unstable();
    let message = field::unpack(message, params.message_bytes());
    let slots: Vec<OutputSlot> = layout(params, laid_out)
        .into_iter()
        .map(|s| OutputSlot {
            footprint: s.footprint,
            data: Bytes::new(message[s.offset..s.offset + s.len].to_vec()).unwrap_or_default(),
        })
        .collect();
    RoundOutput {
        round,
        participants,
        // At most two per cell and one slot per MIN_SLOT_BYTES: within the bounds.
        reservations: BoundedVec::new(reservations).unwrap_or_default(),
        lost_cells,
        slots: BoundedVec::new(slots).unwrap_or_default(),
        void: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Admission;
    use crate::reserve::footprint;

    #[test]
    fn a_sum_of_vectors_publishes_its_reservations_and_slots() {
        let params = Params::new(3, 1, 4, 200, 1, 4, Admission::Open).expect("params");
        // Round r − 2 decoded two footprints: round r lays out their slots.
        let a = footprint(7 << 20, 150).expect("a");
        let b = footprint(9 << 20, 200).expect("b");
        let slots = layout(&params, &[b, a]);
        assert_eq!(slots.len(), 2);
        assert_eq!((slots[0].footprint, slots[0].len), (a, 150));
        let mut va = Vector::zero(&params);
        assert!(va.write(&slots[0], &[1u8; 150]));
        assert!(
            !va.write(&slots[1], &[1u8; 150]),
            "a slot takes its own length"
        );
        // Two clients reserve in cell 3: both decode. Cell 0 gets three: lost.
        let (c, d, e) = (5u64 << 17 | 100, 6u64 << 17 | 100, 11u64 << 17 | 100);
        assert!(va.reserve(3, c));
        assert!(!va.reserve(12, c), "only R cells");
        let mut vb = Vector::zero(&params);
        assert!(vb.write(&slots[1], &[2u8; 200]));
        assert!(vb.reserve(3, d));
        let mut sum = va.encode();
        field::add_encoded(&mut sum, &vb.encode()).expect("add");
        for fp in [c, d, e] {
            let mut v = Vector::zero(&params);
            v.reserve(0, fp);
            field::add_encoded(&mut sum, &v.encode()).expect("add");
        }
        assert_eq!(sum.len(), params.share_bytes());
        let out = output(&params, 9, 5, &sum, &[a, b]);
        assert_eq!(out.reservations.as_slice(), &[c, d]);
        assert_eq!(out.lost_cells, 1);
        assert_eq!(out.slot(a), Some(&[1u8; 150][..]));
        assert_eq!(out.slot(b), Some(&[2u8; 200][..]));
        assert_eq!(out.slot(c), None);
    }

    proptest::proptest! {
        /// Any sum (even one no honest clients add up to) and any footprints publish an
        /// output within its bounds, without a panic.
        #[test]
        fn any_sum_publishes_a_bounded_output(
            words in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..400),
            footprints in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..40),
        ) {
            let params = Params::new(3, 1, 4, 200, 1, 4, Admission::Open).expect("params");
            let sum: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let out = output(&params, 1, 0, &sum, &footprints);
            proptest::prop_assert!(out.reservations.len() <= 2 * params.reserve_cells as usize);
            let used: usize = out.slots.as_slice().iter().map(|s| s.data.len()).sum();
            proptest::prop_assert!(used <= params.message_bytes());
            proptest::prop_assert!(out.slots.as_slice().iter().all(|s| s.data.len() <= 200));
        }
    }
}
