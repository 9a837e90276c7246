//! The leader's round clock. It runs on every node (ticked by the consensus actor) and
//! acts only on the leader. Time enters the replicated state only through what it commits:
//!
//! - `Init(params)`, once, if the cluster has no committed parameters yet;
//! - `Close(r)` when the open round has been open `round_ms` and has held shares here
//!   for at least half of it, and shares have stopped arriving for
//!   [`RoundClock::quiet`] (or it has held shares for [`RoundClock::longest`]): clients
//!   submit to round `r` once they hold the output of `r − 1`, which lays it out, so the
//!   round's time runs while that output is summed and published; a large population
//!   whose uploads take longer than `round_ms` to come in is not cut in two (once as
//!   many shares are in as the last round closed with, a shorter quiet will do), and a
//!   trickle of late uploads cannot hold a round open for more than `longest` after
//!   its first share;
//! - `Decide(r)` when a closed round has had lists of held shares from `n − f` servers
//!   for [`RoundClock::list_grace`] without all `n` (a server is down or slow), or has
//!   waited [`RoundClock::give_up`] for them (it is then decided or, with fewer than
//!   `t + 1` lists, void);
//! - `Finalize(r)` when a decided round has had `t + 1` reveals for [`RoundClock::grace`]
//!   without reaching an output (a server is down or slow): the state machine then
//!   decides with the reveals that are in.
//!
//! An empty round stays open (an idle cluster writes nothing to its log); a round that
//! was empty for long closes half a round after its first share. After a leader change
//! the new leader waits a full round.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::Raft;
use protocol::wire::{Command, Round};
use protocol::Params;

use crate::client_api::SharedHeld;
use crate::net::NetHandle;
use crate::store::SharedSm;
use crate::types::TypeConfig;
use crate::write::write;

/// The leader's round clock.
pub struct RoundClock {
    raft: Raft<TypeConfig>,
    net: NetHandle,
    sm: SharedSm,
    held: SharedHeld,
    params: Params,
    round: Duration,
    seen_round: Round,
    opened_at: Instant,
    /// When the leader first held a share of the open round.
    first_share: Option<Instant>,
    /// Shares of the open round held here at the last tick, and when that count last grew.
    held_count: usize,
    /// Shares held when the leader last closed a round: once as many are in, the round
    /// waits only [`RoundClock::quiet_when_all_in`] for more.
    expected: usize,
    last_arrival: Instant,
    closing: Arc<AtomicBool>,
    /// Closed rounds with t+1 reveals and no output yet, since when.
    revealable_since: BTreeMap<Round, Instant>,
    /// Closed undecided rounds: since when closed, and since when n − f lists are in.
    undecided_since: BTreeMap<Round, (Instant, Option<Instant>)>,
    busy_finalizing: Arc<AtomicBool>,
    busy_deciding: Arc<AtomicBool>,
    busy_initialising: Arc<AtomicBool>,
}

impl RoundClock {
    /// A clock for rounds of `round`.
    pub fn new(
        raft: Raft<TypeConfig>,
        net: NetHandle,
        sm: SharedSm,
        held: SharedHeld,
        params: Params,
        round: Duration,
    ) -> Self {
        Self {
            raft,
            net,
            sm,
            held,
            params,
            round,
            seen_round: 0,
            opened_at: Instant::now(),
            first_share: None,
            held_count: 0,
            expected: 0,
            last_arrival: Instant::now(),
            closing: Arc::new(AtomicBool::new(false)),
            revealable_since: BTreeMap::new(),
            undecided_since: BTreeMap::new(),
            busy_finalizing: Arc::new(AtomicBool::new(false)),
            busy_deciding: Arc::new(AtomicBool::new(false)),
            busy_initialising: Arc::new(AtomicBool::new(false)),
        }
    }

    /// How long a round with t+1 reveals waits for more before the leader finalizes it:
    /// long enough that honest servers' reveals are in (so a lie among the first t+1 is
    /// outvoted), short enough that a server being down costs seconds, not the round.
    pub fn grace(&self) -> Duration {
        (self.round * 3).max(Duration::from_secs(1))
    }

    /// How long a round with lists from n − f servers waits for the rest: every live
    /// server lists right after `Close`, so this is only ever spent when one is down.
    pub fn list_grace(&self) -> Duration {
        self.round.max(Duration::from_millis(500))
    }

    /// How long no new share must have arrived before a due round is closed: long
    /// against the gaps between uploads that are still streaming in, short against a
    /// round.
    pub fn quiet(&self) -> Duration {
        (self.round / 4).max(Duration::from_millis(60))
    }

    /// How long no new share must have arrived before a due round that holds as many
    /// shares as the last round closed with is closed: short, since everyone who was in
    /// is in, but not zero, so a growing population keeps growing.
    pub fn quiet_when_all_in(&self) -> Duration {
        self.quiet() / 4
    }

    /// The longest a round stays open after its first share, waiting for arrivals to
    /// stop.
    pub fn longest(&self) -> Duration {
        self.round * 4
    }

    /// How long a closed round waits for n − f lists before it is decided with what is
    /// in (void below t + 1), so a round never waits forever.
    pub fn give_up(&self) -> Duration {
        self.grace() * 4
    }

    /// Check the clock; called every few tens of milliseconds.
    pub fn tick(&mut self) {
        let leader = self.raft.metrics().borrow().state.is_leader();
        let needed = self.params.reveals_needed();
        let quorum = (usize::from(self.params.servers) - self.params.f()).max(needed);
        let (open, initialised, revealable, undecided) = self
            .sm
            .read()
            .map(|d| {
                let s = d.machine.state();
                let revealable: Vec<Round> = s
                    .awaiting
                    .iter()
                    .filter(|(_, c)| c.reveals.len() >= needed)
                    .map(|(r, _)| *r)
                    .collect();
                let undecided: Vec<(Round, bool)> = s
                    .awaiting
                    .iter()
                    .filter(|(_, c)| c.decided.is_none())
                    .map(|(r, c)| (*r, c.haves.len() >= quorum))
                    .collect();
                (s.open_round, s.genesis.is_some(), revealable, undecided)
            })
            .unwrap_or((0, true, Vec::new(), Vec::new()));
        let held = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .count(open);
        let now = Instant::now();
        self.revealable_since.retain(|r, _| revealable.contains(r));
        for r in revealable {
            self.revealable_since.entry(r).or_insert(now);
        }
        self.undecided_since
            .retain(|r, _| undecided.iter().any(|(u, _)| u == r));
        for (r, quorate) in undecided {
            let since = self.undecided_since.entry(r).or_insert((now, None));
            if quorate && since.1.is_none() {
                since.1 = Some(now);
            }
        }
        if !leader {
            self.seen_round = open;
            self.opened_at = now;
            self.first_share = None;
            return;
        }
        if !initialised {
            self.initialise();
        }
        self.finalize_overdue(now);
        self.decide_overdue(now);
        if open != self.seen_round {
            // A new round opened: its full time starts now.
            self.seen_round = open;
            self.opened_at = now;
            self.first_share = None;
            self.held_count = 0;
        }
        if held == 0 {
            // An empty round stays open: an idle cluster writes nothing to its log.
            return;
        }
        let first = *self.first_share.get_or_insert(now);
        if held != self.held_count {
            self.held_count = held;
            self.last_arrival = now;
        }
        let open_for = now.duration_since(self.opened_at);
        let holding_for = now.duration_since(first);
        let due = open_for >= self.round && holding_for >= self.round / 2;
        let silent = now.duration_since(self.last_arrival);
        let all_in = self.expected > 0 && held >= self.expected;
        let settled = silent >= self.quiet()
            || (all_in && silent >= self.quiet_when_all_in())
            || holding_for >= self.longest();
        if !due || !settled || self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.expected = held;
        let (raft, net, closing) = (self.raft.clone(), self.net.clone(), self.closing.clone());
        tokio::spawn(async move {
            if let Err(e) = write(&raft, &net, Command::Close { round: open }).await {
                tracing::warn!(round = open, error = %e, "could not close the round");
            }
            closing.store(false, Ordering::Release);
        });
    }

    /// Commit our parameters as the cluster's, once.
    fn initialise(&self) {
        let cmd = Command::Init(Box::new(self.params.clone()));
        self.commit_once(&self.busy_initialising, cmd, "the cluster parameters");
    }

    fn decide_overdue(&self, now: Instant) {
        let (list_grace, give_up) = (self.list_grace(), self.give_up());
        let overdue = self
            .undecided_since
            .iter()
            .find(|(_, (closed, quorate))| {
                quorate.is_some_and(|q| now.duration_since(q) >= list_grace)
                    || now.duration_since(*closed) >= give_up
            })
            .map(|(r, _)| *r);
        if let Some(round) = overdue {
            self.commit_once(
                &self.busy_deciding,
                Command::Decide { round },
                "a decision on a round short of lists",
            );
        }
    }

    fn finalize_overdue(&self, now: Instant) {
        let grace = self.grace();
        let overdue = self
            .revealable_since
            .iter()
            .find(|(_, since)| now.duration_since(**since) >= grace)
            .map(|(r, _)| *r);
        if let Some(round) = overdue {
            self.commit_once(
                &self.busy_finalizing,
                Command::Finalize { round },
                "a round short of reveals, finalized",
            );
        }
    }

    /// Write `cmd` in its own task unless a write of its kind (`busy`) is in flight.
    fn commit_once(&self, busy: &Arc<AtomicBool>, cmd: Command, what: &'static str) {
        if busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let (raft, net, busy) = (self.raft.clone(), self.net.clone(), busy.clone());
        tokio::spawn(async move {
            tracing::debug!("committing {what}");
            if let Err(e) = write(&raft, &net, cmd).await {
                tracing::warn!(error = %e, "could not commit {what}");
            }
            busy.store(false, Ordering::Release);
        });
    }
}
