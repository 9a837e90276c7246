//! A server's network address as the configuration names it, parsed once.

use libp2p::{Multiaddr, PeerId};
use protocol::wire::ServerIndex;

/// Why a configured server address does not parse. Each variant names the server and
/// the field, so an operator can find the line in the config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// `peer_id` is not a libp2p PeerId.
    #[error("servers[{index}].peer_id {value:?}: {why}")]
    PeerId {
        /// The server's index.
        index: ServerIndex,
        /// The text found.
        value: String,
        /// The parser's complaint.
        why: String,
    },
    /// `address` is not a multiaddr.
    #[error("servers[{index}].address {value:?}: {why}")]
    Address {
        /// The server's index.
        index: ServerIndex,
        /// The text found.
        value: String,
        /// The parser's complaint.
        why: String,
    },
}

/// One server of the fixed set: its index (Shamir x-coordinate `index + 1`, Raft node
/// id), its libp2p identity and where to dial it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAddr {
    /// Its index in the configured server list.
    pub index: ServerIndex,
    /// Its PeerId (checked by Noise on every connection).
    pub peer_id: PeerId,
    /// Where to dial it.
    pub addr: Multiaddr,
}

impl ServerAddr {
    /// Parse from the config's strings; errors name the server and the field.
    pub fn parse(index: ServerIndex, peer_id: &str, addr: &str) -> Result<Self, AddrError> {
        Ok(Self {
            index,
            peer_id: peer_id.parse().map_err(|e| AddrError::PeerId {
                index,
                value: peer_id.into(),
                why: format!("{e}"),
            })?,
            addr: addr.parse().map_err(|e| AddrError::Address {
                index,
                value: addr.into(),
                why: format!("{e}"),
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";

    #[test]
    fn a_good_address_parses() {
        let a = ServerAddr::parse(2, PID, "/ip4/127.0.0.1/tcp/7000").expect("parses");
        assert_eq!(a.index, 2);
        assert_eq!(a.peer_id.to_string(), PID);
        assert_eq!(a.addr.to_string(), "/ip4/127.0.0.1/tcp/7000");
    }

    #[test]
    fn errors_name_the_server_and_the_field() {
        let e = ServerAddr::parse(1, "nope", "/ip4/127.0.0.1/tcp/7000").expect_err("bad id");
        assert!(
            e.to_string().starts_with("servers[1].peer_id \"nope\""),
            "{e}"
        );
        let e = ServerAddr::parse(4, PID, "127.0.0.1:7000").expect_err("bad address");
        assert!(
            e.to_string()
                .starts_with("servers[4].address \"127.0.0.1:7000\""),
            "{e}"
        );
    }
}
