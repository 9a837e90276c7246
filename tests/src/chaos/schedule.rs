//! The chaos run's fault schedule: a pure function from a seed and the run's shape to a
//! list of timed faults (kill -9 then restart, SIGSTOP then SIGCONT, partition then
//! heal), and the small state machine that decides, given the time, which of them to
//! inject and which to heal.
//!
//! A seed always gives the same faults at the same offsets (the draws are in the same
//! order as when the schedule lived in the binary, so old seeds replay the same run).
//! Never more than `f` servers are faulted at once, and every fault has a heal.

use std::collections::VecDeque;
use std::time::Duration;

use rand::{Rng, SeedableRng};

/// Longest time a fault holds before it is healed.
pub const MAX_HOLD: Duration = Duration::from_millis(6000);

/// Healthy time after a heal before the next fault is injected, so "rounds resumed
/// within 5 s of a heal" is measured on a healed cluster.
pub const QUIET: Duration = Duration::from_secs(6);

/// Quiet time after the traffic ends in which everything sent must arrive; longer than
/// `MAX_HOLD`, so the last fault is healed inside it.
pub const DRAIN: Duration = Duration::from_secs(30);

const _: () = assert!(DRAIN.as_millis() > MAX_HOLD.as_millis());

/// One kind of fault, and its heal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// kill -9; healed by a restart on the same config and data.
    Kill,
    /// SIGSTOP; healed by SIGCONT.
    Pause,
    /// Cut the node off from every other server (clients still reach it); healed by
    /// removing the cut.
    Partition,
}

/// The shape of a chaos run.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Seed of the schedule.
    pub seed: u64,
    /// Faults start before this offset (the traffic phase).
    pub duration: Duration,
    /// Servers.
    pub nodes: usize,
    /// Most servers faulted at once.
    pub f: usize,
    /// Partitions may be drawn (the nodes run in network namespaces).
    pub partitions: bool,
}

/// Most faulty servers `n` servers tolerate: f with n >= 2f + 1.
pub fn max_faulty(n: usize) -> usize {
    n.saturating_sub(1) / 2
}

/// One planned fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planned {
    /// Offset from the start of the run.
    pub at: Duration,
    /// Server index.
    pub node: usize,
    /// What is done to it.
    pub fault: Fault,
    /// How long until it is healed.
    pub hold: Duration,
}

impl Planned {
    /// When the plan heals it (offset from the start).
    pub fn heal_at(&self) -> Duration {
        self.at + self.hold
    }
}

/// The faults of a run, in order of `at`. Groups of up to `f` faults on consecutive
/// servers start together and hold 2–6 s; the next group starts 3–8 s after the heal.
pub fn plan(shape: &Shape) -> Vec<Planned> {
    let mut out = Vec::new();
    if shape.f == 0 || shape.nodes == 0 {
        return out;
    }
    // At most f < n servers per group, so the group's nodes are distinct.
    let f = shape.f.min(shape.nodes - 1);
    if f == 0 {
        return out;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(shape.seed);
    let kinds: &[Fault] = if shape.partitions {
        &[Fault::Kill, Fault::Pause, Fault::Partition]
    } else {
        &[Fault::Kill, Fault::Pause]
    };
    let mut at = Duration::from_secs(rng.gen_range(4..8));
    while at < shape.duration {
        let hold = Duration::from_millis(rng.gen_range(2000..MAX_HOLD.as_millis() as u64));
        let width = rng.gen_range(1..=f);
        let first = rng.gen_range(0..shape.nodes);
        for k in 0..width {
            let fault = kinds[rng.gen_range(0..kinds.len())];
            out.push(Planned {
                at,
                node: (first + k) % shape.nodes,
                fault,
                hold,
            });
        }
        at += hold + Duration::from_secs(rng.gen_range(3..8));
    }
    out
}

/// A fault in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Active {
    /// Server index.
    pub node: usize,
    /// What was done to it.
    pub fault: Fault,
    /// When to heal it (offset from the start).
    pub heal_at: Duration,
}

/// Walks a plan against the clock of the run (offsets from its start). A fault due while
/// `f` are active or within `QUIET` of the last heal waits; one due on a node that is
/// already faulted is dropped. Its hold counts from when it was injected.
#[derive(Debug)]
pub struct Executor {
    pending: VecDeque<Planned>,
    active: Vec<Active>,
    last_heal: Option<Duration>,
    f: usize,
}

impl Executor {
    /// Execute `plan` with at most `f` faults at once.
    pub fn new(plan: Vec<Planned>, f: usize) -> Self {
        Self {
            pending: plan.into(),
            active: Vec::new(),
            last_heal: None,
            f,
        }
    }

    /// Faults whose hold is over at `now`: the caller heals them, then calls `healed`.
    pub fn heals_due(&mut self, now: Duration) -> Vec<Active> {
        let (due, still) = self.active.drain(..).partition(|a| now >= a.heal_at);
        self.active = still;
        due
    }

    /// Every fault still in force (at the end of the run).
    pub fn heal_all(&mut self) -> Vec<Active> {
        self.pending.clear();
        std::mem::take(&mut self.active)
    }

    /// A heal was done at `now`.
    pub fn healed(&mut self, now: Duration) {
        self.last_heal = Some(now);
    }

    /// Faults to inject at `now`; they count as active from now on.
    pub fn faults_due(&mut self, now: Duration) -> Vec<Planned> {
        let mut out = Vec::new();
        while self.pending.front().is_some_and(|p| p.at <= now)
            && self.active.len() < self.f
            && self.last_heal.is_none_or(|h| now >= h + QUIET)
        {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            if self.active.iter().any(|a| a.node == p.node) {
                continue;
            }
            self.active.push(Active {
                node: p.node,
                fault: p.fault,
                heal_at: now + p.hold,
            });
            out.push(p);
        }
        out
    }

    /// Faults in force.
    pub fn active(&self) -> &[Active] {
        &self.active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(seed: u64, nodes: usize, partitions: bool) -> Shape {
        Shape {
            seed,
            duration: Duration::from_secs(600),
            nodes,
            f: max_faulty(nodes),
            partitions,
        }
    }

    /// Most faults in force at any instant of the plan, per node and overall.
    fn most_at_once(p: &[Planned]) -> usize {
        p.iter()
            .map(|x| {
                p.iter()
                    .filter(|y| y.at <= x.at && x.at < y.heal_at())
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn f_is_the_minority_that_can_fail() {
        assert_eq!(max_faulty(1), 0);
        assert_eq!(max_faulty(2), 0);
        assert_eq!(max_faulty(3), 1);
        assert_eq!(max_faulty(5), 2);
        assert_eq!(max_faulty(7), 3);
    }

    #[test]
    fn same_seed_same_schedule() {
        for seed in 0..20 {
            assert_eq!(plan(&shape(seed, 5, true)), plan(&shape(seed, 5, true)));
        }
    }

    #[test]
    fn different_seeds_differ() {
        let plans: Vec<_> = (0..20).map(|s| plan(&shape(s, 3, true))).collect();
        for (i, a) in plans.iter().enumerate() {
            for b in &plans[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn never_more_than_f_faulted_at_once() {
        for nodes in [3, 4, 5, 7] {
            for seed in 0..50 {
                let p = plan(&shape(seed, nodes, true));
                assert!(!p.is_empty());
                assert!(
                    most_at_once(&p) <= max_faulty(nodes),
                    "seed {seed} n {nodes}"
                );
                // No node is faulted twice at once.
                for x in &p {
                    let same = p
                        .iter()
                        .filter(|y| y.node == x.node && y.at <= x.at && x.at < y.heal_at());
                    assert_eq!(same.count(), 1);
                }
            }
        }
    }

    #[test]
    fn every_fault_is_healed_before_the_drain_ends() {
        for seed in 0..50 {
            let s = Shape {
                duration: Duration::from_secs(60),
                ..shape(seed, 3, true)
            };
            for x in plan(&s) {
                assert!(x.at < s.duration);
                assert!(x.hold >= Duration::from_secs(2) && x.hold < MAX_HOLD);
                assert!(x.heal_at() < s.duration + DRAIN);
                assert!(x.node < s.nodes);
            }
        }
    }

    #[test]
    fn partitions_only_when_enabled() {
        for seed in 0..50 {
            assert!(plan(&shape(seed, 3, false))
                .iter()
                .all(|x| x.fault != Fault::Partition));
        }
        let all: Vec<Fault> = (0..50)
            .flat_map(|s| plan(&shape(s, 3, true)))
            .map(|x| x.fault)
            .collect();
        for kind in [Fault::Kill, Fault::Pause, Fault::Partition] {
            assert!(all.contains(&kind), "{kind:?} never drawn");
        }
    }

    #[test]
    fn no_faults_without_a_tolerable_minority() {
        assert!(plan(&shape(1, 1, true)).is_empty());
        assert!(plan(&shape(1, 2, true)).is_empty());
    }

    /// The schedule as the chaos binary drew it before it moved here, verbatim.
    fn legacy(seed: u64, secs: u64, n: usize, partitions: bool) -> Vec<Planned> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let f = (n - 1) / 2;
        let mut schedule = Vec::new();
        let mut at = Duration::from_secs(rng.gen_range(4..8));
        while at < Duration::from_secs(secs) {
            let hold = Duration::from_millis(rng.gen_range(2000..6000));
            let width = rng.gen_range(1..=f.max(1));
            let first = rng.gen_range(0..n);
            for k in 0..width {
                let kinds: &[Fault] = if partitions {
                    &[Fault::Kill, Fault::Pause, Fault::Partition]
                } else {
                    &[Fault::Kill, Fault::Pause]
                };
                let fault = kinds[rng.gen_range(0..kinds.len())];
                schedule.push(Planned {
                    at,
                    node: (first + k) % n,
                    fault,
                    hold,
                });
            }
            at += hold + Duration::from_secs(rng.gen_range(3..8));
        }
        schedule
    }

    #[test]
    fn old_seeds_replay_the_schedule_they_always_had() {
        // Figures and logs from earlier runs (CI: seed 1, 60 s; docs: seed 7, 600 s)
        // stay reproducible.
        for (seed, secs, n, partitions) in [(1, 60, 3, false), (7, 600, 3, true), (3, 300, 5, true)]
        {
            let s = Shape {
                seed,
                duration: Duration::from_secs(secs),
                nodes: n,
                f: max_faulty(n),
                partitions,
            };
            assert_eq!(plan(&s), legacy(seed, secs, n, partitions), "seed {seed}");
        }
    }

    /// Drive an executor over a plan with a loop that ticks every `tick`, healing what is
    /// due and injecting what is due; returns the largest number active at once and the
    /// injected faults.
    fn drive(p: Vec<Planned>, f: usize, end: Duration, tick: Duration) -> (usize, usize) {
        let mut ex = Executor::new(p, f);
        let (mut most, mut injected) = (0, 0);
        let mut now = Duration::ZERO;
        while now < end {
            if !ex.heals_due(now).is_empty() {
                ex.healed(now);
            }
            injected += ex.faults_due(now).len();
            most = most.max(ex.active().len());
            // No node twice.
            let mut nodes: Vec<usize> = ex.active().iter().map(|a| a.node).collect();
            nodes.sort_unstable();
            nodes.dedup();
            assert_eq!(nodes.len(), ex.active().len());
            now += tick;
        }
        ex.heal_all();
        assert!(ex.active().is_empty());
        (most, injected)
    }

    #[test]
    fn the_executor_keeps_to_f_even_when_the_loop_is_slow() {
        for nodes in [3, 5] {
            for seed in 0..20 {
                let s = shape(seed, nodes, true);
                let end = s.duration + DRAIN;
                for tick in [Duration::from_millis(50), Duration::from_secs(3)] {
                    let (most, injected) = drive(plan(&s), s.f, end, tick);
                    assert!(most <= s.f);
                    assert!(injected > 0);
                }
            }
        }
    }

    #[test]
    fn the_executor_waits_quietly_after_a_heal() {
        let p = vec![
            Planned {
                at: Duration::from_secs(1),
                node: 0,
                fault: Fault::Kill,
                hold: Duration::from_secs(2),
            },
            Planned {
                at: Duration::from_secs(4),
                node: 1,
                fault: Fault::Pause,
                hold: Duration::from_secs(2),
            },
        ];
        let mut ex = Executor::new(p, 1);
        assert_eq!(ex.faults_due(Duration::from_secs(1)).len(), 1);
        assert!(ex.heals_due(Duration::from_secs(2)).is_empty());
        assert_eq!(ex.heals_due(Duration::from_secs(3)).len(), 1);
        ex.healed(Duration::from_secs(3));
        // Due at 4 s, but the last heal was at 3 s: waits until 9 s.
        assert!(ex.faults_due(Duration::from_secs(4)).is_empty());
        assert!(ex.faults_due(Duration::from_millis(8999)).is_empty());
        let late = ex.faults_due(Duration::from_secs(9));
        assert_eq!(late.len(), 1);
        // Its hold counts from the injection.
        assert_eq!(ex.active()[0].heal_at, Duration::from_secs(11));
    }
}
