//! Exponential redial backoff per peer, shared by the server's and the client's swarm
//! loops: a lost peer is redialled after 250 ms, then 500 ms, … up to 5 s, and the
//! schedule resets once it is connected again.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// First redial delay.
const FIRST: Duration = Duration::from_millis(250);
/// Longest wait between redials of a lost peer.
const MAX: Duration = Duration::from_secs(5);

/// Redial schedule per peer key.
#[derive(Debug)]
pub struct Backoff<K> {
    next: HashMap<K, (Instant, Duration)>,
}

impl<K> Default for Backoff<K> {
    fn default() -> Self {
        Self {
            next: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Copy> Backoff<K> {
    /// `key` is connected: its next loss starts from the first delay again.
    pub fn connected(&mut self, key: K) {
        self.next.remove(&key);
    }

    /// Whether to dial `key` now; if so, the following attempt is scheduled.
    pub fn due(&mut self, key: K, now: Instant) -> bool {
        let (at, delay) = self.next.get(&key).copied().unwrap_or((now, FIRST));
        if now < at {
            return false;
        }
        self.next.insert(key, (now + delay, (delay * 2).min(MAX)));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset_on_connect() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        assert!(b.due(1, t0));
        assert!(!b.due(1, t0 + Duration::from_millis(100)));
        assert!(b.due(1, t0 + FIRST));
        let mut t = t0 + FIRST;
        for _ in 0..10 {
            t += MAX;
            assert!(b.due(1, t));
        }
        assert!(
            !b.due(1, t + MAX - Duration::from_millis(1)),
            "capped at MAX"
        );
        b.connected(1);
        assert!(b.due(1, t + Duration::from_millis(1)));
    }
}
