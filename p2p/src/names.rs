//! The names both ends must agree on: stream protocols and the gossip topic. A version
//! suffix changes whenever the wire types behind a name change.

use libp2p::StreamProtocol;

/// Raft RPCs and forwarded writes between servers. Only configured server PeerIds may
/// use it; clients never speak it.
pub const RAFT_PROTOCOL: StreamProtocol = StreamProtocol::new("/chorus/raft/1");
/// Client calls to a server.
pub const CLIENT_PROTOCOL: StreamProtocol = StreamProtocol::new("/chorus/client/1");
/// Gossipsub topic for signed round outputs.
pub const OUTPUT_TOPIC: &str = "chorus/outputs/1";
