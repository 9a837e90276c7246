//! Headless Chorus client engine, shared by `chat-cli` and the desktop app. The wire
//! framing, protocol names and redial backoff it shares with the servers live in `p2p`.
//!
//! - [`conn`]: a connection to every server of a cluster, with per-server requests and
//!   the gossiped round outputs.
//! - [`config`]: client config files → settings.
//! - [`store`]: the local history, outbox and delivery record (redb).
//! - [`core`]: the sans-IO client core — every decision (outbox, vouches, inbox,
//!   catch-up, the local directory); inputs in, commands and events out, no I/O.
//! - [`delivery`]: the typed delivery state of an outgoing message.
//! - [`event`]: what the engine reports.
//! - [`engine`]: the async shell that runs the core over [`conn`] and [`store`].
//! - [`daemon`]: the always-online client's local JSON-RPC socket (`chat-cli listen`),
//!   through which `chat-cli send`, scripts and bots use the one engine of an identity.

pub mod backup;
pub mod config;
pub mod conn;
pub mod core;
pub mod daemon;
pub mod delivery;
pub mod engine;
pub mod event;
pub mod rooms;
pub mod store;
