//! Chorus protocol core: wire types and codec, share sealing, Shamir vectors over a prime field, slot
//! payloads and the round state machine.
//!
//! Pure and deterministic: no sockets, no clocks, no threads. Time is an input (the
//! leader decides when to close a round; the state machine only sees `Close(r)`), and
//! randomness is passed in as an RNG. `actors` runs this on the servers and `client`
//! on the clients; tests run it with no network at all.
//!
//! Map:
//! - [`limits`], [`bounded`], [`codec`], [`wire`]: what crosses the network, and its bounds.
//! - [`field`], [`shamir`], [`seal`], [`submission`]: the Goldilocks field, building and
//!   opening (seed-compressed) shares.
//! - [`slot`]: what is inside a slot (sealed to the recipient), and fragmentation;
//!   [`file`]: attachments (the offer, chunks under a fresh key);
//!   [`board`]: the public board's key (posts anyone opens, naming no sender);
//!   [`room`]: room slots (an envelope under an epoch's keys, found by tag);
//!   [`reserve`]: reservation cells, their two-way decoding and the slot layout;
//!   [`vector`]: a round's vector (cells, then the message region) and what its sum
//!   publishes; [`validity`]: the proof that a vector garbles at most its own slot.
//! - [`params`], [`round`], [`robust`], [`names`]: the replicated round state machine,
//!   robust reconstruction of outputs, and the rule for registered names.

pub mod backup;
pub mod board;
pub mod bounded;
pub mod codec;
pub mod field;
pub mod file;
pub mod limits;
pub mod names;
pub mod params;
pub mod reserve;
pub mod robust;
pub mod room;
pub mod round;
pub mod seal;
pub mod shamir;
pub mod slot;
pub mod submission;
pub mod validity;
pub mod vector;
pub mod wire;

pub use codec::{decode, encode, DecodeError};
pub use params::{Admission, Params};
pub use round::{Effect, RoundMachine, State};
pub use wire::{
    ClientRequest, ClientResponse, Command, RejectReason, Round, ShareUpload, Submission,
};
