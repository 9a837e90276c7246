//! What a revealed round publishes: the footprints its reservation cells decoded (they
//! lay out a later round) and its own laid-out message slots. Only the used part of the
//! vector is kept: bytes outside every slot, and the cells themselves, are dropped.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bounded::{BoundedVec, Bytes};
use crate::limits::{MAX_OUTPUT_SLOTS, MAX_RESERVATIONS, MAX_SLOT_BYTES};

use super::Round;

/// One laid-out message slot of an output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputSlot {
    /// The reservation it was laid out for (its low 16 bits are the length asked for).
    pub footprint: u64,
    /// The slot's bytes: a sealed slot payload, zero when its sender sent nothing.
    pub data: Bytes<MAX_SLOT_BYTES>,
}

/// The combined output of a revealed round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundOutput {
    /// The round.
    pub round: Round,
    /// Distinct clients whose submissions were included (the anonymity set).
    pub participants: u32,
    /// Footprints decoded from this round's reservation cells, ascending.
    pub reservations: BoundedVec<u64, MAX_RESERVATIONS>,
    /// Cells that held three or more reservations (or garbage): their senders reserve
    /// again.
    pub lost_cells: u32,
    /// This round's message slots, in layout (footprint) order.
    pub slots: BoundedVec<OutputSlot, MAX_OUTPUT_SLOTS>,
    /// The round was void (too few clients or lists, or sums that disagreed): nothing
    /// of it is revealed and its senders retry. Published like an output, so that f+1
    /// servers' word opens the next round and settles this one without a status poll.
    pub void: bool,
}

impl RoundOutput {
    /// SHA-256 over the canonical encoding; what servers sign and clients compare.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"chorus/output/v3");
        h.update([u8::from(self.void)]);
        h.update(self.round.to_le_bytes());
        h.update(self.participants.to_le_bytes());
        h.update((self.reservations.len() as u64).to_le_bytes());
        for fp in self.reservations.as_slice() {
            h.update(fp.to_le_bytes());
        }
        h.update(self.lost_cells.to_le_bytes());
        h.update((self.slots.len() as u64).to_le_bytes());
        for s in self.slots.as_slice() {
            h.update(s.footprint.to_le_bytes());
            h.update((s.data.len() as u64).to_le_bytes());
            h.update(s.data.as_slice());
        }
        h.finalize().into()
    }

    /// The slot laid out for `footprint`, if any.
    pub fn slot(&self, footprint: u64) -> Option<&[u8]> {
        self.slots
            .as_slice()
            .iter()
            .find(|s| s.footprint == footprint)
            .map(|s| s.data.as_slice())
    }

    /// An output with no reservations and no slots (tests, and a round nobody used).
    pub fn empty(round: Round, participants: u32) -> Self {
        Self {
            round,
            participants,
            reservations: BoundedVec::default(),
            lost_cells: 0,
            slots: BoundedVec::default(),
            void: false,
        }
    }

    /// What a void round publishes: that it was void, and how many clients it had.
    pub fn void(round: Round, participants: u32) -> Self {
        Self {
            void: true,
            ..Self::empty(round, participants)
        }
    }
}
