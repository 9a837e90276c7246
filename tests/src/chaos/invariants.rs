//! The chaos run's invariant checker: what the clients and the operating system saw
//! during the run goes into [`Observations`]; [`check`] turns them into a [`Verdict`]
//! (lost, duplicated, divergent, panics, slow resumes, memory, disk) and the summary line
//! CI greps (`lost=0 duplicated=0 divergent=0 panics=0 ...`).
//!
//! Nothing here touches a process or a clock: times are passed in, so the checker is
//! tested with synthetic observations.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Rounds must resume within this long of each heal.
pub const MAX_RESUME: Duration = Duration::from_secs(5);
/// Largest node resident set allowed (KiB).
pub const MAX_RSS_KB: u64 = 512 * 1024;
/// Largest node data folder allowed (bytes).
pub const MAX_DISK_BYTES: u64 = 256 * 1024 * 1024;

/// What happened, as the clients (and `/proc`) saw it. Clients are indices.
#[derive(Debug, Default)]
pub struct Observations {
    /// Message text → (sender, recipient), for every message whose queueing succeeded.
    expected: HashMap<String, (usize, usize)>,
    /// (sender, outbox id) → text.
    id_text: HashMap<(usize, u64), String>,
    /// (sender, outbox id) the sender saw reach the "sent" state.
    sent_ids: HashSet<(usize, u64)>,
    /// Text → every client that received it.
    received: HashMap<String, Vec<usize>>,
    /// Round → output hash → how many clients accepted it.
    round_hashes: BTreeMap<u64, HashMap<String, usize>>,
    /// Heals not yet followed by an accepted round.
    pending_heals: Vec<Instant>,
    /// Seconds from each heal to the first round accepted after it.
    resume_gaps_s: Vec<f64>,
    /// Largest node RSS seen (KiB).
    max_rss_kb: u64,
}

impl Observations {
    /// Client `from` queued `text` to `to`; its outbox id is `id`.
    pub fn queued(&mut self, from: usize, to: usize, text: String, id: u64) {
        self.id_text.insert((from, id), text.clone());
        self.expected.insert(text, (from, to));
    }

    /// Client `client` saw its outbox message `id` sent.
    pub fn sent(&mut self, client: usize, id: u64) {
        self.sent_ids.insert((client, id));
    }

    /// Client `client` received `text`.
    pub fn received(&mut self, client: usize, text: String) {
        self.received.entry(text).or_default().push(client);
    }

    /// A client accepted `round` with output `hash` at `at`.
    pub fn round(&mut self, round: u64, hash: String, at: Instant) {
        *self
            .round_hashes
            .entry(round)
            .or_default()
            .entry(hash)
            .or_default() += 1;
        let gaps = &mut self.resume_gaps_s;
        self.pending_heals.retain(|h| {
            if at >= *h {
                gaps.push((at - *h).as_secs_f64());
                false
            } else {
                true
            }
        });
    }

    /// A fault was healed at `at`.
    pub fn heal(&mut self, at: Instant) {
        self.pending_heals.push(at);
    }

    /// A node's resident set was `kb` KiB.
    pub fn rss_kb(&mut self, kb: u64) {
        self.max_rss_kb = self.max_rss_kb.max(kb);
    }

    /// Texts whose sender saw them sent.
    fn sender_sent(&self) -> HashSet<&str> {
        self.id_text
            .iter()
            .filter(|(k, _)| self.sent_ids.contains(k))
            .map(|(_, t)| t.as_str())
            .collect()
    }

    /// Has every message its sender saw sent arrived somewhere? (The run stops early
    /// once it has.)
    pub fn all_sent_arrived(&self) -> bool {
        let sent = self.sender_sent();
        self.expected
            .keys()
            .all(|t| !sent.contains(t.as_str()) || self.received.contains_key(t))
    }
}

/// One violation, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// Sent, but its recipient never got it.
    Lost(String),
    /// Received more than once, or by someone else (who got it).
    Duplicated(String, Vec<usize>),
}

/// The outcome of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Messages sent that never reached their recipient.
    pub lost: usize,
    /// Messages received more than once or by the wrong client.
    pub duplicated: usize,
    /// Rounds for which clients accepted different outputs.
    pub divergent: usize,
    /// "panicked" in the node logs.
    pub panics: usize,
    /// Heals after which rounds took longer than `MAX_RESUME` to resume.
    pub slow_resumes: usize,
    /// Every node stayed under `MAX_RSS_KB`.
    pub memory_ok: bool,
    /// Every data folder stayed under `MAX_DISK_BYTES`.
    pub disk_ok: bool,
    /// The lost and duplicated messages.
    pub findings: Vec<Finding>,
    /// Messages queued.
    pub queued: usize,
    /// Messages their sender saw sent.
    pub sent: usize,
    /// Messages received by anyone.
    pub delivered: usize,
    /// Rounds accepted by some client.
    pub rounds: usize,
    /// Longest heal-to-round gap (s).
    pub max_resume_s: f64,
    /// Largest node RSS (KiB).
    pub max_rss_kb: u64,
    /// Largest data folder (bytes).
    pub max_disk_bytes: u64,
}

/// Check the invariants over `obs`, with the panics counted in the node logs and the
/// largest data folder measured at the end.
pub fn check(obs: &Observations, panics: usize, max_disk_bytes: u64) -> Verdict {
    let sent = obs.sender_sent();
    let mut findings = Vec::new();
    let (mut lost, mut duplicated) = (0, 0);
    // Sorted, so the log of a replayed run reads the same.
    let mut expected: Vec<_> = obs.expected.iter().collect();
    expected.sort();
    for (text, (_, to)) in expected {
        let got = obs.received.get(text).cloned().unwrap_or_default();
        if sent.contains(text.as_str()) && !got.contains(to) {
            lost += 1;
            findings.push(Finding::Lost(text.clone()));
        }
        if got.len() > 1 || got.iter().any(|r| r != to) {
            duplicated += 1;
            findings.push(Finding::Duplicated(text.clone(), got));
        }
    }
    Verdict {
        lost,
        duplicated,
        divergent: obs.round_hashes.values().filter(|h| h.len() > 1).count(),
        panics,
        slow_resumes: obs
            .resume_gaps_s
            .iter()
            .filter(|g| **g > MAX_RESUME.as_secs_f64())
            .count(),
        memory_ok: obs.max_rss_kb < MAX_RSS_KB,
        disk_ok: max_disk_bytes < MAX_DISK_BYTES,
        findings,
        queued: obs.expected.len(),
        sent: sent.len(),
        delivered: obs
            .expected
            .keys()
            .filter(|t| obs.received.contains_key(*t))
            .count(),
        rounds: obs.round_hashes.len(),
        max_resume_s: obs.resume_gaps_s.iter().copied().fold(0.0, f64::max),
        max_rss_kb: obs.max_rss_kb,
        max_disk_bytes,
    }
}

impl Verdict {
    /// No invariant was violated.
    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.divergent == 0
            && self.panics == 0
            && self.slow_resumes == 0
            && self.memory_ok
            && self.disk_ok
    }

    /// The traffic and resource figures of the run.
    pub fn figures_line(&self) -> String {
        format!(
            "chaos: messages queued={} sent={} delivered={}; rounds accepted={}; max resume after heal={:.1}s; max node RSS={} MB; max data dir={} MB",
            self.queued,
            self.sent,
            self.delivered,
            self.rounds,
            self.max_resume_s,
            self.max_rss_kb / 1024,
            self.max_disk_bytes / (1024 * 1024)
        )
    }

    /// The summary line CI greps, with the seed to replay.
    pub fn summary_line(&self, seed: u64) -> String {
        format!(
            "lost={} duplicated={} divergent={} panics={} slow_resumes={} memory_ok={} disk_ok={} seed={seed}",
            self.lost,
            self.duplicated,
            self.divergent,
            self.panics,
            self.slow_resumes,
            self.memory_ok,
            self.disk_ok
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two clients; "a" and "b" sent and delivered, round 1 accepted by both alike.
    fn clean() -> (Observations, Instant) {
        let t0 = Instant::now();
        let mut o = Observations::default();
        o.queued(0, 1, "a".into(), 1);
        o.queued(1, 0, "b".into(), 1);
        o.sent(0, 1);
        o.sent(1, 1);
        o.received(1, "a".into());
        o.received(0, "b".into());
        o.round(1, "h1".into(), t0);
        o.round(1, "h1".into(), t0);
        o.rss_kb(100 * 1024);
        (o, t0)
    }

    #[test]
    fn a_clean_run_passes_with_the_line_ci_greps() {
        let (o, _) = clean();
        assert!(o.all_sent_arrived());
        let v = check(&o, 0, 10 << 20);
        assert!(v.ok(), "{v:?}");
        assert!(v
            .summary_line(1)
            .starts_with("lost=0 duplicated=0 divergent=0 panics=0"));
        assert_eq!(
            v.summary_line(7),
            "lost=0 duplicated=0 divergent=0 panics=0 slow_resumes=0 memory_ok=true disk_ok=true seed=7"
        );
        assert_eq!((v.queued, v.sent, v.delivered, v.rounds), (2, 2, 2, 1));
        assert_eq!(
            v.figures_line(),
            "chaos: messages queued=2 sent=2 delivered=2; rounds accepted=1; max resume after heal=0.0s; max node RSS=100 MB; max data dir=10 MB"
        );
    }

    #[test]
    fn a_sent_message_that_never_arrives_is_lost() {
        let (mut o, _) = clean();
        o.queued(0, 1, "c".into(), 2);
        o.sent(0, 2);
        assert!(!o.all_sent_arrived());
        let v = check(&o, 0, 0);
        assert_eq!(v.lost, 1);
        assert_eq!(v.findings, vec![Finding::Lost("c".into())]);
        assert!(!v.ok());
    }

    #[test]
    fn an_unsent_message_that_never_arrives_is_not_lost() {
        let (mut o, _) = clean();
        o.queued(0, 1, "still queued".into(), 2);
        assert!(o.all_sent_arrived());
        let v = check(&o, 0, 0);
        assert_eq!(v.lost, 0);
        assert_eq!((v.queued, v.sent), (3, 2));
        assert!(v.ok());
    }

    #[test]
    fn twice_or_to_the_wrong_client_is_duplicated() {
        let (mut o, _) = clean();
        o.received(1, "a".into());
        o.queued(0, 1, "misdelivered".into(), 3);
        o.received(0, "misdelivered".into());
        let v = check(&o, 0, 0);
        assert_eq!(v.duplicated, 2);
        // Misdelivered and never reached its recipient: lost only if the sender saw it
        // sent (it did not here).
        assert_eq!(v.lost, 0);
        assert!(v
            .findings
            .contains(&Finding::Duplicated("a".into(), vec![1, 1])));
        assert!(!v.ok());
    }

    #[test]
    fn different_outputs_for_one_round_diverge() {
        let (mut o, t0) = clean();
        o.round(2, "x".into(), t0);
        o.round(2, "y".into(), t0);
        o.round(3, "z".into(), t0);
        let v = check(&o, 0, 0);
        assert_eq!(v.divergent, 1);
        assert_eq!(v.rounds, 3);
        assert!(!v.ok());
    }

    #[test]
    fn panics_fail_the_run() {
        let (o, _) = clean();
        let v = check(&o, 2, 0);
        assert_eq!(v.panics, 2);
        assert!(v.summary_line(1).contains("panics=2"));
        assert!(!v.ok());
    }

    #[test]
    fn resumes_are_timed_from_each_heal_to_the_next_round() {
        let (mut o, t0) = clean();
        o.heal(t0);
        o.round(2, "h2".into(), t0 + Duration::from_secs(3));
        o.heal(t0 + Duration::from_secs(10));
        // A round accepted before the heal does not count for it.
        o.round(3, "h3".into(), t0 + Duration::from_secs(9));
        let v = check(&o, 0, 0);
        assert_eq!(v.slow_resumes, 0);
        assert!((v.max_resume_s - 3.0).abs() < 1e-9);
        o.round(4, "h4".into(), t0 + Duration::from_secs(16));
        let v = check(&o, 0, 0);
        assert_eq!(v.slow_resumes, 1);
        assert!(!v.ok());
    }

    #[test]
    fn memory_and_disk_are_bounded() {
        let (mut o, _) = clean();
        assert!(!check(&o, 0, MAX_DISK_BYTES).disk_ok);
        assert!(check(&o, 0, MAX_DISK_BYTES - 1).disk_ok);
        o.rss_kb(MAX_RSS_KB);
        o.rss_kb(1);
        let v = check(&o, 0, 0);
        assert!(!v.memory_ok);
        assert_eq!(v.max_rss_kb, MAX_RSS_KB);
        assert!(!v.ok());
    }
}
