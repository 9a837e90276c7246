//! Which gossip on the output topic is forwarded, and who gets banned for the rest. Pure
//! bookkeeping, shared by the servers' and the clients' network loops, which report the
//! verdict to gossipsub and do the banning.
//!
//! Only a configured server may publish on the output topic, and only a well-formed
//! signed output under its own index. Anything else is dropped, never relayed; a
//! non-server peer that relays [`STRIKES_BEFORE_BAN`] such messages is banned.
//! (The publisher's signature over the message is checked by gossipsub itself:
//! `ValidationMode::Strict`.)

use std::collections::HashMap;

use libp2p::PeerId;
use protocol::wire::{ServerIndex, SignedOutput};

/// Junk gossip messages a non-server peer may relay before it is banned (blocked until
/// the node restarts). Small: an honest peer relays none.
pub const STRIKES_BEFORE_BAN: u32 = 8;
/// Peers whose junk is tallied at once; beyond it the tally starts over (bounded memory:
/// a flood of fresh identities only resets it).
const MAX_TRACKED_PEERS: usize = 4096;

/// The configured servers' PeerIds and the junk tally of everyone else.
pub struct GossipGuard {
    servers: HashMap<PeerId, ServerIndex>,
    strikes: HashMap<PeerId, u32>,
}

impl GossipGuard {
    /// A guard for the configured `servers` (PeerId, index).
    pub fn new(servers: impl IntoIterator<Item = (PeerId, ServerIndex)>) -> Self {
        Self {
            servers: servers.into_iter().collect(),
            strikes: HashMap::new(),
        }
    }

    /// Whether a message published by `source` with payload `data` may be forwarded;
    /// otherwise the reason label it is counted under.
    pub fn judge(&self, source: Option<&PeerId>, data: &[u8]) -> Result<(), &'static str> {
        let Some(index) = source.and_then(|p| self.servers.get(p)) else {
            return Err("gossip_from_non_server");
        };
        let signed: SignedOutput = protocol::decode(data).map_err(|_| "gossip_malformed")?;
        if signed.vouch.server != *index || signed.vouch.round != signed.output.round {
            return Err("gossip_malformed");
        }
        Ok(())
    }

    /// `relayer` relayed one more junk message: true when it is to be banned now.
    /// Configured servers are never banned (they judge before relaying, so they never
    /// relay junk).
    pub fn strike(&mut self, relayer: PeerId) -> bool {
        if self.servers.contains_key(&relayer) {
            return false;
        }
        if self.strikes.len() >= MAX_TRACKED_PEERS {
            self.strikes.clear();
        }
        let n = self.strikes.entry(relayer).or_insert(0);
        *n += 1;
        if *n < STRIKES_BEFORE_BAN {
            return false;
        }
        self.strikes.remove(&relayer);
        true
    }
}

#[cfg(test)]
mod tests {
    use protocol::bounded::Fixed;
    use protocol::wire::{OutputVouch, RoundOutput};

    use super::*;

    fn output(round: u64, server: u16) -> Vec<u8> {
        let output = RoundOutput::empty(round, 3);
        let vouch = OutputVouch {
            round,
            output_hash: Fixed(output.hash()),
            server,
            signature: Fixed([0u8; 64]),
        };
        protocol::encode(&SignedOutput { output, vouch }).expect("encodes")
    }

    #[test]
    fn only_a_servers_well_formed_output_under_its_own_index_passes() {
        let (s0, s1, outsider) = (PeerId::random(), PeerId::random(), PeerId::random());
        let g = GossipGuard::new([(s0, 0), (s1, 1)]);
        assert_eq!(g.judge(Some(&s1), &output(5, 1)), Ok(()));
        assert_eq!(
            g.judge(Some(&outsider), &output(5, 1)),
            Err("gossip_from_non_server")
        );
        assert_eq!(g.judge(None, &output(5, 1)), Err("gossip_from_non_server"));
        assert_eq!(
            g.judge(Some(&s0), &output(5, 1)),
            Err("gossip_malformed"),
            "a server may not speak for another"
        );
        assert_eq!(g.judge(Some(&s0), b"junk"), Err("gossip_malformed"));
    }

    #[test]
    fn a_relayer_of_junk_is_banned_at_the_limit_and_servers_never() {
        let (server, outsider) = (PeerId::random(), PeerId::random());
        let mut g = GossipGuard::new([(server, 0)]);
        for _ in 1..STRIKES_BEFORE_BAN {
            assert!(!g.strike(outsider));
        }
        assert!(g.strike(outsider), "banned at the limit");
        for _ in 0..2 * STRIKES_BEFORE_BAN {
            assert!(!g.strike(server));
        }
    }
}
