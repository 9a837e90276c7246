//! The Chorus server's actors: peer-connection (libp2p swarm), consensus (openraft with a
//! durable redb log), share-keeper, broadcaster and the metrics registry.
//!
//! Only this crate knows openraft and actix (and, with `client`, libp2p).

pub mod metrics;
pub mod net;
pub mod raft_net;
pub mod rounds;
pub mod server;
pub mod store;
pub mod types;
