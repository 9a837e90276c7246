//! The Chorus server's actors: peer-connection (libp2p swarm), consensus (openraft with a
//! durable redb log), share-keeper, broadcaster and the metrics registry.
//!
//! Filled in by the "Server node" issue. Only this crate knows openraft and actix.
