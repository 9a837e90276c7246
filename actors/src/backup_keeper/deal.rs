//! This server's side of the refresh: publish a first epoch key, and when an epoch is
//! due, deal zero-sharings of every backup in parts of at most `MAX_DEAL_ENTRIES`,
//! each committed before the next is made.

use protocol::backup::book::{BackupRefusal, UNSIGNED};
use protocol::backup::make::deal_part;
use protocol::backup::{BackupCommand, BackupName, EpochKey, ServerSigned, MAX_DEAL_ENTRIES};
use protocol::bounded::Fixed;
use protocol::wire::{Command, RejectReason};
use x25519_dalek::{PublicKey, StaticSecret};

use super::KeeperCtx;
use crate::backup_store::StoreError;
use crate::types::Applied;
use crate::write::write;

/// Why a refresh step stopped.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The private store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The write did not commit.
    #[error("not committed: {0}")]
    Write(String),
    /// The state machine refused it.
    #[error("refused: {0}")]
    Refused(RejectReason),
    /// Making the deal failed.
    #[error("dealing: {0}")]
    Make(String),
}

impl StepError {
    /// A metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Store(_) => "store",
            Self::Write(_) => "write",
            Self::Refused(_) => "refused",
            Self::Make(_) => "make",
        }
    }
}

async fn commit(ctx: &KeeperCtx, cmd: BackupCommand) -> Result<(), StepError> {
    match write(&ctx.raft, &ctx.net, Command::Backup(Box::new(cmd))).await {
        Ok(Applied::Rejected(r)) => Err(StepError::Refused(r)),
        Ok(_) => Ok(()),
        Err(e) => Err(StepError::Write(e.to_string())),
    }
}

/// The key we are about to publish or deal for `epoch`: the pending one if it was
/// made for this epoch (a step that failed before it committed), else a fresh one,
/// stored before it is ever sent.
fn next_key(ctx: &KeeperCtx, epoch: u64) -> Result<[u8; 32], StoreError> {
    let current = ctx.book(|b| b.keys.get(&ctx.me).map(|k| k.0));
    let mut txn = ctx.store.begin()?;
    if let Some((for_epoch, public)) = txn.pending()? {
        if for_epoch == epoch && ctx.store.secret(&public)?.is_some() {
            return Ok(public);
        }
        // A pending key the book has since adopted is our key now: never erase it.
        if Some(public) != current {
            txn.erase_secret(&public)?;
        }
    }
    let secret = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let public = PublicKey::from(&secret).to_bytes();
    txn.put_secret(&secret)?;
    txn.set_pending(Some((epoch, public)))?;
    txn.commit_only()?;
    Ok(public)
}

/// One step: publish our first key if the book lacks it; else, if `due` and we have not
/// dealt this epoch, deal.
pub async fn step(ctx: &KeeperCtx, due: bool) -> Result<(), StepError> {
    let me = ctx.me;
    let (initialised, have_key, epoch, dealt, next_part, keys) = {
        let d = ctx.sm.read().unwrap_or_else(|p| p.into_inner());
        let s = d.machine.state();
        let b = &s.backups;
        (
            s.genesis.is_some(),
            b.keys.contains_key(&me),
            b.epoch,
            b.dealt.contains(&me),
            b.parts.get(&me).copied().unwrap_or(0),
            b.all_keys(usize::from(ctx.params.servers)).ok(),
        )
    };
    if !initialised {
        return Ok(());
    }
    if !have_key {
        let public = next_key(ctx, u64::MAX)?;
        let k = EpochKey {
            server: me,
            key: Fixed(public),
            signature: UNSIGNED,
        }
        .signed(&ctx.identity);
        commit(ctx, BackupCommand::Key(k)).await?;
        let mut txn = ctx.store.begin()?;
        txn.set_pending(None)?;
        txn.commit_only()?;
        tracing::info!("published our first backup key");
        return Ok(());
    }
    let Some(recipients) = keys else {
        return Ok(());
    };
    if !due || dealt {
        return Ok(());
    }
    let next = next_key(ctx, epoch)?;
    let backups: Vec<(BackupName, u64)> = ctx.book(|b| {
        b.records
            .iter()
            .map(|(n, r)| (n.clone(), r.version))
            .collect()
    });
    // Part numbers go on from what the book has of ours (a step cut short resumes),
    // each part the matching slice of the backups now; if there are fewer backups than
    // when we started, one empty last part ends our deal.
    let chunks: Vec<&[(BackupName, u64)]> = backups.chunks(MAX_DEAL_ENTRIES).collect();
    let total = (chunks.len() as u32).max(next_part + 1);
    let started = std::time::Instant::now();
    for part in next_part..total {
        let chunk = chunks
            .get(part as usize)
            .map_or_else(Vec::new, |c| c.to_vec());
        let (recipients, t) = (recipients.clone(), usize::from(ctx.params.threshold));
        let last = part + 1 == total;
        let made = tokio::task::spawn_blocking(move || {
            deal_part(
                me,
                epoch,
                part,
                last,
                Fixed(next),
                &chunk,
                &recipients,
                t,
                &mut rand::rngs::OsRng,
            )
        })
        .await
        .map_err(|e| StepError::Make(e.to_string()))?
        .map_err(|e| StepError::Make(e.to_string()))?;
        let signed = made.signed(&ctx.identity);
        match commit(ctx, BackupCommand::Deal(signed)).await {
            Ok(()) => {
                ctx.metrics.deals_sent.inc();
            }
            // Every server deals when its clock says so; the epoch ends with the first
            // t + 1, and a deal still going then is simply not needed.
            Err(StepError::Refused(RejectReason::Backup(
                BackupRefusal::WrongEpoch { .. } | BackupRefusal::PartOutOfOrder { .. },
            ))) => {
                tracing::debug!(epoch, part, "the epoch ended before our deal was in");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    ctx.metrics
        .deal_ms
        .set(started.elapsed().as_millis() as i64);
    tracing::info!(
        epoch,
        parts = total,
        backups = backups.len(),
        "dealt our backup refresh"
    );
    Ok(())
}
