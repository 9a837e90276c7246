//! Rooms: named group conversations whose members approve newcomers, over MLS group keys.
//!
//! - [`mls`]: OpenMLS as rooms use it (membership and per-epoch exporter secrets).
//! - [`wire`]: what members say to each other (signed, inside the room envelope) and the
//!   one-to-one room requests (join request, Welcome, decline).
//! - [`book`]: every room this client is in or waits for, persisted.
//!
//! Nothing here does I/O; [`crate::core`] feeds it outputs and requests.

pub mod book;
pub mod mls;
pub mod wire;
