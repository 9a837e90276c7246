//! From reveals to an output: every server's signed reveal is used.
//!
//! - A reveal must be signed by the server whose index it carries.
//! - Once `t + 2` or more reveals are in, the output is decoded with
//!   [`crate::robust::decode`]: it is published only if enough reveals agree on one
//!   polynomial, and the servers off it are named in [`State::dissent`].
//! - Only the round's serving servers (Q, fixed when it was decided) may reveal.
//! - With every serving server's reveal in and no agreement, the round is void (its senders
//!   retry). With `n = t + 1` there is nothing to check against: the output is decoded
//!   from all of them, unchecked.
//! - `Finalize(r)`, which the leader commits when a round has had `t + 1` reveals for a
//!   while (a server is down or slow), decides with what is in: `t + 1` reveals are
//!   decoded unchecked (counted in [`State::unchecked_outputs`]), more are decoded or the
//!   round is voided.

use serde::{Deserialize, Serialize};

use super::{Effect, RoundMachine};
use crate::robust::{decode, Decoded};
use crate::shamir::{interpolate_at, x_of};
use crate::wire::{RejectReason, Reveal, Round, RoundOutput, ServerIndex};

/// A server's record of reveals that disagreed with the others.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dissent {
    /// Rounds in which its reveal was off the agreed polynomial.
    pub rounds: u64,
    /// The last such round.
    pub last_round: Round,
}

impl RoundMachine {
    pub(super) fn reveal(&mut self, rev: &Reveal) -> Result<Effect, RejectReason> {
        let Some(key) = self.params.server_keys.get(usize::from(rev.server)) else {
            return Err(RejectReason::UnknownServer(rev.server));
        };
        let share_bytes = self.params.share_bytes();
        let Some((closed, decision)) = self
            .state
            .awaiting
            .get(&rev.round)
            .and_then(|c| Some((c, c.decided.as_ref()?)))
        else {
            return Err(RejectReason::NotAwaitingReveal { round: rev.round });
        };
        if !decision.servers.contains(&rev.server) {
            return Err(RejectReason::NotServing {
                round: rev.round,
                server: rev.server,
            });
        }
        let serving = decision.servers.len();
        if closed.reveals.contains_key(&rev.server) {
            return Err(RejectReason::DuplicateReveal {
                round: rev.round,
                server: rev.server,
            });
        }
        if rev.sum.len() != share_bytes {
            return Err(RejectReason::WrongShareSize {
                expected: share_bytes as u32,
                got: rev.sum.len() as u32,
            });
        }
        if crate::field::check(rev.sum.as_slice()).is_err() {
            return Err(RejectReason::NotFieldElements);
        }
        if !rev.signature_valid(&key.0) {
            return Err(RejectReason::BadSignature);
        }
        let round = rev.round;
        let m = {
            let closed = self
                .state
                .awaiting
                .get_mut(&round)
                .ok_or(RejectReason::NotAwaitingReveal { round })?;
            closed.reveals.insert(rev.server, rev.sum.clone());
            closed.reveals.len()
        };
        let needed = self.params.reveals_needed();
        let all = serving;
        if m > needed {
            if let Some(decoded) = self.decode(round) {
                return Ok(self.publish(round, decoded));
            }
        }
        if m == all {
            return Ok(if m == needed {
                self.publish_unchecked(round)
            } else {
                self.void_inconsistent(round)
            });
        }
        Ok(Effect::RevealRecorded {
            round,
            server: rev.server,
        })
    }

    pub(super) fn finalize(&mut self, round: Round) -> Result<Effect, RejectReason> {
        let Some(closed) = self
            .state
            .awaiting
            .get(&round)
            .filter(|c| c.decided.is_some())
        else {
            return Err(RejectReason::NotAwaitingReveal { round });
        };
        let m = closed.reveals.len();
        let needed = self.params.reveals_needed();
        if m < needed {
            return Err(RejectReason::TooFewReveals {
                round,
                got: m as u32,
                needed: needed as u32,
            });
        }
        if m == needed {
            return Ok(self.publish_unchecked(round));
        }
        Ok(match self.decode(round) {
            Some(decoded) => self.publish(round, decoded),
            None => self.void_inconsistent(round),
        })
    }

    fn decode(&self, round: Round) -> Option<Decoded> {
        let closed = self.state.awaiting.get(&round)?;
        let reveals: Vec<(ServerIndex, &[u8])> = closed
            .reveals
            .iter()
            .map(|(s, sum)| (*s, sum.as_slice()))
            .collect();
        decode(&reveals, usize::from(self.params.threshold))
    }

    /// Exactly t+1 reveals: one polynomial through them, nothing to check it against.
    fn publish_unchecked(&mut self, round: Round) -> Effect {
        let Some(closed) = self.state.awaiting.get(&round) else {
            return Effect::Rejected(RejectReason::NotAwaitingReveal { round });
        };
        let shares: Vec<(u8, &[u8])> = closed
            .reveals
            .iter()
            .map(|(s, sum)| (x_of(usize::from(*s)), sum.as_slice()))
            .collect();
        // Distinct servers with equal-length canonical sums (checked on apply): cannot
        // fail.
        let data = interpolate_at(&shares, 0)
            .map(|d| d.to_vec())
            .unwrap_or_default();
        self.state.unchecked_outputs += 1;
        self.publish(
            round,
            Decoded {
                data,
                dissenters: Vec::new(),
            },
        )
    }

    fn publish(&mut self, round: Round, decoded: Decoded) -> Effect {
        let Some(closed) = self.state.awaiting.remove(&round) else {
            return Effect::Rejected(RejectReason::NotAwaitingReveal { round });
        };
        for server in decoded.dissenters {
            let d = self.state.dissent.entry(server).or_default();
            d.rounds += 1;
            d.last_round = round;
        }
        let participants = closed
            .decided
            .as_ref()
            .map_or(0, |d| d.included.len() as u32);
        let output = crate::vector::output(
            &self.params,
            round,
            participants,
            &decoded.data,
            &closed.laid_out,
        );
        self.keep_output(output.clone());
        Effect::Output(output)
    }

    /// Keep an output (a void one too) among the recent ones; if it is the round before
    /// the open one, it lays the open round out.
    pub(super) fn keep_output(&mut self, output: RoundOutput) {
        let round = output.round;
        if self.state.open_round == round + crate::vector::RESERVE_AHEAD {
            // The open round is laid out from this output's reservations. Clients wait
            // for the output before submitting to it, so the layout is fixed before any
            // honest share is built on it.
            self.state.open_layout = output.reservations.as_slice().to_vec();
            self.state.open_layout_known = true;
        }
        self.state.outputs.insert(round, output);
        let newest = self
            .state
            .outputs
            .keys()
            .next_back()
            .copied()
            .unwrap_or(round);
        let window = self.params.retention_rounds.min(super::RECENT_OUTPUTS);
        let keep_from = newest.saturating_sub(window.saturating_sub(1));
        while let Some((&oldest, _)) = self.state.outputs.first_key_value() {
            if oldest >= keep_from {
                break;
            }
            self.state.outputs.pop_first();
        }
    }

    /// The reveals disagree beyond correction: nothing is revealed, the senders retry.
    fn void_inconsistent(&mut self, round: Round) -> Effect {
        let participants = self
            .state
            .awaiting
            .remove(&round)
            .and_then(|c| c.decided)
            .map_or(0, |d| d.included.len() as u32);
        self.state.inconsistent_rounds += 1;
        let output = self.note_void(round, participants);
        Effect::Void {
            round,
            participants,
            output,
        }
    }
}
