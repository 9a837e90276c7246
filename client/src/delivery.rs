//! Where an outgoing message stands: the typed state the core reports in
//! [`crate::event::Event::State`], and its one text form for the history store.
//!
//! The core ([`crate::core`]) creates these values; chat-cli, the desktop app and the test
//! harnesses match on them. Text appears only at the edges: `chat-cli --json` (the
//! `state`/`round`/`reason` fields scripts read, see the `Serialize` impl) and the
//! history store's `state` column ([`Delivery::stored`] / [`Delivery::from_stored`], the
//! only place that text is parsed back).

use std::fmt;

use protocol::wire::Round;
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Why a fragment goes back to the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryReason {
    /// The round's output shows our slot garbled: another sender picked it too.
    Collision,
    /// The servers voided the round (fewer than `k` participants).
    Void,
    /// The round produced no output we could accept within the lost-round limit.
    Lost,
    /// The round's output came without us: a server that serves it missed our share.
    Excluded,
}

impl RetryReason {
    const ALL: [Self; 4] = [Self::Collision, Self::Void, Self::Lost, Self::Excluded];
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Collision => "collision: another sender used the same slot",
            Self::Void => "round was void (too few participants)",
            Self::Lost => "round produced no output",
            Self::Excluded => "not included: a server missed our share",
        })
    }
}

/// Why a message was given up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// Every try collided, was void or was lost.
    GaveUp {
        /// Tries made.
        attempts: u32,
        /// What happened to the last one.
        last: RetryReason,
    },
    /// A failure read back from the history store whose text is not one of ours.
    Recorded(String),
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::GaveUp { attempts, last } => {
                write!(f, "gave up after {attempts} tries; last: {last}")
            }
            Self::Recorded(text) => f.write_str(text),
        }
    }
}

impl FailReason {
    /// Parse the text [`Display`](fmt::Display) writes; anything else is `Recorded`.
    fn parse(text: &str) -> Self {
        let typed = text
            .strip_prefix("gave up after ")
            .and_then(|rest| rest.split_once(" tries; last: "))
            .and_then(|(n, last)| {
                let attempts = n.parse().ok()?;
                let last = RetryReason::ALL
                    .into_iter()
                    .find(|r| r.to_string() == last)?;
                Some(Self::GaveUp { attempts, last })
            });
        typed.unwrap_or_else(|| Self::Recorded(text.to_string()))
    }
}

/// The delivery state of one outgoing message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// In the outbox, waiting for a round.
    Queued,
    /// Submitted in this round; waiting for its output.
    InRound(Round),
    /// Seen intact in this round's output: delivered to the recipient's slot.
    Sent(Round),
    /// A fragment collided, or its round was void or lost; it will be tried again.
    Retrying {
        /// The round that did not carry it.
        round: Round,
        /// What happened.
        reason: RetryReason,
    },
    /// Given up.
    Failed {
        /// The last round tried.
        round: Round,
        /// Why.
        reason: FailReason,
    },
}

impl Delivery {
    /// The state word scripts read (`queued`, `in_round`, `sent`, `retrying`, `failed`).
    pub fn word(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::InRound(_) => "in_round",
            Self::Sent(_) => "sent",
            Self::Retrying { .. } => "retrying",
            Self::Failed { .. } => "failed",
        }
    }

    /// The round involved, if any.
    pub fn round(&self) -> Option<Round> {
        match self {
            Self::Queued => None,
            Self::InRound(r) | Self::Sent(r) => Some(*r),
            Self::Retrying { round, .. } | Self::Failed { round, .. } => Some(*round),
        }
    }

    /// Why it is retrying or failed, as text.
    pub fn reason(&self) -> Option<String> {
        match self {
            Self::Retrying { reason, .. } => Some(reason.to_string()),
            Self::Failed { reason, .. } => Some(reason.to_string()),
            _ => None,
        }
    }

    /// Sent or failed: nothing changes any more.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Sent(_) | Self::Failed { .. })
    }

    /// The history store's text form: `queued`, `sent`, `failed: <reason>` (the store
    /// only records these three; passing states are not written).
    pub fn stored(&self) -> String {
        match self {
            Self::Failed { reason, .. } => format!("failed: {reason}"),
            Self::Sent(_) => "sent".into(),
            _ => "queued".into(),
        }
    }

    /// Read a history entry's `state` and `round` back. Anything unknown is `Queued`
    /// (the engine re-announces queued messages when it starts).
    pub fn from_stored(state: &str, round: Round) -> Self {
        if state == "sent" {
            return Self::Sent(round);
        }
        match state.strip_prefix("failed: ") {
            Some(why) => Self::Failed {
                round,
                reason: FailReason::parse(why),
            },
            None => Self::Queued,
        }
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// Serialized as the fields `state`, `round` and `reason` (null when absent): the shape
/// `chat-cli --json` has always printed inside a `"event":"state"` object.
impl Serialize for Delivery {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("state", self.word())?;
        m.serialize_entry("round", &self.round())?;
        m.serialize_entry("reason", &self.reason())?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_round_trips() {
        let cases = [
            Delivery::Queued,
            Delivery::Sent(9),
            Delivery::Failed {
                round: 12,
                reason: FailReason::GaveUp {
                    attempts: 8,
                    last: RetryReason::Collision,
                },
            },
            Delivery::Failed {
                round: 3,
                reason: FailReason::Recorded("no user named \"x\"".into()),
            },
        ];
        for d in cases {
            let round = d.round().unwrap_or(0);
            assert_eq!(Delivery::from_stored(&d.stored(), round), d, "{d:?}");
        }
        assert_eq!(
            Delivery::from_stored("failed: gave up", 4),
            Delivery::Failed {
                round: 4,
                reason: FailReason::Recorded("gave up".into())
            }
        );
        assert_eq!(Delivery::from_stored("", 0), Delivery::Queued);
        assert_eq!(
            Delivery::from_stored(
                "failed: gave up after 8 tries; last: round was void (too few participants)",
                7
            ),
            Delivery::Failed {
                round: 7,
                reason: FailReason::GaveUp {
                    attempts: 8,
                    last: RetryReason::Void
                }
            }
        );
    }

    #[test]
    fn json_keeps_the_state_round_reason_fields() {
        let v = serde_json::to_value(Delivery::Retrying {
            round: 5,
            reason: RetryReason::Void,
        })
        .unwrap_or_default();
        assert_eq!(v["state"], "retrying");
        assert_eq!(v["round"], 5);
        assert!(v["reason"].as_str().is_some_and(|r| r.contains("void")));
        let q = serde_json::to_value(Delivery::Queued).unwrap_or_default();
        assert_eq!(
            q,
            serde_json::json!({"state": "queued", "round": null, "reason": null})
        );
    }
}
