//! Answers to clients' backup calls. Every guess is counted through the log before the
//! passphrase is evaluated, and a share leaves only sealed to the caller's one-time
//! key, after the caller showed this server's tag.

use std::time::Duration;

use protocol::backup::book::{BackupRefusal, Record, UNSIGNED};
use protocol::backup::{
    oprf, reply_aad, sealbox, vss, Act, BackupAct, BackupCommand, BackupName, BackupView,
    RecordView, Registration, ServerSigned,
};
use protocol::bounded::{BoundedVec, Bytes, Fixed, Key32};
use protocol::wire::{ClientRequest, ClientResponse, Command, RejectReason};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::KeeperCtx;
use crate::client_api::text;
use crate::types::Applied;
use crate::write::write;

/// How long a call waits for our store to catch up with the state (a refresh part
/// applied in the state but not yet to our share).
const CATCH_UP: Duration = Duration::from_secs(5);

/// A call's answer, or the refusal or error that ends it early.
type Answer<T> = Result<T, Box<ClientResponse>>;

fn refuse(r: BackupRefusal) -> Box<ClientResponse> {
    Box::new(ClientResponse::Rejected(RejectReason::Backup(r)))
}

fn unavailable(why: &str) -> Box<ClientResponse> {
    Box::new(ClientResponse::Unavailable(text(why)))
}

/// Answer one backup call.
pub async fn serve(ctx: &KeeperCtx, req: ClientRequest) -> ClientResponse {
    let out = match req {
        ClientRequest::BackupInfo { name } => Ok(info(ctx, name.as_ref())),
        ClientRequest::BackupCreate(r) => create(ctx, *r).await,
        ClientRequest::BackupEval {
            name,
            version,
            blinded,
        } => eval(ctx, &name, version, &blinded).await,
        ClientRequest::BackupUnlock {
            name,
            version,
            tag,
            reply_to,
        } => unlock(ctx, &name, version, &tag, &reply_to).await,
        _ => Ok(ClientResponse::Unavailable(text("not a backup call"))),
    };
    out.unwrap_or_else(|e| *e)
}

fn info(ctx: &KeeperCtx, name: Option<&BackupName>) -> ClientResponse {
    let (epoch, keys, record) = ctx.book(|b| {
        let keys = b
            .all_keys(usize::from(ctx.params.servers))
            .unwrap_or_default();
        (
            b.epoch,
            keys,
            name.and_then(|n| b.records.get(n)).map(RecordView::of),
        )
    });
    let blob = match (name, &record) {
        (Some(n), Some(r)) => ctx
            .store
            .blob(n.as_slice())
            .ok()
            .flatten()
            .filter(|(v, _)| *v == r.version)
            .and_then(|(_, b)| Bytes::new(b).ok()),
        _ => None,
    };
    ClientResponse::Backup(Box::new(BackupView {
        epoch,
        keys: BoundedVec::new(keys).unwrap_or_default(),
        record,
        blob,
        guess_limit: ctx.settings.guess_limit,
    }))
}

async fn commit(ctx: &KeeperCtx, cmd: BackupCommand) -> Answer<()> {
    match write(&ctx.raft, &ctx.net, Command::Backup(Box::new(cmd))).await {
        Ok(Applied::Rejected(r)) => Err(Box::new(ClientResponse::Rejected(r))),
        Ok(_) => Ok(()),
        Err(e) => Err(unavailable(&e.last.to_string())),
    }
}

async fn create(ctx: &KeeperCtx, r: Registration) -> Answer<ClientResponse> {
    // What apply would refuse cheaply is refused before it costs a log entry.
    let (owner, epoch) = {
        let d = ctx.sm.read().unwrap_or_else(|p| p.into_inner());
        let s = d.machine.state();
        (s.names.get(&r.name).map(|k| k.sign), s.backups.epoch)
    };
    if owner != Some(r.client) {
        return Err(refuse(BackupRefusal::NotYourName));
    }
    if r.epoch != epoch {
        return Err(refuse(BackupRefusal::WrongEpoch {
            got: r.epoch,
            current: epoch,
        }));
    }
    if !r.signature_valid() {
        return Err(refuse(BackupRefusal::BadSignature));
    }
    commit(ctx, BackupCommand::Register(r)).await?;
    Ok(ClientResponse::Accepted { round: 0 })
}

fn record(ctx: &KeeperCtx, name: &BackupName, version: u64) -> Answer<Record> {
    let rec = ctx
        .book(|b| b.records.get(name).cloned())
        .filter(|r| r.version == version)
        .ok_or_else(|| refuse(BackupRefusal::NoBackup))?;
    if rec.erased.contains(&ctx.me) {
        return Err(refuse(BackupRefusal::Erased));
    }
    Ok(rec)
}

async fn act(ctx: &KeeperCtx, name: &BackupName, version: u64, act: Act) -> Answer<()> {
    let a = BackupAct {
        name: name.clone(),
        version,
        server: ctx.me,
        act,
        signature: UNSIGNED,
    }
    .signed(&ctx.identity);
    commit(ctx, BackupCommand::Act(a)).await
}

async fn erase(ctx: &KeeperCtx, name: &BackupName, version: u64) -> Box<ClientResponse> {
    if let Err(e) = act(ctx, name, version, Act::Erase).await {
        return e;
    }
    tracing::info!("erased our share of a backup after too many wrong guesses");
    refuse(BackupRefusal::Erased)
}

/// Our share (of `K` if `key`, else of the OPRF key) and the commitments it lies on,
/// once our store has caught up with the state.
async fn current_share(
    ctx: &KeeperCtx,
    name: &BackupName,
    version: u64,
    key: bool,
) -> Answer<(Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>, Vec<Key32>)> {
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    loop {
        let share = ctx
            .store
            .share(name.as_slice())
            .map_err(|e| unavailable(&e.to_string()))?
            .filter(|s| s.version == version)
            .ok_or_else(|| {
                refuse(BackupRefusal::NotReady(
                    "this server holds no share of it".into(),
                ))
            })?;
        if !share.valid {
            return Err(refuse(BackupRefusal::NotReady(
                "this server missed a refresh of it".into(),
            )));
        }
        let rec = record(ctx, name, version)?;
        let (value, commitments) = if key {
            (share.key, rec.key_commitments)
        } else {
            (share.oprf, rec.oprf_commitments)
        };
        if vss::verify(&value, &commitments, ctx.me).is_ok() {
            return Ok((value, share.tag, commitments));
        }
        if tokio::time::Instant::now() >= deadline {
            ctx.metrics.failure("share_out_of_step");
            return Err(refuse(BackupRefusal::NotReady(
                "this server's share is catching up with a refresh".into(),
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn bounded(v: Vec<Key32>) -> BoundedVec<Key32, { protocol::limits::MAX_SERVERS }> {
    BoundedVec::new(v).unwrap_or_default()
}

async fn eval(
    ctx: &KeeperCtx,
    name: &BackupName,
    version: u64,
    blinded: &Key32,
) -> Answer<ClientResponse> {
    let me = usize::from(ctx.me);
    let limit = ctx.settings.guess_limit;
    if record(ctx, name, version)?.guesses[me] >= limit {
        return Err(erase(ctx, name, version).await);
    }
    // The guess is counted before anything is evaluated.
    let attempt = Fixed(Sha256::digest(blinded.0).into());
    act(ctx, name, version, Act::Guess { attempt }).await?;
    ctx.metrics.guesses.inc();
    let guesses = record(ctx, name, version)?.guesses[me];
    if guesses > limit {
        return Err(erase(ctx, name, version).await);
    }
    let (share, _, commitments) = current_share(ctx, name, version, false).await?;
    let eval = oprf::evaluate(&share, blinded, &mut rand::rngs::OsRng).map_err(|_| {
        refuse(BackupRefusal::BadShape(
            "the blinded input is not a group element".into(),
        ))
    })?;
    Ok(ClientResponse::BackupEvaluated {
        eval,
        oprf_commitments: bounded(commitments),
        guesses,
        limit,
    })
}

async fn unlock(
    ctx: &KeeperCtx,
    name: &BackupName,
    version: u64,
    tag: &Key32,
    reply_to: &Key32,
) -> Answer<ClientResponse> {
    let me = usize::from(ctx.me);
    let limit = ctx.settings.guess_limit;
    let guesses = record(ctx, name, version)?.guesses[me];
    let (_, ours, _) = current_share(ctx, name, version, true).await?;
    // Constant time: how many bytes differ, not where.
    let diff = ours
        .iter()
        .zip(tag.0.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        ctx.metrics.wrong_passphrases.inc();
        if guesses >= limit {
            return Err(erase(ctx, name, version).await);
        }
        return Err(refuse(BackupRefusal::WrongPassphrase {
            left: limit - guesses,
        }));
    }
    act(ctx, name, version, Act::Unlocked).await?;
    ctx.metrics.unlocks.inc();
    let (share, _, commitments) = current_share(ctx, name, version, true).await?;
    let sealed = sealbox::seal(
        &reply_to.0,
        &reply_aad(name.as_slice(), version, ctx.me),
        &*share,
        &mut rand::rngs::OsRng,
    );
    let sealed = Fixed(
        sealed
            .try_into()
            .map_err(|_| unavailable("sealing failed"))?,
    );
    Ok(ClientResponse::BackupShare {
        sealed,
        key_commitments: bounded(commitments),
    })
}
