//! The network layer that Chorus servers (`actors`) and clients (`client`) share, and
//! nothing else: both build their own swarm on top of it.
//!
//! - [`frame`]: the length-prefixed request/response codec, with its size limit checked
//!   before reading and a hook that counts refused frames.
//! - [`names`]: the stream protocol names and the gossip topic.
//! - [`backoff`]: per-peer redial schedule.
//! - [`addr`]: a configured server's address, parsed once, with one error type.
//! - [`gossip`]: which messages on the output topic are forwarded (only a configured
//!   server's signed output), and when a relayer of junk is banned.
//!
//! It depends on `protocol` (for the codec and the frame limit) and libp2p; neither
//! `actors` nor `client` depends on the other.

pub mod addr;
pub mod backoff;
pub mod frame;
pub mod gossip;
pub mod names;

pub use addr::{AddrError, ServerAddr};
