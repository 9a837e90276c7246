//! The whole backup life on the pure level: register through the book, refresh for
//! three epochs (each server opening and adding its sub-shares), restore with the
//! passphrase; and what must not work.

use std::collections::BTreeMap;

use curve25519_dalek::ristretto::RistrettoPoint;
use rand::rngs::OsRng;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::book::{BackupBook, BackupEffect, BackupRefusal};
use super::make::{deal_part, open_blob, open_deal, open_registration, registration};
use super::oprf::{blind, check, evaluate, Unlock};
use super::vss::{add_scalars, combine, committed_at, point, verify};
use super::{Act, BackupAct, BackupCommand, BackupName, EpochKey, ServerSigned};
use crate::bounded::{Bytes, Fixed, Key32};
use crate::wire::PublicKeys;

const N: usize = 3;
const T: usize = 1;

/// A server's shares of one backup: of K, of the OPRF key, its tag.
type Held = (
    Zeroizing<[u8; 32]>,
    Zeroizing<[u8; 32]>,
    Zeroizing<[u8; 32]>,
);

struct Server {
    id: keys::Identity,
    epoch_secret: StaticSecret,
    next_secret: Option<StaticSecret>,
    /// name → (K share, OPRF share, tag)
    shares: BTreeMap<BackupName, Held>,
}

struct World {
    params: crate::Params,
    book: BackupBook,
    names: BTreeMap<BackupName, PublicKeys>,
    servers: Vec<Server>,
}

fn key_of(s: &StaticSecret) -> Key32 {
    Fixed(PublicKey::from(s).to_bytes())
}

fn world() -> World {
    let servers: Vec<Server> = (0..N)
        .map(|_| Server {
            id: keys::Identity::generate(&mut OsRng),
            epoch_secret: StaticSecret::random_from_rng(OsRng),
            next_secret: None,
            shares: BTreeMap::new(),
        })
        .collect();
    let mut params =
        crate::Params::new(N, T, 4, 256, 1, 4, crate::Admission::Open).expect("params");
    params.server_keys = servers.iter().map(|s| Fixed(s.id.public().sign)).collect();
    let mut w = World {
        params,
        book: BackupBook::default(),
        names: BTreeMap::new(),
        servers,
    };
    for i in 0..N {
        let k = EpochKey {
            server: i as u16,
            key: key_of(&w.servers[i].epoch_secret),
            signature: super::book::UNSIGNED,
        }
        .signed(&w.servers[i].id);
        w.apply(BackupCommand::Key(k)).expect("key");
    }
    w
}

impl World {
    fn apply(&mut self, cmd: BackupCommand) -> Result<BackupEffect, BackupRefusal> {
        self.book.apply(&self.params, &self.names, &cmd)
    }

    fn register(&mut self, user: &keys::Identity, name: &str, pass: &[u8], plain: &[u8]) -> u64 {
        let name: BackupName = Bytes::new(name.as_bytes().to_vec()).expect("name");
        self.names
            .insert(name.clone(), PublicKeys::from_identity(&user.public()));
        let keys = self.book.all_keys(N).expect("keys");
        let mut r = registration(
            &name,
            Fixed(user.public().sign),
            self.book.epoch,
            &keys,
            T,
            pass,
            plain,
            &mut OsRng,
        )
        .expect("registration");
        r.signature = Fixed(user.sign(&r.signed_bytes()));
        let BackupEffect::Registered { version, .. } = self
            .apply(BackupCommand::Register(r.clone()))
            .expect("registered")
        else {
            panic!("not registered")
        };
        for (i, s) in self.servers.iter_mut().enumerate() {
            let o = open_registration(&r, i as u16, &s.epoch_secret).expect("opens");
            s.shares.insert(name.clone(), (o.key, o.oprf, o.tag));
        }
        version
    }

    /// Every server deals one part over every backup; returns after t + 1 advanced it.
    fn refresh(&mut self) {
        let backups: Vec<(BackupName, u64)> = self
            .book
            .records
            .iter()
            .map(|(n, r)| (n.clone(), r.version))
            .collect();
        let keys = self.book.all_keys(N).expect("keys");
        let epoch = self.book.epoch;
        for d in 0..N {
            let next = StaticSecret::random_from_rng(OsRng);
            let part = deal_part(
                d as u16,
                epoch,
                0,
                true,
                key_of(&next),
                &backups,
                &keys,
                T,
                &mut OsRng,
            )
            .expect("deal")
            .signed(&self.servers[d].id);
            self.servers[d].next_secret = Some(next);
            let effect = self.apply(BackupCommand::Deal(part.clone()));
            let Ok(BackupEffect::Dealt {
                applied, advanced, ..
            }) = effect
            else {
                assert_eq!(
                    effect,
                    Err(BackupRefusal::WrongEpoch {
                        got: epoch,
                        current: epoch + 1
                    })
                );
                self.servers[d].next_secret = None;
                continue;
            };
            for (j, s) in self.servers.iter_mut().enumerate() {
                for (ix, sub) in
                    open_deal(&part, &applied, j as u16, &s.epoch_secret).expect("opens")
                {
                    let (dk, dof) = sub.expect("sub-shares check");
                    let name = &part.entries.as_slice()[ix as usize].name;
                    let (k, o, _) = s.shares.get_mut(name).expect("share");
                    *k = add_scalars(k, &dk).expect("add");
                    *o = add_scalars(o, &dof).expect("add");
                }
            }
            if let Some((_, adopted)) = advanced {
                for (a, _) in adopted {
                    let s = &mut self.servers[usize::from(a)];
                    s.epoch_secret = s.next_secret.take().expect("next");
                }
            }
        }
    }

    /// Restore with `pass` through servers `at`: the server side counts and checks.
    fn restore(
        &mut self,
        name: &str,
        pass: &[u8],
        at: &[u16],
    ) -> Result<Zeroizing<[u8; 32]>, BackupRefusal> {
        let bname: BackupName = Bytes::new(name.as_bytes().to_vec()).expect("name");
        let rec = self
            .book
            .records
            .get(&bname)
            .cloned()
            .ok_or(BackupRefusal::NoBackup)?;
        let bl = blind(name.as_bytes(), pass, &mut OsRng);
        let oprf_points: Vec<RistrettoPoint> = rec
            .oprf_commitments
            .iter()
            .map(|c| point(c).expect("p"))
            .collect();
        let mut evals = Vec::new();
        for &i in at {
            let act = BackupAct {
                name: bname.clone(),
                version: rec.version,
                server: i,
                act: Act::Guess {
                    attempt: bl.blinded,
                },
                signature: super::book::UNSIGNED,
            }
            .signed(&self.servers[usize::from(i)].id);
            self.apply(BackupCommand::Act(act))?;
            let (_, o, _) = &self.servers[usize::from(i)].shares[&bname];
            let e = evaluate(o, &bl.blinded, &mut OsRng).expect("eval");
            check(&e, &bl.blinded, &committed_at(&oprf_points, i)).expect("proof");
            evals.push((i, e.element));
        }
        let unlock = Unlock::combine(name.as_bytes(), pass, &bl, &evals).expect("combine");
        let mut shares = Vec::new();
        for &i in at {
            let (k, _, tag) = &self.servers[usize::from(i)].shares[&bname];
            if unlock.tag(i).0 != **tag {
                return Err(BackupRefusal::WrongPassphrase { left: 0 });
            }
            verify(k, &rec.key_commitments, i).expect("share is current");
            shares.push((i, **k));
        }
        Ok(combine(&shares).expect("combine"))
    }
}

#[test]
fn backup_survives_three_refreshes_and_restores_with_any_t_plus_one() {
    let mut w = world();
    let user = keys::Identity::generate(&mut OsRng);
    let name: BackupName = Bytes::new(b"alice".to_vec()).expect("name");
    let keys = {
        w.names
            .insert(name.clone(), PublicKeys::from_identity(&user.public()));
        w.book.all_keys(N).expect("keys")
    };
    let _ = keys;
    w.register(
        &user,
        "alice",
        b"correct horse battery",
        b"identity and contacts",
    );
    let first: Vec<_> = w.servers.iter().map(|s| *s.shares[&name].0).collect();
    let c0 = w.book.records[&name].key_commitments[0];
    for epoch in 1..=3 {
        w.refresh();
        assert_eq!(w.book.epoch, epoch);
    }
    assert_eq!(
        w.book.records[&name].key_commitments[0], c0,
        "K never moves"
    );
    let k = w
        .restore("alice", b"correct horse battery", &[0, 2])
        .expect("restores");
    let k2 = w
        .restore("alice", b"correct horse battery", &[2, 1])
        .expect("restores");
    assert_eq!(*k, *k2);
    assert_eq!(
        RistrettoPoint::mul_base(&super::vss::scalar(&Fixed(*k)).expect("s")),
        point(&c0).expect("p")
    );
    // A share from before the refreshes does not combine with a current one.
    let now = *w.servers[2].shares[&name].0;
    assert_ne!(*combine(&[(0, first[0]), (2, now)]).expect("c"), *k);
    assert!(verify(&first[0], &w.book.records[&name].key_commitments, 0).is_err());
}

#[test]
fn the_blob_opens_only_with_the_recovered_key() {
    let mut w = world();
    let user = keys::Identity::generate(&mut OsRng);
    let name: BackupName = Bytes::new(b"bob".to_vec()).expect("name");
    w.names
        .insert(name.clone(), PublicKeys::from_identity(&user.public()));
    let keys = w.book.all_keys(N).expect("keys");
    let r = registration(
        &name,
        Fixed(user.public().sign),
        0,
        &keys,
        T,
        b"pw",
        b"payload",
        &mut OsRng,
    )
    .expect("r");
    let shares: Vec<_> = (0..2u16)
        .map(|i| {
            (
                i,
                *open_registration(&r, i, &w.servers[usize::from(i)].epoch_secret)
                    .expect("o")
                    .key,
            )
        })
        .collect();
    let k = combine(&shares).expect("k");
    assert_eq!(
        open_blob(&k, b"bob", r.blob.as_slice())
            .expect("opens")
            .as_slice(),
        b"payload"
    );
    assert!(open_blob(&[9; 32], b"bob", r.blob.as_slice()).is_err());
    assert!(
        open_blob(&k, b"eve", r.blob.as_slice()).is_err(),
        "bound to the name"
    );
}

#[test]
fn wrong_guesses_count_per_server_and_erasure_drops_the_backup() {
    let mut w = world();
    let user = keys::Identity::generate(&mut OsRng);
    let version = w.register(&user, "carol", b"right passphrase", b"x");
    let name: BackupName = Bytes::new(b"carol".to_vec()).expect("name");
    for _ in 0..3 {
        assert!(w.restore("carol", b"wrong", &[0, 1]).is_err());
    }
    assert_eq!(w.book.records[&name].guesses, vec![3, 3, 0]);
    w.restore("carol", b"right passphrase", &[0, 1])
        .expect("restores");
    let unlocked = BackupAct {
        name: name.clone(),
        version,
        server: 0,
        act: Act::Unlocked,
        signature: super::book::UNSIGNED,
    }
    .signed(&w.servers[0].id);
    w.apply(BackupCommand::Act(unlocked)).expect("reset");
    assert_eq!(w.book.records[&name].guesses[0], 0);
    // Another server cannot act for server 0.
    let forged = BackupAct {
        name: name.clone(),
        version,
        server: 0,
        act: Act::Unlocked,
        signature: super::book::UNSIGNED,
    }
    .signed(&w.servers[1].id);
    assert_eq!(
        w.apply(BackupCommand::Act(forged)),
        Err(BackupRefusal::BadSignature)
    );
    for (i, gone) in [(0u16, false), (1, true)] {
        let erase = BackupAct {
            name: name.clone(),
            version,
            server: i,
            act: Act::Erase,
            signature: super::book::UNSIGNED,
        }
        .signed(&w.servers[usize::from(i)].id);
        let Ok(BackupEffect::Erased { gone: g, .. }) = w.apply(BackupCommand::Act(erase)) else {
            panic!("erase")
        };
        assert_eq!(g, gone);
    }
    assert!(
        !w.book.records.contains_key(&name),
        "two of three erased: fewer than t + 1 hold a share"
    );
}

#[test]
fn registrations_are_refused_by_name() {
    let mut w = world();
    let user = keys::Identity::generate(&mut OsRng);
    let mallory = keys::Identity::generate(&mut OsRng);
    let name: BackupName = Bytes::new(b"dave".to_vec()).expect("name");
    w.names
        .insert(name.clone(), PublicKeys::from_identity(&user.public()));
    let keys = w.book.all_keys(N).expect("keys");
    let mut r = registration(
        &name,
        Fixed(mallory.public().sign),
        0,
        &keys,
        T,
        b"pw",
        b"x",
        &mut OsRng,
    )
    .expect("r");
    r.signature = Fixed(mallory.sign(&r.signed_bytes()));
    assert_eq!(
        w.apply(BackupCommand::Register(r.clone())),
        Err(BackupRefusal::NotYourName)
    );
    r.client = Fixed(user.public().sign);
    assert_eq!(
        w.apply(BackupCommand::Register(r.clone())),
        Err(BackupRefusal::BadSignature)
    );
    r.epoch = 5;
    r.signature = Fixed(user.sign(&r.signed_bytes()));
    assert_eq!(
        w.apply(BackupCommand::Register(r)),
        Err(BackupRefusal::WrongEpoch { got: 5, current: 0 })
    );
}

mod mutations {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// A registration or deal part with any byte flipped or cut decodes to an error
        /// or to a command the book refuses or applies, and opening it never panics.
        #[test]
        fn mutated_backup_commands_never_panic(pos in any::<prop::sample::Index>(), bit in 0u8..8, cut in any::<prop::sample::Index>(), which in 0usize..2) {
            let mut w = world();
            let user = keys::Identity::generate(&mut OsRng);
            w.register(&user, "erin", b"a fine passphrase", b"x");
            let cmd = if which == 0 {
                let name: BackupName = Bytes::new(b"erin".to_vec()).expect("name");
                let keys = w.book.all_keys(N).expect("keys");
                let mut r = registration(&name, Fixed(user.public().sign), 0, &keys, T, b"pw", b"y", &mut OsRng).expect("r");
                r.signature = Fixed(user.sign(&r.signed_bytes()));
                BackupCommand::Register(r)
            } else {
                let backups: Vec<(BackupName, u64)> = w.book.records.iter().map(|(n, r)| (n.clone(), r.version)).collect();
                let keys = w.book.all_keys(N).expect("keys");
                let next = Fixed([9; 32]);
                BackupCommand::Deal(deal_part(0, 0, 0, true, next, &backups, &keys, T, &mut OsRng).expect("deal").signed(&w.servers[0].id))
            };
            let good = crate::codec::encode(&cmd).expect("encode");
            let mut bad = good.clone();
            let i = pos.index(bad.len());
            bad[i] ^= 1 << bit;
            for bytes in [bad, good[..cut.index(good.len())].to_vec()] {
                if let Ok(c) = crate::codec::decode::<BackupCommand>(&bytes) {
                    if let Ok(effect) = w.apply(c.clone()) {
                        match (&c, effect) {
                            (BackupCommand::Deal(d), BackupEffect::Dealt { applied, .. }) => {
                                for (j, s) in w.servers.iter().enumerate() {
                                    let _ = open_deal(d, &applied, j as u16, &s.epoch_secret);
                                }
                            }
                            (BackupCommand::Register(r), _) => {
                                for (j, s) in w.servers.iter().enumerate() {
                                    let _ = open_registration(r, j as u16, &s.epoch_secret);
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}
