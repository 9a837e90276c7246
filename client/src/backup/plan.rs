//! The decisions of a backup or restore, apart from the network: which servers' view
//! to trust, which answers to combine, what a passphrase must be. Tested without a
//! cluster.

use std::collections::BTreeMap;

use protocol::backup::oprf::{self, Evaluation};
use protocol::backup::vss;
use protocol::backup::{BackupView, RecordView};
use protocol::bounded::Key32;
use protocol::wire::ServerIndex;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// What a backup holds (JSON, encrypted under `K`).
#[derive(Serialize, Deserialize)]
pub struct Contents {
    /// Format version.
    pub format: u32,
    /// The registered name.
    pub name: String,
    /// The ed25519 seed, hex.
    pub ed25519_seed: String,
    /// The x25519 secret, hex.
    pub x25519_secret: String,
    /// The app's `contacts.json` (contacts and their verified marks), if there was one.
    pub contacts: Option<String>,
    /// When the backup was made (seconds since 1970).
    pub made_at: u64,
}

impl Drop for Contents {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.ed25519_seed.zeroize();
        self.x25519_secret.zeroize();
    }
}

impl Contents {
    /// The backup of `identity` under `name`, with the app's contacts.
    pub fn of(
        name: &str,
        identity: &keys::Identity,
        contacts: Option<String>,
        made_at: u64,
    ) -> Self {
        Self {
            format: 1,
            name: name.to_string(),
            ed25519_seed: hex::encode(*identity.ed25519_seed()),
            x25519_secret: hex::encode(identity.x25519_secret().to_bytes()),
            contacts,
            made_at,
        }
    }

    /// The identity it holds.
    pub fn identity(&self) -> Result<keys::Identity, String> {
        let parse = |h: &str, what: &str| -> Result<Zeroizing<[u8; 32]>, String> {
            let v = Zeroizing::new(
                hex::decode(h).map_err(|_| format!("the backup's {what} is not hex"))?,
            );
            let mut out = Zeroizing::new([0u8; 32]);
            if v.len() != 32 {
                return Err(format!("the backup's {what} is not 32 bytes"));
            }
            out.copy_from_slice(&v);
            Ok(out)
        };
        let ed = parse(&self.ed25519_seed, "signing key")?;
        let x = parse(&self.x25519_secret, "key-agreement key")?;
        Ok(keys::Identity::from_secret_bytes(&ed, &x))
    }
}

/// The shortest passphrase accepted.
pub const MIN_PASSPHRASE_CHARS: usize = 10;

/// Refuse a weak passphrase, saying why and what would help (zxcvbn's estimate; the
/// name is one of the words an attacker tries first).
pub fn check_passphrase(passphrase: &str, name: &str) -> Result<(), String> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(format!(
            "the passphrase is too short: use at least {MIN_PASSPHRASE_CHARS} characters (four or more unrelated words are easy to remember)"
        ));
    }
    let estimate = zxcvbn::zxcvbn(passphrase, &[name, "chorus"]);
    if (estimate.score() as u8) < 3 {
        let mut why = String::from("the passphrase is too easy to guess");
        if let Some(f) = estimate.feedback() {
            if let Some(w) = f.warning() {
                why.push_str(&format!(": {w}"));
            }
            for s in f.suggestions() {
                why.push_str(&format!("; {s}"));
            }
        }
        return Err(why);
    }
    Ok(())
}

/// The view at least `quorum` servers agree on (epoch and keys for a new backup, or a
/// record's version for a restore): the most common, if it reaches `quorum`.
pub fn agreed<T: Clone + Ord>(answers: &[T], quorum: usize) -> Option<T> {
    let mut counts: BTreeMap<&T, usize> = BTreeMap::new();
    for a in answers {
        *counts.entry(a).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(_, c)| *c >= quorum)
        .max_by_key(|(_, c)| *c)
        .map(|(v, _)| v.clone())
}

/// Epoch and keys of the views, for [`agreed`].
pub fn keys_of(v: &BackupView) -> (u64, Vec<Key32>) {
    (v.epoch, v.keys.as_slice().to_vec())
}

/// Evaluations whose proofs hold, grouped by the commitments they are proved against;
/// the first group of at least `t + 1` (answers from different refresh steps do not
/// combine).
pub fn usable_evaluations(
    blinded: &Key32,
    answers: &[(ServerIndex, Evaluation, Vec<Key32>)],
    threshold: usize,
) -> (Option<Vec<(ServerIndex, Key32)>>, Vec<ServerIndex>) {
    let mut groups: BTreeMap<Vec<Key32>, Vec<(ServerIndex, Key32)>> = BTreeMap::new();
    let mut bad = Vec::new();
    for (i, e, commitments) in answers {
        let points: Result<Vec<_>, _> = commitments.iter().map(vss::point).collect();
        let ok = points
            .ok()
            .filter(|p| p.len() == threshold + 1)
            .is_some_and(|p| oprf::check(e, blinded, &vss::committed_at(&p, *i)).is_ok());
        if ok {
            groups
                .entry(commitments.clone())
                .or_default()
                .push((*i, e.element));
        } else {
            bad.push(*i);
        }
    }
    let group = groups.into_values().find(|g| g.len() > threshold);
    (group.map(|g| g[..=threshold].to_vec()), bad)
}

/// A share a server handed back: its index, the share, the commitments it lies on.
pub type ReturnedShare = (ServerIndex, Zeroizing<[u8; 32]>, Vec<Key32>);

/// Shares that lie on their commitments, grouped by commitments; `K` from the first
/// group of `t + 1`, checked against `g^K` (the first commitment). Also the servers
/// whose share did not verify.
pub fn recover_key(
    shares: &[ReturnedShare],
    threshold: usize,
) -> (Option<Zeroizing<[u8; 32]>>, Vec<ServerIndex>) {
    let mut groups: BTreeMap<Vec<Key32>, Vec<(ServerIndex, [u8; 32])>> = BTreeMap::new();
    let mut bad = Vec::new();
    for (i, s, c) in shares {
        if c.len() == threshold + 1 && vss::verify(s, c, *i).is_ok() {
            groups.entry(c.clone()).or_default().push((*i, **s));
        } else {
            bad.push(*i);
        }
    }
    for (c, g) in groups {
        if g.len() <= threshold {
            continue;
        }
        let Ok(k) = vss::combine(&g[..=threshold]) else {
            continue;
        };
        if vss::commits_to(&k, &c[0]) {
            return (Some(k), bad);
        }
    }
    (None, bad)
}

/// The record the servers that hold it agree on.
pub fn record_of(views: &[(ServerIndex, BackupView)], threshold: usize) -> Option<RecordView> {
    let versions: Vec<u64> = views
        .iter()
        .filter_map(|(_, v)| v.record.as_ref().map(|r| r.version))
        .collect();
    let version = agreed(&versions, threshold + 1)?;
    views
        .iter()
        .filter_map(|(_, v)| v.record.clone())
        .find(|r| r.version == version)
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::scalar::Scalar;
    use protocol::backup::oprf::{blind, evaluate, Unlock};
    use rand::rngs::OsRng;

    use super::*;

    #[test]
    fn a_lying_server_is_named_and_the_others_are_used() {
        let k = Scalar::random(&mut OsRng);
        let (shares, c) = vss::share(&k, 1, 3, &mut OsRng).expect("share");
        let mut returned: Vec<ReturnedShare> = shares
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u16, s.clone(), c.clone()))
            .collect();
        returned[0].1[0] ^= 1;
        let (got, bad) = recover_key(&returned, 1);
        assert_eq!(bad, vec![0]);
        assert_eq!(*got.expect("recovered"), k.to_bytes());
        // Two liars of three: nothing that checks is recovered.
        returned[1].1[0] ^= 1;
        assert!(recover_key(&returned, 1).0.is_none());
    }

    #[test]
    fn a_wrong_evaluation_is_named_and_left_out() {
        let oprf_key = Scalar::random(&mut OsRng);
        let (shares, c) = vss::share(&oprf_key, 1, 3, &mut OsRng).expect("share");
        let bl = blind(b"alice", b"pass phrase words", &mut OsRng);
        let mut answers: Vec<_> = shares
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    i as u16,
                    evaluate(s, &bl.blinded, &mut OsRng).expect("eval"),
                    c.clone(),
                )
            })
            .collect();
        answers[1].1.element = answers[0].1.element;
        let (group, bad) = usable_evaluations(&bl.blinded, &answers, 1);
        assert_eq!(bad, vec![1]);
        let group = group.expect("two good ones");
        let got = Unlock::combine(b"alice", b"pass phrase words", &bl, &group).expect("combine");
        let want = Unlock::from_key(b"alice", b"pass phrase words", &oprf_key);
        assert_eq!(got.tag(2), want.tag(2));
    }

    #[test]
    fn weak_passphrases_are_refused_in_words() {
        let short = check_passphrase("abc", "alice").expect_err("short");
        assert!(short.contains("at least 10 characters"), "{short}");
        let guessable = check_passphrase("password123", "alice").expect_err("weak");
        assert!(guessable.contains("too easy to guess"), "{guessable}");
        assert!(
            check_passphrase("alicealice1", "alice").is_err(),
            "the name itself is guessable"
        );
        check_passphrase("violet river anchors seventeen lamps", "alice").expect("strong");
    }

    #[test]
    fn views_need_a_quorum() {
        assert_eq!(agreed(&[1, 1, 2], 2), Some(1));
        assert_eq!(agreed(&[1, 2, 3], 2), None);
    }

    #[test]
    fn contents_round_trip_the_identity() {
        let id = keys::Identity::generate(&mut OsRng);
        let c = Contents::of("alice", &id, Some("{}".into()), 5);
        let back: Contents =
            serde_json::from_slice(&serde_json::to_vec(&c).expect("json")).expect("parse");
        assert_eq!(back.identity().expect("identity").public(), id.public());
    }
}
