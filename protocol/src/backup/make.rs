//! Building backup commands: a client's registration and its blob, a dealer's refresh
//! parts, and a recipient's opening of them. Randomness is passed in.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use curve25519_dalek::scalar::Scalar;
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use super::oprf::Unlock;
use super::vss::{self, VssError};
use super::{
    book::UNSIGNED, deal_aad, sealbox, shares_aad, BackupName, Deal, DealEntry, Registration,
    MAX_DEAL_ENTRIES, SHARES_PLAIN_BYTES,
};
use crate::bounded::{BoundedVec, Bytes, Fixed, Key32};
use crate::wire::ServerIndex;

/// Why a backup could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum MakeError {
    /// Sharing failed.
    #[error(transparent)]
    Vss(#[from] VssError),
    /// The blob is over [`super::MAX_BLOB_BYTES`] once encrypted.
    #[error("the backup is {0} bytes encrypted; at most {max} fit", max = super::MAX_BLOB_BYTES)]
    TooBig(usize),
    /// Too many entries or servers for one command.
    #[error("too many entries for one command")]
    TooMany,
    /// The blob does not open under the recovered key.
    #[error("the backup does not open with the recovered key")]
    BlobDoesNotOpen,
}

/// `v` as a bounded list, or [`MakeError::TooMany`].
fn fits<T, const N: usize>(v: Vec<T>) -> Result<BoundedVec<T, N>, MakeError> {
    BoundedVec::new(v).map_err(|_| MakeError::TooMany)
}

fn blob_key(k: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(b"chorus/backup/blob/v1"), k);
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's maximum, so expand cannot fail.
    if hk.expand(b"blob", &mut *out).is_err() {
        unreachable!("HKDF output length is fixed and valid");
    }
    out
}

/// Encrypt the backup under `K` (random nonce first; the name as associated data).
pub fn seal_blob<R: RngCore + CryptoRng>(
    k: &[u8; 32],
    name: &[u8],
    plain: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let key = blob_key(k);
    let ct = XChaCha20Poly1305::new((&*key).into())
        .encrypt(
            &nonce.into(),
            Payload {
                msg: plain,
                aad: name,
            },
        )
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

/// Decrypt the backup with the recovered `K`.
pub fn open_blob(
    k: &[u8; 32],
    name: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, MakeError> {
    if sealed.len() < 24 {
        return Err(MakeError::BlobDoesNotOpen);
    }
    let key = blob_key(k);
    XChaCha20Poly1305::new((&*key).into())
        .decrypt(
            sealed[..24].into(),
            Payload {
                msg: &sealed[24..],
                aad: name,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| MakeError::BlobDoesNotOpen)
}

/// A server's opened shares: of `K`, of the OPRF key, and its tag.
pub struct OpenedShares {
    /// Share of `K`.
    pub key: Zeroizing<[u8; 32]>,
    /// Share of the OPRF key.
    pub oprf: Zeroizing<[u8; 32]>,
    /// The tag a restoring client must show.
    pub tag: Zeroizing<[u8; 32]>,
}

/// Make a registration for `name` (unsigned: the caller signs [`Registration::signed_bytes`]).
#[allow(clippy::too_many_arguments)]
pub fn registration<R: RngCore + CryptoRng>(
    name: &BackupName,
    client: Key32,
    epoch: u64,
    server_keys: &[Key32],
    threshold: usize,
    passphrase: &[u8],
    plain: &[u8],
    rng: &mut R,
) -> Result<Registration, MakeError> {
    let n = server_keys.len();
    let k = Zeroizing::new(Scalar::random(rng));
    let oprf = Zeroizing::new(Scalar::random(rng));
    let (k_shares, key_commitments) = vss::share(&k, threshold, n, rng)?;
    let (o_shares, oprf_commitments) = vss::share(&oprf, threshold, n, rng)?;
    let unlock = Unlock::from_key(name.as_slice(), passphrase, &oprf);
    let mut shares = Vec::with_capacity(n);
    for (i, to) in server_keys.iter().enumerate() {
        let i = i as ServerIndex;
        let mut plain = Zeroizing::new([0u8; SHARES_PLAIN_BYTES]);
        plain[..32].copy_from_slice(&*k_shares[usize::from(i)]);
        plain[32..64].copy_from_slice(&*o_shares[usize::from(i)]);
        plain[64..].copy_from_slice(&unlock.tag(i).0);
        let sealed = sealbox::seal(&to.0, &shares_aad(name.as_slice(), epoch, i), &*plain, rng);
        shares.push(Fixed(sealed.try_into().map_err(|_| MakeError::TooMany)?));
    }
    let blob = seal_blob(&k.to_bytes(), name.as_slice(), plain, rng);
    let len = blob.len();
    Ok(Registration {
        name: name.clone(),
        client,
        epoch,
        key_commitments: fits(key_commitments)?,
        oprf_commitments: fits(oprf_commitments)?,
        shares: fits(shares)?,
        blob: Bytes::new(blob).map_err(|_| MakeError::TooBig(len))?,
        signature: UNSIGNED,
    })
}

/// Server `me` opens its shares of a registration with the secret of the key they were
/// sealed to, and checks them against the commitments.
pub fn open_registration(
    r: &Registration,
    me: ServerIndex,
    secret: &StaticSecret,
) -> Result<OpenedShares, VssError> {
    let sealed = r
        .shares
        .as_slice()
        .get(usize::from(me))
        .ok_or(VssError::Shape("no box"))?;
    let plain = sealbox::open(
        secret,
        &shares_aad(r.name.as_slice(), r.epoch, me),
        &sealed.0,
    )
    .ok_or(VssError::Shape("sealed shares do not open"))?;
    let take = |range: std::ops::Range<usize>| {
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&plain[range]);
        out
    };
    let opened = OpenedShares {
        key: take(0..32),
        oprf: take(32..64),
        tag: take(64..96),
    };
    vss::verify(&opened.key, r.key_commitments.as_slice(), me)?;
    vss::verify(&opened.oprf, r.oprf_commitments.as_slice(), me)?;
    Ok(opened)
}

/// One part of dealer `dealer`'s refresh deal for `epoch` over `backups` (at most
/// [`MAX_DEAL_ENTRIES`]); unsigned.
#[allow(clippy::too_many_arguments)]
pub fn deal_part<R: RngCore + CryptoRng>(
    dealer: ServerIndex,
    epoch: u64,
    part: u32,
    last: bool,
    next_key: Key32,
    backups: &[(BackupName, u64)],
    recipients: &[Key32],
    threshold: usize,
    rng: &mut R,
) -> Result<Deal, MakeError> {
    if backups.len() > MAX_DEAL_ENTRIES {
        return Err(MakeError::TooMany);
    }
    let n = recipients.len();
    let mut plain: Vec<Zeroizing<Vec<u8>>> = (0..n)
        .map(|_| Zeroizing::new(Vec::with_capacity(backups.len() * 64)))
        .collect();
    let mut entries = Vec::with_capacity(backups.len());
    for (name, version) in backups {
        let (ks, kc) = vss::zero_sharing(threshold, n, rng)?;
        let (os, oc) = vss::zero_sharing(threshold, n, rng)?;
        for j in 0..n {
            plain[j].extend_from_slice(&*ks[j]);
            plain[j].extend_from_slice(&*os[j]);
        }
        entries.push(DealEntry {
            name: name.clone(),
            version: *version,
            key_commitments: fits(kc)?,
            oprf_commitments: fits(oc)?,
        });
    }
    let mut boxes = Vec::with_capacity(n);
    for (j, to) in recipients.iter().enumerate() {
        let aad = deal_aad(dealer, epoch, part, j as ServerIndex);
        let sealed = sealbox::seal(&to.0, &aad, &plain[j], rng);
        boxes.push(Bytes::new(sealed).map_err(|_| MakeError::TooMany)?);
    }
    Ok(Deal {
        dealer,
        epoch,
        part,
        last,
        next_key,
        entries: fits(entries)?,
        boxes: fits(boxes)?,
        signature: UNSIGNED,
    })
}

/// Recipient `me`'s sub-shares of the deal entries at `applied`, each checked against
/// its entry's commitments: `Ok((δ_K, δ_oprf))` or the error for that entry.
pub type SubShares = Vec<(
    u32,
    Result<(Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>), VssError>,
)>;

/// Open our box of a deal part and check each applied entry's sub-shares.
pub fn open_deal(
    d: &Deal,
    applied: &[u32],
    me: ServerIndex,
    secret: &StaticSecret,
) -> Result<SubShares, VssError> {
    let sealed = d
        .boxes
        .as_slice()
        .get(usize::from(me))
        .ok_or(VssError::Shape("no box"))?;
    let plain = sealbox::open(
        secret,
        &deal_aad(d.dealer, d.epoch, d.part, me),
        sealed.as_slice(),
    )
    .ok_or(VssError::Shape("sub-shares do not open"))?;
    if plain.len() != d.entries.len() * 64 {
        return Err(VssError::Shape("sub-share box of the wrong size"));
    }
    let entries = d.entries.as_slice();
    let mut out = Vec::with_capacity(applied.len());
    for &ix in applied {
        let i = ix as usize;
        let Some(e) = entries.get(i) else {
            out.push((ix, Err(VssError::Shape("no such entry"))));
            continue;
        };
        let mut dk = Zeroizing::new([0u8; 32]);
        let mut dof = Zeroizing::new([0u8; 32]);
        dk.copy_from_slice(&plain[i * 64..i * 64 + 32]);
        dof.copy_from_slice(&plain[i * 64 + 32..i * 64 + 64]);
        let checked = vss::verify_zero(&dk, e.key_commitments.as_slice(), me)
            .and_then(|()| vss::verify_zero(&dof, e.oprf_commitments.as_slice(), me))
            .map(|()| (dk, dof));
        out.push((ix, checked));
    }
    Ok(out)
}
