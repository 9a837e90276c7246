//! Validated round parameters, shared by servers and clients.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_RESERVE_CELLS, MAX_SERVERS, MAX_SLOTS, MAX_SLOT_BYTES, MAX_VECTOR_BYTES};
use crate::wire::ClientId;

/// Who may submit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Admission {
    /// Anyone with a key.
    Open,
    /// Only these client keys.
    Listed(BTreeSet<ClientId>),
}

/// Round parameters. Construct with [`Params::new`], which checks every bound.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// n.
    pub servers: u16,
    /// t.
    pub threshold: u16,
    /// S.
    pub slots: u32,
    /// L: the longest slot a reservation may ask for. The message region is `S × L`
    /// bytes, laid out into variable-length slots ([`crate::reserve::layout`]).
    pub slot_bytes: u32,
    /// R: reservation cells per round (three field elements each).
    pub reserve_cells: u32,
    /// k.
    pub min_anonymity_set: u32,
    /// Outputs kept.
    pub retention_rounds: u64,
    /// Admission policy.
    pub admission: Admission,
    /// Each server's ed25519 key, in index order: reveals are checked against it.
    pub server_keys: Vec<crate::bounded::Key32>,
    /// Under the `open` policy: registrations committed per round, at most.
    pub registrations_per_round: u32,
    /// Under the `open` policy: names in the directory, at most.
    pub max_names: u64,
    /// Exclusions for a bad proof, inconsistent shares or two different submissions
    /// (within [`Params::cooling_rounds`] of each other) before a client cools off.
    pub exclusions_before_cooling: u32,
    /// Rounds a client that was excluded too often is refused for.
    pub cooling_rounds: u64,
    /// F: file slots per round, laid out after every message slot that fits (0: files
    /// travel in ordinary slots of at most `L`).
    pub file_slots: u32,
    /// Lf: the longest file slot a reservation may ask for (more than `L`).
    pub file_slot_bytes: u32,
}

/// File slots per round unless configured (when they fit the vector).
pub const DEFAULT_FILE_SLOTS: u32 = 1;
/// Length of a file slot unless configured: a file moves about 8 KiB a round.
pub const DEFAULT_FILE_SLOT_BYTES: u32 = 8192;

/// Default exclusions before a client cools off.
pub const DEFAULT_EXCLUSIONS_BEFORE_COOLING: u32 = 3;
/// Default cooling-off period, in rounds (ten minutes of 500 ms rounds).
pub const DEFAULT_COOLING_ROUNDS: u64 = 1200;

/// Default cap on registrations per round under the `open` policy.
pub const DEFAULT_REGISTRATIONS_PER_ROUND: u32 = 32;
/// Default cap on names in the directory under the `open` policy.
pub const DEFAULT_MAX_NAMES: u64 = 100_000;

/// Reservation cells per slot unless configured: with every slot wanted, about 95% of
/// reservations decode at the first try (see [`crate::reserve`]).
pub const RESERVE_CELLS_PER_SLOT: usize = 3;

/// A parameter out of range; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ParamsError {
    /// The offending field (as named in the config file, e.g. `round.slots`).
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

/// Rounds of outputs kept: `round.retention_days` converted with the round length when
/// set, else `round.retention_rounds`.
fn retention_of(round: &keys::manifest::RoundSection) -> Result<u64, ParamsError> {
    const DAY_MS: u64 = 86_400_000;
    match round.retention_days {
        None => Ok(round.retention_rounds),
        Some(0) => Err(ParamsError {
            field: "round.retention_days".into(),
            problem: "must be at least 1 (or leave it out and set round.retention_rounds)".into(),
        }),
        Some(days) => Ok((u64::from(days) * DAY_MS / round.round_ms.max(1)).max(1)),
    }
}

impl Params {
    /// From the `[round]` and `[admission]` sections of a cluster or node config, with
    /// `servers` entries; errors name the config field (`round.threshold`,
    /// `admission.clients[2]`, …).
    pub fn from_manifest(
        server_entries: &[keys::manifest::ServerEntry],
        round: &keys::manifest::RoundSection,
        admission: &keys::manifest::AdmissionSection,
    ) -> Result<Self, ParamsError> {
        let servers = server_entries.len();
        let server_keys: Vec<&str> = server_entries.iter().map(|s| s.ed25519.as_str()).collect();
        let admission_caps = (
            admission.max_registrations_per_round,
            admission.max_registrations,
        );
        let admission = match admission.policy {
            keys::manifest::Policy::Open => Admission::Open,
            keys::manifest::Policy::Listed => {
                let mut set = BTreeSet::new();
                for (j, c) in admission.clients.iter().enumerate() {
                    let key = keys::identity::parse_hex32(c).map_err(|_| ParamsError {
                        field: format!("admission.clients[{j}]"),
                        problem: "must be 64 hex characters (an ed25519 public key)".into(),
                    })?;
                    set.insert(crate::bounded::Fixed(key));
                }
                Admission::Listed(set)
            }
        };
        let mut keys = Vec::with_capacity(server_keys.len());
        for (i, k) in server_keys.iter().enumerate() {
            let key = keys::identity::parse_hex32(k).map_err(|_| ParamsError {
                field: format!("servers[{i}].ed25519"),
                problem: "must be 64 hex characters (an ed25519 public key)".into(),
            })?;
            keys.push(crate::bounded::Fixed(key));
        }
        let mut p = Self::new(
            servers,
            round.threshold as usize,
            round.slots as usize,
            round.slot_bytes as usize,
            round.min_anonymity_set as usize,
            retention_of(round)?,
            admission,
        )?
        .with_server_keys(keys)?;
        if let Some(cells) = round.reserve_cells {
            p = p.with_reserve_cells(cells as usize)?;
        }
        p = match (round.file_slots, round.file_slot_bytes) {
            (None, None) => p.with_default_file_slots(),
            (slots, bytes) => p.with_file_slots(
                slots.unwrap_or(DEFAULT_FILE_SLOTS) as usize,
                bytes.unwrap_or(DEFAULT_FILE_SLOT_BYTES) as usize,
            )?,
        };
        if let Some(strikes) = round.exclusions_before_cooling {
            if strikes < 1 {
                return Err(ParamsError {
                    field: "round.exclusions_before_cooling".into(),
                    problem: "must be at least 1".into(),
                });
            }
            p.exclusions_before_cooling = strikes;
        }
        if let Some(rounds) = round.cooling_rounds {
            p.cooling_rounds = rounds;
        }
        if let Some(cap) = admission_caps.0 {
            if cap < 1 {
                return Err(ParamsError {
                    field: "admission.max_registrations_per_round".into(),
                    problem: "must be at least 1".into(),
                });
            }
            p.registrations_per_round = cap;
        }
        if let Some(cap) = admission_caps.1 {
            p.max_names = cap;
        }
        Ok(p)
    }

    /// With the servers' ed25519 keys (one per server, index order).
    pub fn with_server_keys(
        mut self,
        keys: Vec<crate::bounded::Key32>,
    ) -> Result<Self, ParamsError> {
        if keys.len() != usize::from(self.servers) {
            return Err(ParamsError {
                field: "servers".into(),
                problem: format!("{} keys for {} servers", keys.len(), self.servers),
            });
        }
        self.server_keys = keys;
        Ok(self)
    }

    /// The first field in which `other` differs from `self`, named as in the config
    /// file, with both values: how a node explains that its file disagrees with the
    /// parameters committed to the log.
    pub fn first_difference(&self, other: &Params) -> Option<String> {
        fn differ<T: PartialEq + std::fmt::Debug>(field: &str, a: &T, b: &T) -> Option<String> {
            (a != b).then(|| format!("{field} is {a:?} here but {b:?} in the cluster's log"))
        }
        differ("servers (count)", &self.servers, &other.servers)
            .or_else(|| differ("round.threshold", &self.threshold, &other.threshold))
            .or_else(|| differ("round.slots", &self.slots, &other.slots))
            .or_else(|| differ("round.slot_bytes", &self.slot_bytes, &other.slot_bytes))
            .or_else(|| differ("round.file_slots", &self.file_slots, &other.file_slots))
            .or_else(|| {
                differ(
                    "round.file_slot_bytes",
                    &self.file_slot_bytes,
                    &other.file_slot_bytes,
                )
            })
            .or_else(|| {
                differ(
                    "round.reserve_cells",
                    &self.reserve_cells,
                    &other.reserve_cells,
                )
            })
            .or_else(|| {
                differ(
                    "round.min_anonymity_set",
                    &self.min_anonymity_set,
                    &other.min_anonymity_set,
                )
            })
            .or_else(|| {
                differ(
                    "round.retention_rounds",
                    &self.retention_rounds,
                    &other.retention_rounds,
                )
            })
            .or_else(|| match (&self.admission, &other.admission) {
                (Admission::Open, Admission::Open) => None,
                (Admission::Listed(a), Admission::Listed(b)) if a == b => None,
                (Admission::Listed(a), Admission::Listed(b)) => Some(format!(
                    "admission.clients differ ({} listed here, {} in the cluster's log)",
                    a.len(),
                    b.len()
                )),
                (a, b) => Some(format!(
                    "admission.policy is {} here but {} in the cluster's log",
                    policy_name(a),
                    policy_name(b)
                )),
            })
            .or_else(|| {
                self.server_keys
                    .iter()
                    .zip(&other.server_keys)
                    .position(|(a, b)| a != b)
                    .map(|i| format!("servers[{i}].ed25519 differs from the cluster's log"))
            })
            .or_else(|| {
                differ(
                    "admission.max_registrations_per_round",
                    &self.registrations_per_round,
                    &other.registrations_per_round,
                )
            })
            .or_else(|| {
                differ(
                    "admission.max_registrations",
                    &self.max_names,
                    &other.max_names,
                )
            })
            .or_else(|| {
                differ(
                    "round.exclusions_before_cooling",
                    &self.exclusions_before_cooling,
                    &other.exclusions_before_cooling,
                )
            })
            .or_else(|| {
                differ(
                    "round.cooling_rounds",
                    &self.cooling_rounds,
                    &other.cooling_rounds,
                )
            })
    }

    /// Check and build.
    pub fn new(
        servers: usize,
        threshold: usize,
        slots: usize,
        slot_bytes: usize,
        min_anonymity_set: usize,
        retention_rounds: u64,
        admission: Admission,
    ) -> Result<Self, ParamsError> {
        let err = |field: &str, problem: String| {
            Err(ParamsError {
                field: format!("round.{field}"),
                problem,
            })
        };
        if !(2..=MAX_SERVERS).contains(&servers) {
            return err(
                "servers",
                format!("{servers} servers; must be 2..={MAX_SERVERS} (hiding needs t >= 1 and t+1 servers)"),
            );
        }
        let f = (servers - 1) / 2;
        let max_t = max_threshold(servers);
        if !(1..=max_t).contains(&threshold) {
            return err(
                "threshold",
                format!(
                    "t = {threshold} must be in 1..={max_t} for n = {servers} (f = {f}): t+1 \
                     servers must remain when f are down, and t must stay below f+1 so that \
                     t colluding servers cannot vouch for an output alone"
                ),
            );
        }
        if !(1..=MAX_SLOTS).contains(&slots) {
            return err("slots", format!("{slots}; must be 1..={MAX_SLOTS}"));
        }
        if !(crate::slot::MIN_SLOT_BYTES..=MAX_SLOT_BYTES).contains(&slot_bytes) {
            return err(
                "slot_bytes",
                format!(
                    "{slot_bytes}; must be {}..={MAX_SLOT_BYTES}",
                    crate::slot::MIN_SLOT_BYTES
                ),
            );
        }
        let region = slots * slot_bytes.next_multiple_of(crate::field::PACK);
        if region > MAX_VECTOR_BYTES {
            return err(
                "slots",
                format!(
                    "slots × slot_bytes (each slot on whole 7-byte elements) = {region} exceeds \
                     {MAX_VECTOR_BYTES}"
                ),
            );
        }
        if min_anonymity_set < 1 {
            return err("min_anonymity_set", "must be at least 1".into());
        }
        if retention_rounds < 1 {
            return err("retention_rounds", "must be at least 1".into());
        }
        Self {
            servers: servers as u16,
            threshold: threshold as u16,
            slots: slots as u32,
            slot_bytes: slot_bytes as u32,
            reserve_cells: 0,
            min_anonymity_set: min_anonymity_set as u32,
            retention_rounds,
            admission,
            server_keys: Vec::new(),
            registrations_per_round: DEFAULT_REGISTRATIONS_PER_ROUND,
            max_names: DEFAULT_MAX_NAMES,
            exclusions_before_cooling: DEFAULT_EXCLUSIONS_BEFORE_COOLING,
            cooling_rounds: DEFAULT_COOLING_ROUNDS,
            file_slots: 0,
            file_slot_bytes: 0,
        }
        .with_reserve_cells(slots * RESERVE_CELLS_PER_SLOT)
    }

    /// With `slots` file slots of at most `bytes` each per round (`round.file_slots`,
    /// `round.file_slot_bytes`). File slots are laid out after the message slots, so a
    /// file never takes room a message could use; `slots = 0` turns them off.
    pub fn with_file_slots(mut self, slots: usize, bytes: usize) -> Result<Self, ParamsError> {
        let err = |field: &str, problem: String| {
            Err(ParamsError {
                field: format!("round.{field}"),
                problem,
            })
        };
        if slots == 0 {
            self.file_slots = 0;
            self.file_slot_bytes = 0;
            return Ok(self);
        }
        if slots > MAX_SLOTS {
            return err("file_slots", format!("{slots}; must be 0..={MAX_SLOTS}"));
        }
        let l = self.slot_bytes as usize;
        if !(l + 1..=MAX_SLOT_BYTES).contains(&bytes) {
            return err(
                "file_slot_bytes",
                format!(
                    "{bytes}; must be more than round.slot_bytes ({l}) and at most \
                     {MAX_SLOT_BYTES}"
                ),
            );
        }
        let region = self.message_slot_bytes() + slots * bytes.next_multiple_of(crate::field::PACK);
        if region > MAX_VECTOR_BYTES {
            return err(
                "file_slots",
                format!(
                    "slots × slot_bytes + file_slots × file_slot_bytes = {region} exceeds \
                     {MAX_VECTOR_BYTES}"
                ),
            );
        }
        self.file_slots = slots as u32;
        self.file_slot_bytes = bytes as u32;
        Ok(self)
    }

    /// The default file slots for these parameters: [`DEFAULT_FILE_SLOTS`] of
    /// [`DEFAULT_FILE_SLOT_BYTES`] when they are longer than `L` and fit the vector,
    /// else none.
    pub fn with_default_file_slots(self) -> Self {
        let (f, lf) = (
            DEFAULT_FILE_SLOTS as usize,
            DEFAULT_FILE_SLOT_BYTES as usize,
        );
        let fallback = self.clone();
        self.with_file_slots(f, lf).unwrap_or(fallback)
    }

    /// The longest slot any reservation may ask for: `Lf` when there are file slots,
    /// else `L`.
    pub fn longest_slot(&self) -> usize {
        if self.file_slots > 0 {
            self.file_slot_bytes as usize
        } else {
            self.slot_bytes as usize
        }
    }

    /// Bytes of the region's `S × L` part, each slot on whole 7-byte elements.
    fn message_slot_bytes(&self) -> usize {
        self.slots as usize * (self.slot_bytes as usize).next_multiple_of(crate::field::PACK)
    }

    /// With `cells` reservation cells per round (`round.reserve_cells`).
    pub fn with_reserve_cells(mut self, cells: usize) -> Result<Self, ParamsError> {
        if !(1..=MAX_RESERVE_CELLS).contains(&cells) {
            return Err(ParamsError {
                field: "round.reserve_cells".into(),
                problem: format!("{cells}; must be 1..={MAX_RESERVE_CELLS}"),
            });
        }
        // With both regions at their limits a share is MAX_SHARE_BYTES.
        self.reserve_cells = cells as u32;
        Ok(self)
    }

    /// The message region: `S × L + F × Lf` bytes, each length rounded up to whole
    /// 7-byte field elements (every slot starts on an element, so `S` slots of `L` bytes
    /// and `F` of `Lf` always fit).
    pub fn message_bytes(&self) -> usize {
        self.message_slot_bytes()
            + self.file_slots as usize
                * (self.file_slot_bytes as usize).next_multiple_of(crate::field::PACK)
    }

    /// Field elements in a vector: three per reservation cell, then the message region
    /// packed 7 bytes to an element ([`crate::vector`]).
    pub fn vector_elements(&self) -> usize {
        3 * self.reserve_cells as usize + crate::field::elements_for(self.message_bytes())
    }

    /// Bytes of one share or sum: every element of the vector, encoded.
    pub fn share_bytes(&self) -> usize {
        self.vector_elements() * crate::field::ELEMENT_BYTES
    }

    /// Ciphertext length of a sealed whole share.
    pub fn sealed_share_bytes(&self) -> usize {
        self.share_bytes() + crate::limits::TAG_BYTES
    }

    /// Ciphertext length of a sealed seed (a seed server's share).
    pub fn sealed_seed_bytes(&self) -> usize {
        crate::limits::SEED_BYTES + crate::limits::TAG_BYTES
    }

    /// Ciphertext length of the share a client seals to `server` in `round`: a seed for
    /// the round's seed servers ([`crate::submission::seed_servers`]), else a whole share.
    pub fn sealed_bytes_for(
        &self,
        round: crate::wire::Round,
        client: &crate::wire::ClientId,
        server: usize,
    ) -> usize {
        if crate::submission::is_seed_server(self, round, client, server) {
            self.sealed_seed_bytes()
        } else {
            self.sealed_share_bytes()
        }
    }

    /// Reveals needed to reconstruct: `t + 1`.
    pub fn reveals_needed(&self) -> usize {
        usize::from(self.threshold) + 1
    }

    /// Servers that may be down while the cluster stays live: `f = (n-1)/2`.
    pub fn f(&self) -> usize {
        (usize::from(self.servers) - 1) / 2
    }
}

fn policy_name(a: &Admission) -> &'static str {
    match a {
        Admission::Open => "open",
        Admission::Listed(_) => "listed",
    }
}

/// The largest privacy threshold `n` servers support: `t + 1` servers must remain with
/// `f = (n-1)/2` down (`t <= n - f - 1`), and `t` colluding servers must not be able to
/// vouch for an output on their own, which takes `f + 1` (`t <= f`). For odd `n` both
/// give `t = f`; an even `n` buys no more privacy than `n - 1` servers. With `n = 2`
/// (`f = 0`) the bound is 1, the least that hides anything.
pub fn max_threshold(servers: usize) -> usize {
    // keygen's default is this bound; one formula for both.
    keys::generate::default_threshold(u32::try_from(servers).unwrap_or(u32::MAX)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(servers: usize, threshold: usize) -> Result<Params, ParamsError> {
        Params::new(servers, threshold, 4, 256, 1, 4, Admission::Open)
    }

    #[test]
    fn the_threshold_stays_below_the_vouch_quorum() {
        // Odd n: t = f is both the fault bound and below f+1.
        assert!(with(3, 1).is_ok());
        assert!(with(5, 2).is_ok());
        // Even n = 4: f = 1, so t = 2 = f+1 could vouch for an output alone.
        let e = with(4, 2).expect_err("t = f+1 refused");
        assert_eq!(e.field, "round.threshold");
        assert!(e.problem.contains("1..=1"), "{}", e.problem);
        assert!(with(4, 1).is_ok());
        assert_eq!(max_threshold(6), 2);
        assert_eq!(max_threshold(2), 1);
    }

    #[test]
    fn retention_in_days_becomes_rounds_of_the_configured_length() {
        let mut round = keys::manifest::RoundSection {
            threshold: 1,
            min_anonymity_set: 3,
            round_ms: 500,
            slots: 4,
            slot_bytes: 256,
            retention_rounds: 3600,
            retention_days: None,
            reserve_cells: None,
            exclusions_before_cooling: None,
            cooling_rounds: None,
            file_slots: None,
            file_slot_bytes: None,
        };
        assert_eq!(retention_of(&round), Ok(3600));
        round.retention_days = Some(7);
        assert_eq!(retention_of(&round), Ok(7 * 86_400 * 2));
        round.retention_days = Some(0);
        let e = retention_of(&round).expect_err("zero days refused");
        assert_eq!(e.field, "round.retention_days");
    }
}
