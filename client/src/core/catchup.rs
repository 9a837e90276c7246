//! Catch-up: every round between the watermark and the newest one known is fetched and
//! settled, whatever the length of the absence.
//!
//! The *watermark* `W` is the contiguous prefix of settled rounds: every round `<= W`
//! was accepted (f+1 vouches), is known void, or was reported as a gap. A round is
//! fetched until it is settled; nothing is skipped because a newer round arrived first.
//!
//! One step asks every server for the same page, `History { from: W + 1 }`, so the
//! pages line up and their vouches meet in the vouch book (no server's 500 rounds are
//! read before another's). A server's answer counts only if every output in it carries
//! that server's valid vouch. From the answers that count:
//!
//! - a round the servers no longer keep on f+1 of them is a *gap*, reported once with
//!   its exact range;
//! - each answer *covers* rounds up to the last output of a full page, or up to the
//!   server's `settled_through` for a short one; a round covered by f+1 answers that
//!   none of them holds was void (or abandoned) and is settled without an output;
//! - a round some answer holds but that is not accepted yet stays open: it is asked for
//!   again next step.
//!
//! [`super::ClientCore`] sends the requests a [`Step`] asks for and feeds the answers
//! back; the outputs go to the vouch book, and accepted rounds come back through
//! [`CatchUp::conclude`]'s caller.

use std::collections::{BTreeMap, BTreeSet};

use protocol::wire::{Round, ServerIndex, SignedOutput};

/// One server's page, as far as catch-up needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Rounds whose outputs it held (with this server's valid vouch).
    pub rounds: BTreeSet<Round>,
    /// Whether the page was full (more may follow).
    pub full: bool,
    /// The oldest round it keeps, if any.
    pub oldest_kept: Option<Round>,
    /// Every round up to this one is settled on that server.
    pub settled_through: Option<Round>,
}

impl Page {
    /// The last round this page speaks for.
    fn covered(&self) -> Option<Round> {
        if self.full {
            self.rounds.last().copied()
        } else {
            self.settled_through
        }
    }
}

/// What a concluded step found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Conclusion {
    /// Rounds lost for good (no f+1 servers keep them): report them.
    pub gap: Option<(Round, Round)>,
    /// Rounds with no output on f+1 servers that cover them (void or abandoned).
    pub void: Vec<Round>,
    /// Whether to ask for the next page right away.
    pub more: bool,
    /// Fewer than f+1 answers counted: try again later.
    pub retry_later: bool,
}

/// One catch-up step: a page from every server, from the same round.
#[derive(Debug)]
pub struct CatchUp {
    from: Round,
    needed: usize,
    waiting: BTreeSet<ServerIndex>,
    pages: BTreeMap<ServerIndex, Page>,
}

impl CatchUp {
    /// Ask each of `servers` for the page from `from` (= W + 1); `needed` = f+1.
    pub fn start(from: Round, needed: usize, servers: usize) -> Self {
        Self {
            from,
            needed,
            waiting: (0..servers as ServerIndex).collect(),
            pages: BTreeMap::new(),
        }
    }

    /// The round this step's pages start at.
    pub fn from(&self) -> Round {
        self.from
    }

    /// The servers still to answer.
    pub fn waiting(&self) -> &BTreeSet<ServerIndex> {
        &self.waiting
    }

    /// Server `s` answered with a page (`Some`, only if every vouch in it was valid) or
    /// failed (`None`). True once every server has answered or failed.
    pub fn on_answer(&mut self, s: ServerIndex, page: Option<Page>) -> bool {
        if self.waiting.remove(&s) {
            if let Some(p) = page {
                self.pages.insert(s, p);
            }
        }
        self.waiting.is_empty()
    }

    /// Settle what the pages allow, given the rounds accepted so far.
    pub fn conclude(&self, accepted: &dyn Fn(Round) -> bool) -> Conclusion {
        let mut out = Conclusion::default();
        if self.pages.len() < self.needed {
            out.retry_later = true;
            return out;
        }
        // A round is retrievable if f+1 servers keep it: the (f+1)-th smallest
        // oldest_kept bounds what is gone. Servers with nothing kept count as keeping
        // nothing older than what they cover.
        let mut oldest: Vec<Round> = self
            .pages
            .values()
            .map(|p| {
                p.oldest_kept
                    .unwrap_or_else(|| p.settled_through.map_or(self.from, |t| t + 1))
            })
            .collect();
        oldest.sort_unstable();
        let mut next = self.from;
        if let Some(&kept_from) = oldest.get(self.needed - 1) {
            if kept_from > self.from {
                out.gap = Some((self.from, kept_from - 1));
                next = kept_from;
            }
        }
        // Rounds covered by f+1 answers: up to the (f+1)-th largest cover.
        let mut covers: Vec<Round> = self.pages.values().filter_map(Page::covered).collect();
        covers.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&covered) = covers.get(self.needed - 1) else {
            out.more = out.gap.is_some();
            return out;
        };
        let held: BTreeSet<Round> = self
            .pages
            .values()
            .flat_map(|p| p.rounds.iter().copied())
            .collect();
        for r in next..=covered {
            if !accepted(r) && !held.contains(&r) {
                out.void.push(r);
            }
        }
        // More to fetch if any page was full, or something held is still unsettled.
        out.more = self.pages.values().any(|p| p.full) || out.gap.is_some();
        out
    }
}

/// A page from a history answer: the rounds of the outputs in it, if `valid` says every
/// one carries the answering server's own valid vouch.
pub fn page_of(
    outputs: &[SignedOutput],
    server: ServerIndex,
    valid: impl Fn(&SignedOutput) -> bool,
    oldest_kept: Option<Round>,
    settled_through: Option<Round>,
) -> Option<Page> {
    let mut rounds = BTreeSet::new();
    for o in outputs {
        if o.vouch.server != server || !valid(o) {
            return None;
        }
        rounds.insert(o.output.round);
    }
    Some(Page {
        full: outputs.len() >= protocol::limits::MAX_HISTORY_OUTPUTS,
        rounds,
        oldest_kept,
        settled_through,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(rounds: &[Round], full: bool, oldest: Option<Round>, settled: Round) -> Page {
        Page {
            rounds: rounds.iter().copied().collect(),
            full,
            oldest_kept: oldest,
            settled_through: Some(settled),
        }
    }

    #[test]
    fn void_rounds_are_settled_only_where_f_plus_one_answers_cover_them() {
        let mut c = CatchUp::start(11, 2, 3);
        // Rounds 11..=20: 12 and 15 were void; server 2 lags at 14.
        let all = [11, 13, 14, 16, 17, 18, 19, 20];
        assert!(!c.on_answer(0, Some(page(&all, false, Some(1), 20))));
        assert!(!c.on_answer(1, Some(page(&all, false, Some(1), 20))));
        assert!(c.on_answer(2, Some(page(&[11, 13, 14], false, Some(1), 14))));
        let accepted = |r: Round| all.contains(&r);
        let done = c.conclude(&accepted);
        assert_eq!(done.void, vec![12, 15]);
        assert_eq!(done.gap, None);
        assert!(!done.more);
    }

    #[test]
    fn a_round_one_server_holds_is_never_settled_as_void() {
        let mut c = CatchUp::start(5, 2, 3);
        c.on_answer(0, Some(page(&[5, 6], false, Some(1), 6)));
        // Server 1 omits round 5 (a liar, or a bug): it is held elsewhere, so not void.
        c.on_answer(1, Some(page(&[6], false, Some(1), 6)));
        c.on_answer(2, None);
        let done = c.conclude(&|r| r == 6);
        assert!(done.void.is_empty(), "{done:?}");
    }

    #[test]
    fn rounds_no_f_plus_one_servers_keep_are_one_gap() {
        let mut c = CatchUp::start(3, 2, 3);
        c.on_answer(0, Some(page(&[40, 41], false, Some(40), 41)));
        c.on_answer(1, Some(page(&[40, 41], false, Some(40), 41)));
        // One server kept more: still a gap, since one server cannot vouch alone.
        c.on_answer(2, Some(page(&[10, 40, 41], false, Some(10), 41)));
        let done = c.conclude(&|r| r >= 40);
        assert_eq!(done.gap, Some((3, 39)));
        assert!(done.void.is_empty());
    }

    #[test]
    fn too_few_answers_settle_nothing() {
        let mut c = CatchUp::start(3, 2, 3);
        c.on_answer(0, Some(page(&[3], false, Some(1), 3)));
        c.on_answer(1, None);
        assert!(c.on_answer(2, None));
        assert!(c.conclude(&|_| false).retry_later);
    }

    #[test]
    fn a_full_page_asks_for_more() {
        let full: Vec<Round> = (100..164).collect();
        let mut c = CatchUp::start(100, 2, 3);
        for s in 0..3 {
            c.on_answer(s, Some(page(&full, true, Some(1), 500)));
        }
        let done = c.conclude(&|r| (100..164).contains(&r));
        assert!(done.more);
        assert!(
            done.void.is_empty(),
            "covered only to the page's end: {done:?}"
        );
    }
}
