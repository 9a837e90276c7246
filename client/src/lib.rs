//! Headless Chorus client engine, shared by `chat-cli` and the desktop app.
//!
//! - [`frame`]: the libp2p wire framing (also used by the servers, so both ends agree).
//! - [`conn`]: a connection to every server of a cluster, with per-server requests and
//!   the gossiped round outputs.

pub mod conn;
pub mod frame;
