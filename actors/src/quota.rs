//! Per-peer quotas on client calls, so that one peer cannot make a server "busy" for
//! everyone else: at most [`MAX_CALLS_PER_PEER`] calls of one peer in flight at once, and
//! pages (history pages, the costliest read at up to 64 outputs, and directory pages)
//! at most [`HISTORY_PAGES_PER_SECOND`] per peer on average, in bursts of
//! [`HISTORY_BURST`].
//! A call over quota is answered "busy" at once and counted by reason.
//!
//! A client makes a handful of calls per round and pages through a long absence in
//! bursts; both fit well inside these limits. A page can hold 64 outputs of up to
//! 256 KiB, so the history quota is what bounds what one peer can make a server send.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use libp2p::PeerId;

/// Calls of one peer in flight at once.
pub const MAX_CALLS_PER_PEER: usize = 64;
/// History pages one peer may fetch per second, on average.
pub const HISTORY_PAGES_PER_SECOND: f64 = 4.0;
/// History pages one peer may fetch at once after being quiet: 16 pages of 64 rounds
/// cover an absence of over a thousand rounds at once.
pub const HISTORY_BURST: f64 = 16.0;
/// Peers tracked before idle ones are forgotten.
const PRUNE_ABOVE: usize = 4096;

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverQuota {
    /// Too many calls of this peer in flight.
    InFlight,
    /// Too many history pages from this peer lately.
    History,
}

impl OverQuota {
    /// The metric reason (`chorus_network_rejections_total{reason=...}`).
    pub fn label(self) -> &'static str {
        match self {
            Self::InFlight => "client_peer_quota",
            Self::History => "history_peer_quota",
        }
    }

    /// What the peer is told.
    pub fn message(self) -> &'static str {
        match self {
            Self::InFlight => "server busy: too many of your requests in flight, retry later",
            Self::History => "server busy: too many history requests from you, retry later",
        }
    }
}

#[derive(Debug)]
struct Peer {
    in_flight: usize,
    tokens: f64,
    refilled: Instant,
}

impl Peer {
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + dt * HISTORY_PAGES_PER_SECOND).min(HISTORY_BURST);
        self.refilled = now;
    }

    fn idle(&self) -> bool {
        self.in_flight == 0 && self.tokens >= HISTORY_BURST
    }
}

/// Every peer's quota (cheap to clone: one shared table).
#[derive(Clone, Default)]
pub struct PeerQuotas {
    peers: Arc<Mutex<HashMap<PeerId, Peer>>>,
}

/// A call in flight; its peer's count drops when this does.
pub struct CallGuard {
    quotas: PeerQuotas,
    peer: PeerId,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let mut peers = self.quotas.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = peers.get_mut(&self.peer) {
            p.in_flight = p.in_flight.saturating_sub(1);
        }
    }
}

impl PeerQuotas {
    /// Claim a call for `peer` (a history page if `history`), or say which quota it is
    /// over.
    pub fn claim(&self, peer: PeerId, history: bool, now: Instant) -> Result<CallGuard, OverQuota> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if peers.len() > PRUNE_ABOVE {
            for p in peers.values_mut() {
                p.refill(now);
            }
            peers.retain(|_, p| !p.idle());
        }
        let p = peers.entry(peer).or_insert(Peer {
            in_flight: 0,
            tokens: HISTORY_BURST,
            refilled: now,
        });
        p.refill(now);
        if p.in_flight >= MAX_CALLS_PER_PEER {
            return Err(OverQuota::InFlight);
        }
        if history {
            if p.tokens < 1.0 {
                return Err(OverQuota::History);
            }
            p.tokens -= 1.0;
        }
        p.in_flight += 1;
        Ok(CallGuard {
            quotas: self.clone(),
            peer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_peer_over_its_quota_leaves_others_served() {
        let q = PeerQuotas::default();
        let (flood, honest) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        let held: Vec<CallGuard> = (0..MAX_CALLS_PER_PEER)
            .map(|_| q.claim(flood, false, now).expect("within quota"))
            .collect();
        assert_eq!(q.claim(flood, false, now).err(), Some(OverQuota::InFlight));
        assert!(q.claim(honest, false, now).is_ok());
        drop(held);
        assert!(
            q.claim(flood, false, now).is_ok(),
            "calls that finished free the quota"
        );
    }

    #[test]
    fn history_pages_are_rate_limited_per_peer_and_refill() {
        let q = PeerQuotas::default();
        let peer = PeerId::random();
        let now = Instant::now();
        for _ in 0..HISTORY_BURST as usize {
            drop(q.claim(peer, true, now).expect("burst"));
        }
        assert_eq!(q.claim(peer, true, now).err(), Some(OverQuota::History));
        assert!(
            q.claim(peer, false, now).is_ok(),
            "other calls are not history"
        );
        let later = now + Duration::from_secs(1);
        for _ in 0..HISTORY_PAGES_PER_SECOND as usize {
            drop(q.claim(peer, true, later).expect("refilled"));
        }
        assert_eq!(q.claim(peer, true, later).err(), Some(OverQuota::History));
    }
}
