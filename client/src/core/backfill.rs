//! History for a newcomer to a room: the retained outputs of the rounds before it
//! joined, fetched from the servers and read with the epoch keys it was handed.
//!
//! Part of [`super::ClientCore`]. Each server is asked for pages from the first round the
//! handed keys cover, one page at a time, as a catching-up client asks; a round counts
//! once f+1 servers returned the same output (their vouches checked), and only its room
//! slots are read, in history mode: texts and membership notes are stored, nothing in
//! them changes the room. What a server learns is what a catch-up tells it: that this
//! client wants rounds from some round on. A server that fails is left out; the others
//! are enough while f+1 answer.

use std::collections::{BTreeMap, BTreeSet};

use protocol::wire::{ClientRequest, ClientResponse, Round, RoundOutput, ServerIndex};

use super::{ClientCore, Job, LocalStore};

/// Rounds of history a newcomer reads at most.
pub const MAX_BACKFILL_ROUNDS: u64 = 100_000;

/// One round's outputs as servers returned them: hash → (who returned it, the output).
type Copies = BTreeMap<[u8; 32], (BTreeSet<ServerIndex>, RoundOutput)>;

/// A history fetch in progress.
#[derive(Default)]
pub struct Backfill {
    to: Round,
    /// Per server still asked: the next round it is asked from.
    next: BTreeMap<ServerIndex, Round>,
    /// Per round: output hash → (servers that returned it, the output).
    seen: BTreeMap<Round, Copies>,
    /// Rounds already read.
    done: BTreeSet<Round>,
}

impl<S: LocalStore> ClientCore<S> {
    /// Fetch rounds `from..=to` for room history (merged with a fetch already running).
    pub(super) fn start_backfill(&mut self, from: Round, to: Round) {
        if from > to {
            return;
        }
        let from = from.max(to.saturating_sub(MAX_BACKFILL_ROUNDS));
        let b = self.backfill.get_or_insert_with(Backfill::default);
        b.to = b.to.max(to);
        let n = self.cfg.server_sign.len() as ServerIndex;
        for s in 0..n {
            let at = b.next.entry(s).or_insert(from);
            *at = (*at).min(from);
        }
        for s in 0..n {
            self.ask_backfill(s);
        }
    }

    fn ask_backfill(&mut self, server: ServerIndex) {
        let Some(b) = &self.backfill else {
            return;
        };
        let Some(&from) = b.next.get(&server) else {
            return;
        };
        let out = self
            .in_flight
            .values()
            .any(|f| matches!(f.job, Job::Backfill { server: s } if s == server));
        if out {
            return;
        }
        let t = self.ask_timeout_ms();
        let req = ClientRequest::History { from_round: from };
        self.send(server, req, Job::Backfill { server }, None, t);
    }

    /// A server's page for the history fetch (or its failure).
    pub(super) fn on_backfill_page(
        &mut self,
        server: ServerIndex,
        result: Result<ClientResponse, String>,
        now_ms: u64,
    ) {
        let quorum = self.cfg.params.f() + 1;
        let mut ready = Vec::new();
        {
            let vouches = &self.vouches;
            let Some(b) = self.backfill.as_mut() else {
                return;
            };
            let outputs = match result {
                Ok(ClientResponse::History { outputs, .. }) => outputs.into_vec(),
                _ => Vec::new(),
            };
            let mut last = None;
            for signed in outputs {
                let r = signed.output.round;
                if signed.vouch.server != server || !vouches.vouch_valid(&signed) || r > b.to {
                    continue;
                }
                last = Some(last.unwrap_or(r).max(r));
                if b.done.contains(&r) {
                    continue;
                }
                let hash = signed.output.hash();
                let entry = b
                    .seen
                    .entry(r)
                    .or_default()
                    .entry(hash)
                    .or_insert_with(|| (BTreeSet::new(), signed.output.clone()));
                entry.0.insert(server);
                if entry.0.len() >= quorum {
                    ready.push(entry.1.clone());
                    b.done.insert(r);
                    b.seen.remove(&r);
                }
            }
            match last {
                Some(l) if l < b.to => {
                    b.next.insert(server, l + 1);
                }
                _ => {
                    b.next.remove(&server);
                }
            }
        }
        ready.sort_by_key(|o| o.round);
        for output in &ready {
            self.read_room_history(output, now_ms);
        }
        if !ready.is_empty() {
            self.save_rooms();
        }
        if self.backfill.as_ref().is_some_and(|b| b.next.is_empty()) {
            self.backfill = None;
        } else {
            self.ask_backfill(server);
        }
    }
}
