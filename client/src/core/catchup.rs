//! Catch-up bookkeeping: fetch the outputs revealed since the last round we processed
//! from f+1 servers (each history answer carries the answering server's vouch).
//!
//! Servers are asked in index order, one at a time; a server's pages are followed while
//! they come back full. A server counts as answered once it returned at least one page.
//! [`super::ClientCore`] sends the requests [`CatchUp`] asks for and feeds it the
//! answers; the outputs in the pages go to the vouch book.

use protocol::wire::{ClientResponse, Round, ServerIndex, SignedOutput};

/// What to do after an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Ask `server` for history from `from_round`.
    Ask {
        /// Server.
        server: ServerIndex,
        /// First round wanted.
        from_round: Round,
    },
    /// Enough servers answered, or all were asked.
    Done,
}

/// What one answer brought.
#[derive(Debug, Default)]
pub struct PageResult {
    /// Signed outputs to offer to the vouch book.
    pub outputs: Vec<SignedOutput>,
    /// Rounds the servers no longer keep (reported once, from the first server).
    pub gap: Option<(Round, Round)>,
    /// The next request, if any.
    pub next: Option<Step>,
}

/// One catch-up run.
#[derive(Debug)]
pub struct CatchUp {
    start: Round,
    needed: usize,
    servers: usize,
    server: ServerIndex,
    from: Round,
    ok: bool,
    answered: usize,
}

impl CatchUp {
    /// Start after `last` processed round; `needed` = f+1 of `servers`.
    pub fn start(last: Round, needed: usize, servers: usize) -> (Self, Step) {
        let c = Self {
            start: last + 1,
            needed,
            servers,
            server: 0,
            from: last + 1,
            ok: false,
            answered: 0,
        };
        let step = c.ask();
        (c, step)
    }

    /// Servers that answered so far.
    pub fn answered(&self) -> usize {
        self.answered
    }

    /// The server whose answer is awaited.
    pub fn server(&self) -> ServerIndex {
        self.server
    }

    fn ask(&self) -> Step {
        Step::Ask {
            server: self.server,
            from_round: self.from,
        }
    }

    /// The awaited server answered (`Some`) or failed, timed out or said something else
    /// (`None`).
    pub fn on_answer(&mut self, answer: Option<ClientResponse>) -> PageResult {
        let mut out = PageResult::default();
        if let Some(ClientResponse::History {
            outputs,
            oldest_kept,
        }) = answer
        {
            self.ok = true;
            if let Some(oldest) = oldest_kept {
                if oldest > self.from && self.answered == 0 {
                    out.gap = Some((self.from, oldest - 1));
                }
            }
            let page = outputs.into_vec();
            let full = page.len() == protocol::limits::MAX_HISTORY_OUTPUTS;
            let next = page.last().map(|o| o.output.round.saturating_add(1));
            out.outputs = page;
            if let (Some(nx), true) = (next, full) {
                self.from = nx;
                out.next = Some(self.ask());
                return out;
            }
        }
        // This server is done.
        if self.ok {
            self.answered += 1;
        }
        self.ok = false;
        self.server += 1;
        self.from = self.start;
        out.next = Some(
            if self.answered >= self.needed || usize::from(self.server) >= self.servers {
                Step::Done
            } else {
                self.ask()
            },
        );
        out
    }
}
