//! The watermark and the catch-up it drives: which rounds are settled, when a catch-up
//! step starts, and what a finished step settles (see [`super::catchup`] for the rules).

use protocol::wire::{ClientRequest, Round, ServerIndex};

use super::catchup::CatchUp;
use super::{ClientCore, Job, LocalStore, HISTORY_TIMEOUT_MS};
use crate::event::Event;

impl<S: LocalStore> ClientCore<S> {
    /// Round `r` is settled (accepted, void, or lost for good): move the watermark
    /// over every contiguous settled round and persist it.
    pub(super) fn settle(&mut self, r: Round) {
        let w = *self.last_processed.get_or_insert(r.saturating_sub(1));
        if r > w {
            self.settled_above.insert(r);
        }
        let mut w = w;
        while self.settled_above.remove(&(w + 1)) {
            w += 1;
        }
        self.last_processed = Some(w);
        self.persist_watermark();
    }

    /// Store the watermark, unless outputs below it still wait to be processed (a crash
    /// then must fetch them again, not skip them).
    pub(super) fn persist_watermark(&mut self) {
        let Some(w) = self.last_processed else {
            return;
        };
        if self.deferred.is_empty()
            && self.stored_watermark != Some(w)
            && self.store.set_last_round(w).is_ok()
        {
            self.stored_watermark = Some(w);
        }
    }

    /// Everything up to `to` is lost for good (beyond the servers' retention).
    fn settle_through(&mut self, to: Round) {
        if self.last_processed.is_some_and(|w| w < to) {
            self.last_processed = Some(to);
            self.settled_above = self.settled_above.split_off(&(to + 1));
            self.settle(to);
        }
    }

    /// Start a catch-up step if rounds between the watermark and the newest one known
    /// are unsettled and none is running.
    pub(super) fn maybe_catch_up(&mut self, now_ms: u64) {
        let Some(w) = self.last_processed else {
            return;
        };
        let behind = !self.settled_above.is_empty() || self.newest_revealed > w;
        if !behind
            || self.catchup.is_some()
            || self.connected.is_empty()
            || now_ms < self.catch_up_not_before
        {
            return;
        }
        let n = self.cfg.server_sign.len();
        let c = CatchUp::start(w + 1, self.cfg.params.f() + 1, n);
        for server in 0..n as ServerIndex {
            let req = ClientRequest::History { from_round: w + 1 };
            self.send(
                server,
                req,
                Job::History { server },
                None,
                HISTORY_TIMEOUT_MS,
            );
        }
        self.catchup = Some(c);
    }

    /// A catch-up step is complete: report a gap, settle void rounds, and go on.
    pub(super) fn conclude_catch_up(&mut self, c: CatchUp, now_ms: u64) {
        let w = self.last_processed.unwrap_or(0);
        let settled = |r: Round| r <= w || self.settled_above.contains(&r);
        let done = c.conclude(&settled);
        if let Some((from_round, to_round)) = done.gap {
            if to_round > w {
                self.events.push_back(Event::Gap {
                    from_round: from_round.max(w + 1),
                    to_round,
                });
                self.settle_through(to_round);
            }
        }
        for r in done.void {
            self.settle(r);
        }
        let progressed = self.last_processed.unwrap_or(0) > w;
        if done.retry_later || !progressed {
            // Too few answered (connections still coming up, servers busy), or the
            // servers have not settled the rounds we wait for yet: try again in a while
            // rather than never, and rather than at once.
            self.catch_up_not_before = now_ms + self.cfg.round_ms.max(HISTORY_TIMEOUT_MS / 2);
        } else {
            self.maybe_catch_up(now_ms);
        }
    }
}
