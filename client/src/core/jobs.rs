//! Answers from servers, matched to what they were for: status, submission,
//! registration, directory pages and catch-up pages.
//!
//! Part of [`super::ClientCore`]: the shell reports each answer (or failure) with
//! `handle_response`, and the job it belongs to decides what follows.

use protocol::wire::{ClientResponse, RejectReason, Round, ServerIndex, StatusInfo};

use super::{catchup, outbox};
use super::{Answer, ClientCore, Failure, InFlight, Job, LocalStore, RequestId, Rotation};
use crate::event::Event;

/// Status answers a submission waits for the output that lays out its round, at most
/// (while it waits, answers come every quarter round).
pub const LAYOUT_WAIT_POLLS: u8 = 2;
/// Round lengths between status requests while outputs keep arriving: each output
/// (a void one too) opens the next round, so status is only a check (a lagging server,
/// a round abandoned unpublished).
pub const STATUS_EVERY_ROUNDS: u64 = 8;
/// Round lengths without a new output from gossip after which status is asked every
/// tick (lost gossip, a round abandoned unpublished, an idle or unreachable cluster).
pub const OUTPUT_OVERDUE_ROUNDS: u64 = 3;

impl<S: LocalStore> ClientCore<S> {
    /// The answer to request `id`, or why there was none.
    pub fn handle_response(
        &mut self,
        id: RequestId,
        result: Result<ClientResponse, Failure>,
        now_ms: u64,
    ) {
        let Some(InFlight {
            server,
            req,
            job,
            rotation,
        }) = self.in_flight.remove(&id)
        else {
            return; // not ours, or answered already
        };
        let Some(rot) = rotation else {
            // A share, a catch-up or a directory page: one server, no rotation. A share
            // its server was too busy for, or that went unanswered, is sent to it again
            // while its round may still be open.
            if let Job::Share { round, tries } = job {
                let busy = matches!(result, Ok(ClientResponse::Unavailable(_)) | Err(_));
                if busy && tries < super::SHARE_TRIES && round >= self.open_round {
                    let t = self.ask_timeout_ms();
                    let job = Job::Share {
                        round,
                        tries: tries + 1,
                    };
                    self.send(server, req, job, None, t);
                    return;
                }
            }
            self.finish(server, job, result.map_err(|_| String::new()), now_ms);
            return;
        };
        let n = self.cfg.server_sign.len().max(1);
        let outcome = match result {
            Ok(ClientResponse::Unavailable(why)) => Err(format!(
                "server {server}: {}",
                String::from_utf8_lossy(why.as_slice())
            )),
            Ok(resp) => Ok(resp),
            Err(Failure::TimedOut) => Err(format!("server {server} timed out")),
            Err(Failure::Conn(e)) => Err(e),
        };
        match outcome {
            Ok(resp) => {
                self.next_server = (usize::from(server) + 1) % n;
                self.finish(server, job, Ok(resp), now_ms);
            }
            Err(_) if rot.tried + 1 < n => {
                let next = ((usize::from(server) + 1) % n) as u16;
                let rotation = Rotation {
                    tried: rot.tried + 1,
                };
                let t = self.ask_timeout_ms();
                self.send(next, req, job, Some(rotation), t);
            }
            Err(last) => {
                self.next_server = (self.next_server + 1) % n;
                self.finish(server, job, Err(last), now_ms);
            }
        }
    }

    fn finish(
        &mut self,
        server: ServerIndex,
        job: Job,
        result: Result<ClientResponse, String>,
        now_ms: u64,
    ) {
        match job {
            Job::Status => {
                self.status_out = false;
                if let Ok(ClientResponse::Status(s)) = result {
                    self.on_status(server, s);
                }
            }
            Job::Share { round, .. } => self.on_share_answer(round, result),
            Job::Register { token, name } => {
                let r = match result {
                    Ok(ClientResponse::Accepted { .. }) => {
                        // Our own entry is in the directory now: fetch it with the next
                        // step, a little early (the registration itself was seen).
                        self.next_sync_ms = 0;
                        Ok(())
                    }
                    Ok(ClientResponse::Rejected(RejectReason::NameTaken)) => {
                        Err(format!("the name {name:?} is taken"))
                    }
                    Ok(ClientResponse::Rejected(r)) => Err(r.to_string()),
                    Ok(other) => Err(format!("unexpected answer {other:?}")),
                    Err(e) => Err(format!("cluster unreachable: {e}")),
                };
                self.answer(token, Answer::Register(r));
            }
            Job::DirectoryPage { server } => {
                let page = match result {
                    Ok(ClientResponse::Directory { entries, total }) => {
                        Some((entries.into_vec(), total))
                    }
                    _ => None,
                };
                self.on_directory_page(server, page, now_ms);
            }
            Job::Backfill { server } => self.on_backfill_page(server, result, now_ms),
            Job::History { server } => {
                let Some(mut c) = self.catchup.take() else {
                    return;
                };
                let page = match result {
                    Ok(ClientResponse::History {
                        outputs,
                        oldest_kept,
                        settled_through,
                    }) => {
                        let outputs = outputs.into_vec();
                        let page = catchup::page_of(
                            &outputs,
                            server,
                            |o| self.vouches.vouch_valid(o),
                            oldest_kept,
                            settled_through,
                        );
                        if page.is_some() {
                            for signed in outputs {
                                self.handle_signed_output(signed, now_ms);
                            }
                        }
                        page
                    }
                    _ => None,
                };
                if c.on_answer(server, page) {
                    self.conclude_catch_up(c, now_ms);
                } else {
                    self.catchup = Some(c);
                }
            }
        }
    }

    /// A status answer: void and lost rounds go back to the outbox, a client that fell
    /// behind catches up, and the open round gets our submission.
    fn on_status(&mut self, server: ServerIndex, status: StatusInfo) {
        self.leader = status.leader;
        self.reports.insert(
            server,
            (status.open_round, status.last_revealed.unwrap_or(0)),
        );
        // The round we submit for is one f+1 servers have opened, or the one after it
        // (rounds move on while we ask around): one lying or lagging server can neither
        // hold us back nor send us ahead into rounds nobody will open.
        let open = status.open_round.min(self.round_cap());
        if open > self.open_round {
            self.open_round = open;
        }
        let void = status.recent_void.as_slice().iter().copied().collect();
        let mut reserved_void = Vec::new();
        let stale = self
            .outbox
            .take_stale(&void, self.open_round, &mut reserved_void);
        self.events.extend(reserved_void);
        // A void round lays nothing out: the round after it need not wait for its output.
        if void.contains(&self.open_round.saturating_sub(outbox::RESERVE_AHEAD)) {
            self.layout_wait = (self.open_round, LAYOUT_WAIT_POLLS);
        }
        for (r, p, why) in stale {
            let ev = self
                .outbox
                .retry(&p, r, why, self.open_round, &mut self.store);
            self.events.extend(ev);
        }
        // A fresh client starts from now; one that knows where it was fetches whatever
        // was revealed since (the tick starts the catch-up).
        if let Some(rev) = status.last_revealed {
            let agreed = self.agreed(|(_, revealed)| revealed);
            // A fresh client starts from the round f+1 servers say was revealed last
            // (never from one server's word: a lie would make it skip, and then refuse
            // as old, every real round below it).
            if self.reports.len() > self.cfg.params.f() {
                if self.last_processed.is_none() {
                    self.settle(agreed);
                }
                self.newest_revealed = self.newest_revealed.max(rev.min(agreed));
            }
        }
        self.maybe_submit(true);
    }

    /// Submit for the open round unless we have, or are: once the output that lays out
    /// its slots (the round before) is settled (a fresh client has made no reservation to
    /// wait for), or after [`LAYOUT_WAIT_POLLS`] status answers without it. Every client
    /// waits alike, sending or not.
    pub(super) fn maybe_submit(&mut self, status_answer: bool) {
        let r = self.open_round;
        if r <= self.submitted_round || self.submit_out {
            return;
        }
        let from = r.saturating_sub(outbox::RESERVE_AHEAD);
        let known =
            self.last_processed.is_none_or(|w| w >= from) || self.settled_above.contains(&from);
        if self.layout_wait.0 != r {
            self.layout_wait = (r, 0);
        }
        if status_answer {
            self.layout_wait.1 = self.layout_wait.1.saturating_add(1);
        }
        if known || self.layout_wait.1 > LAYOUT_WAIT_POLLS {
            self.submit(r);
        }
    }

    /// One server's answer to its share of our submission for `round`. The first that
    /// holds it puts the submission in its round; if none does, a stale refusal moves us
    /// to the open round and anything else is reported.
    fn on_share_answer(&mut self, round: Round, result: Result<ClientResponse, String>) {
        let n = self.cfg.server_dh.len();
        let Some(out) = self.shares_out.as_mut().filter(|o| o.round == round) else {
            return; // an answer for an older submission
        };
        out.answered += 1;
        match result {
            // Held, or held already (a retry of ours).
            Ok(ClientResponse::Accepted { .. })
            | Ok(ClientResponse::Rejected(RejectReason::DuplicateSubmission { .. })) => {
                if !out.held {
                    out.held = true;
                    let carried = std::mem::take(&mut out.carried);
                    self.submit_out = false;
                    self.submitted_round = round;
                    let ev = self.outbox.submitted(round, carried);
                    self.events.extend(ev);
                }
            }
            Ok(ClientResponse::Rejected(RejectReason::StaleRound { open, .. })) => {
                out.stale_open = Some(out.stale_open.unwrap_or(0).max(open));
            }
            Ok(ClientResponse::Rejected(r)) => out.errors.push(r.to_string()),
            Ok(other) => out.errors.push(format!("unexpected answer {other:?}")),
            Err(e) if e.is_empty() => out.errors.push("no answer".into()),
            Err(e) => out.errors.push(e),
        }
        let Some(out) = self.shares_out.take_if(|o| o.answered >= n) else {
            return;
        };
        if out.held {
            return;
        }
        self.submit_out = false;
        if let Some(open) = out.stale_open {
            // The round closed while we built it; the next status submits for `open`.
            self.open_round = self.open_round.max(open.min(self.round_cap()));
            return;
        }
        let mut errors = out.errors;
        errors.sort();
        errors.dedup();
        self.events.push_back(Event::Error {
            message: format!("submission for round {round} failed: {}", errors.join("; ")),
        });
    }
}

impl<S: LocalStore> ClientCore<S> {
    /// Whether a tick should ask for status: until f+1 servers have answered, when no
    /// output has come for [`OUTPUT_OVERDUE_ROUNDS`], and every
    /// [`STATUS_EVERY_ROUNDS`] otherwise. Every client follows the same rule, so when a
    /// client asks says only how its outputs arrive, never whether it is sending.
    pub(super) fn status_due(&self, now_ms: u64) -> bool {
        let round = self.cfg.round_ms.max(1);
        self.reports.len() <= self.cfg.params.f()
            || now_ms.saturating_sub(self.last_live_output_ms) >= OUTPUT_OVERDUE_ROUNDS * round
            || now_ms.saturating_sub(self.last_status_ms) >= STATUS_EVERY_ROUNDS * round
    }

    /// The value f+1 servers have reached, by their latest reports (with fewer reports,
    /// the lowest one): `pick` selects open round or last revealed round.
    fn agreed(&self, pick: impl Fn((Round, Round)) -> Round) -> Round {
        let mut v: Vec<Round> = self.reports.values().map(|r| pick(*r)).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        let k = self.cfg.params.f() + 1;
        v.get(k - 1).or(v.last()).copied().unwrap_or(0)
    }

    /// The highest round we may submit for: one past what f+1 servers have opened.
    fn round_cap(&self) -> Round {
        if self.reports.is_empty() {
            return Round::MAX;
        }
        self.agreed(|(open, _)| open).saturating_add(1)
    }
}
