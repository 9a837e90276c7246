//! The one Prometheus scraper of the harness: parse a node's `/metrics` text into
//! samples, and sum counters over a cluster by (family, reason).
//!
//! Used by the `abuse` binary (refusals by named reason, before and after an attack)
//! and by the suites that check a refusal was counted. Only `chorus_*` families are
//! read; lines that are comments or do not parse are skipped.

use std::collections::HashMap;

use crate::cluster::Cluster;

/// Counter totals keyed by (family, `reason` label; empty if the sample has none).
pub type Totals = HashMap<(String, String), u64>;

/// One sample line, e.g. `chorus_commands_rejected_total{reason="stale_round"} 3`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric family (the name before any `{`).
    pub family: String,
    /// The `reason` label, or empty.
    pub reason: String,
    /// The value.
    pub value: f64,
}

/// Every `chorus_*` sample in a `/metrics` text.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| l.starts_with("chorus_"))
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            let value = value.parse::<f64>().ok()?;
            let family = key.split('{').next().unwrap_or(key).to_string();
            let reason = key
                .split("reason=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_string();
            Some(Sample {
                family,
                reason,
                value,
            })
        })
        .collect()
}

/// Add the samples of one `/metrics` text to `totals`.
pub fn add(totals: &mut Totals, text: &str) {
    for s in parse(text) {
        *totals.entry((s.family, s.reason)).or_insert(0) += s.value as u64;
    }
}

/// The total of `family` with `reason` in one `/metrics` text (0 if absent).
pub fn total(text: &str, family: &str, reason: &str) -> u64 {
    let mut t = Totals::new();
    add(&mut t, text);
    get(&t, family, reason)
}

/// `totals[(family, reason)]`, 0 if absent.
pub fn get(totals: &Totals, family: &str, reason: &str) -> u64 {
    totals
        .get(&(family.to_string(), reason.to_string()))
        .copied()
        .unwrap_or(0)
}

/// How much (family, reason) grew from `before` to `after` (0 if it shrank: a restarted
/// node starts its counters again).
pub fn delta(after: &Totals, before: &Totals, family: &str, reason: &str) -> u64 {
    get(after, family, reason).saturating_sub(get(before, family, reason))
}

/// One node's `/metrics` text, if it answers.
pub async fn node_text(c: &Cluster, i: usize) -> Option<String> {
    let (_, text) = c.nodes.get(i)?.get("/metrics").await.ok()?;
    Some(text)
}

/// Counters summed over every node that answers.
pub async fn scrape(c: &Cluster) -> Totals {
    let mut out = Totals::new();
    for i in 0..c.nodes.len() {
        if let Some(text) = node_text(c, i).await {
            add(&mut out, &text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP chorus_commands_rejected_total Commands refused.\n\
# TYPE chorus_commands_rejected_total counter\n\
chorus_commands_rejected_total{reason=\"stale_round\"} 3\n\
chorus_commands_rejected_total{reason=\"bad_signature\"} 1\n\
chorus_connections_opened_total 12\n\
chorus_share_keeper_held_bytes 4096.0\n\
process_cpu_seconds_total 7\n\
chorus_broken_line\n\
# EOF\n";

    #[test]
    fn parses_families_reasons_and_values() {
        let s = parse(TEXT);
        assert_eq!(s.len(), 4);
        assert_eq!(
            s[0],
            Sample {
                family: "chorus_commands_rejected_total".into(),
                reason: "stale_round".into(),
                value: 3.0
            }
        );
        assert_eq!(s[2].reason, "");
        assert_eq!(s[3].value, 4096.0);
    }

    #[test]
    fn totals_by_family_and_reason() {
        assert_eq!(
            total(TEXT, "chorus_commands_rejected_total", "stale_round"),
            3
        );
        assert_eq!(total(TEXT, "chorus_connections_opened_total", ""), 12);
        assert_eq!(
            total(TEXT, "chorus_commands_rejected_total", "future_round"),
            0
        );
        assert_eq!(total(TEXT, "process_cpu_seconds_total", ""), 0);
    }

    #[test]
    fn totals_add_up_over_nodes_and_deltas_never_go_negative() {
        let mut before = Totals::new();
        add(&mut before, TEXT);
        let mut after = Totals::new();
        add(&mut after, TEXT);
        add(&mut after, TEXT);
        let fam = "chorus_commands_rejected_total";
        assert_eq!(get(&after, fam, "stale_round"), 6);
        assert_eq!(delta(&after, &before, fam, "stale_round"), 3);
        assert_eq!(delta(&before, &after, fam, "stale_round"), 0);
    }
}
