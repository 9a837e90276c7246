//! The checks a server makes with no state, before anything costs a log entry or more
//! work: registrations, uploads, and which rounds take shares.

use crate::limits::MAX_PROOF_SEALED_BYTES;
use crate::params::{Admission, Params};
use crate::wire::{Register, RejectReason, Round, ServerIndex, ShareUpload};

use super::FUTURE_WINDOW;

/// Checks on a registration that need no state: the name's form, admission and the
/// signature. Servers run these before forwarding, so under the `listed` policy no
/// stranger's registration costs a log entry; the state machine runs them again on apply.
pub fn check_register(params: &Params, reg: &Register) -> Result<(), RejectReason> {
    check_name(reg.name.as_slice())?;
    if let Admission::Listed(allowed) = &params.admission {
        if !allowed.contains(&reg.keys.sign) {
            return Err(RejectReason::UnknownClient);
        }
    }
    if !reg.signature_valid() {
        return Err(RejectReason::BadSignature);
    }
    if !reg.dh_proof_valid() {
        return Err(RejectReason::BadKeyProof);
    }
    Ok(())
}

/// Checks server `me` makes on an upload with no state: addressed to it, admission,
/// one digest per server, the share's size (a seed or a whole share, as the rotation
/// says) and digest, and the signature. What is refused here never costs more work.
pub fn check_upload(
    params: &Params,
    up: &ShareUpload,
    me: ServerIndex,
) -> Result<(), RejectReason> {
    if up.server != me {
        return Err(RejectReason::WrongServer(up.server));
    }
    if let Admission::Listed(allowed) = &params.admission {
        if !allowed.contains(&up.client) {
            return Err(RejectReason::UnknownClient);
        }
    }
    if up.digests.len() != usize::from(params.servers) {
        return Err(RejectReason::WrongDigestCount {
            expected: u32::from(params.servers),
            got: up.digests.len() as u32,
        });
    }
    let expected = params.sealed_bytes_for(up.round, &up.client, usize::from(me));
    if up.share.ciphertext.len() != expected {
        return Err(RejectReason::WrongShareSize {
            expected: expected as u32,
            got: up.share.ciphertext.len() as u32,
        });
    }
    if up.proof_digests.len() != usize::from(params.servers) {
        return Err(RejectReason::WrongDigestCount {
            expected: u32::from(params.servers),
            got: up.proof_digests.len() as u32,
        });
    }
    let seeded = crate::submission::is_seed_server(params, up.round, &up.client, usize::from(me));
    let proof_bytes = if seeded { 0 } else { MAX_PROOF_SEALED_BYTES };
    if up.proof.len() != proof_bytes {
        return Err(RejectReason::WrongProofSize {
            expected: proof_bytes as u32,
            got: up.proof.len() as u32,
        });
    }
    let mine = usize::from(me);
    if up.digests.as_slice().get(mine).map(|d| d.0) != Some(crate::wire::share_digest(&up.share))
        || up.proof_digests.as_slice().get(mine).map(|d| d.0)
            != Some(crate::wire::proof_digest(up.proof.as_slice()))
    {
        return Err(RejectReason::DigestMismatch);
    }
    if !up.signature_valid() {
        return Err(RejectReason::BadSignature);
    }
    Ok(())
}

/// Whether a share for `round` may be held while `open` is the open round: not for a
/// closed round, nor more than [`FUTURE_WINDOW`] ahead (this server may be a close or
/// two behind the leader).
pub fn check_share_round(round: Round, open: Round) -> Result<(), RejectReason> {
    if round < open {
        return Err(RejectReason::StaleRound { got: round, open });
    }
    if round > open.saturating_add(FUTURE_WINDOW) {
        return Err(RejectReason::FutureRound { got: round, open });
    }
    Ok(())
}

/// Check a name for registration: the rule in [`crate::names`], in normal form.
pub fn check_name(name: &[u8]) -> Result<&str, RejectReason> {
    let text =
        std::str::from_utf8(name).map_err(|_| RejectReason::InvalidName("not UTF-8".into()))?;
    crate::names::check(text).map_err(|e| RejectReason::InvalidName(e.to_string()))?;
    Ok(text)
}
