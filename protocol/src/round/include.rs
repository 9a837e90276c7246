//! Which clients a decided round includes, and who is refused for a while.
//!
//! A client is included only if every serving server listed it with one submission
//! digest, it is not cooling off, and its validity proof holds on the servers' checks
//! ([`crate::validity::decide`]: any `t + 1` verifier shares decide, and all of them
//! must lie on one polynomial). Everyone else is left out of the sum, so a jammer
//! garbles nothing: sums are taken only after the decision. Exclusions are counted by
//! reason; they never say which slot anyone used.
//!
//! A bad proof, inconsistent shares or two different submissions to one round are the
//! client's doing alone (an honest client's proof always holds, and it signs one
//! submission per round), so each is a strike; [`Params::exclusions_before_cooling`]
//! strikes within [`Params::cooling_rounds`] of each other refuse the client for that
//! many rounds. A share missing at a server is not a strike: networks lose things. Nor is
//! a bad proof in a round that closed before the round before it published: its layout
//! (none) may not be the one an honest sender proved for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::params::Params;
use crate::validity::{decide, Verdict, CHECK_BYTES};
use crate::wire::{ClientId, HeldEntry, Round, ServerIndex};

/// Clients left out of decided rounds, by reason, in total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusions {
    /// Not listed by every serving server (its share did not reach one, or did not
    /// open or check there).
    pub missing: u64,
    /// Listed with different submissions by different servers.
    pub conflicting: u64,
    /// Its validity proof does not hold.
    pub bad_proof: u64,
    /// Its shares are not of one vector.
    pub inconsistent: u64,
    /// Cooling off after repeated exclusions.
    pub cooling: u64,
}

impl Exclusions {
    /// `(label, count)` for metrics.
    pub fn by_reason(&self) -> [(&'static str, u64); 5] {
        [
            ("missing", self.missing),
            ("conflicting", self.conflicting),
            ("bad_proof", self.bad_proof),
            ("inconsistent", self.inconsistent),
            ("cooling", self.cooling),
        ]
    }
}

/// A client's recent strikes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Strikes {
    /// Strikes since the count last started.
    pub count: u32,
    /// The round of the latest.
    pub last: Round,
}

/// Strikes and cooling-off, replicated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conduct {
    /// Clients with strikes not yet forgotten.
    pub strikes: BTreeMap<ClientId, Strikes>,
    /// Clients refused until a round (exclusive).
    pub cooling: BTreeMap<ClientId, Round>,
    /// Exclusions so far.
    pub excluded: Exclusions,
}

impl Conduct {
    /// The round `client` is refused until, if it is cooling off while `open` is open.
    pub fn cooling_until(&self, client: &ClientId, open: Round) -> Option<Round> {
        self.cooling.get(client).copied().filter(|&u| u > open)
    }

    fn strike(&mut self, params: &Params, client: ClientId, round: Round) {
        let s = self.strikes.entry(client).or_default();
        if round.saturating_sub(s.last) > params.cooling_rounds {
            s.count = 0;
        }
        s.count += 1;
        s.last = round;
        if s.count >= params.exclusions_before_cooling {
            self.strikes.remove(&client);
            self.cooling
                .insert(client, round.saturating_add(1 + params.cooling_rounds));
        }
    }

    /// Forget cooling that ended and strikes too old to count, as of `open`.
    pub fn forget_before(&mut self, params: &Params, open: Round) {
        self.cooling.retain(|_, until| *until > open);
        self.strikes
            .retain(|_, s| open.saturating_sub(s.last) <= params.cooling_rounds);
    }

    /// The clients `round` includes, from the serving servers' lists (each sorted by
    /// client), counting the rest and striking those whose doing it was (a bad proof
    /// only if `layout_known`: see the module doc).
    pub fn include(
        &mut self,
        params: &Params,
        round: Round,
        haves: &BTreeMap<ServerIndex, Vec<HeldEntry>>,
        layout_known: bool,
    ) -> Vec<ClientId> {
        let mut clients: Vec<ClientId> = haves.values().flatten().map(|e| e.client).collect();
        clients.sort_unstable();
        clients.dedup();
        let threshold = usize::from(params.threshold);
        let mut included = Vec::new();
        for client in clients {
            let entries: Vec<(usize, &HeldEntry)> = haves
                .iter()
                .filter_map(|(server, list)| {
                    let at = list.binary_search_by(|e| e.client.cmp(&client)).ok()?;
                    Some((usize::from(*server), &list[at]))
                })
                .collect();
            if entries.len() < haves.len() {
                self.excluded.missing += 1;
                continue;
            }
            if entries.windows(2).any(|w| w[0].1.digest != w[1].1.digest) {
                self.excluded.conflicting += 1;
                self.strike(params, client, round);
                continue;
            }
            if self.cooling_until(&client, round).is_some() {
                self.excluded.cooling += 1;
                continue;
            }
            let checks: Vec<(usize, &[u8; CHECK_BYTES])> =
                entries.iter().map(|(s, e)| (*s, &e.check.0)).collect();
            match decide(&checks, threshold) {
                Verdict::Valid => included.push(client),
                Verdict::BadProof => {
                    self.excluded.bad_proof += 1;
                    if layout_known {
                        self.strike(params, client, round);
                    }
                }
                Verdict::Inconsistent => {
                    self.excluded.inconsistent += 1;
                    self.strike(params, client, round);
                }
            }
        }
        included
    }
}
