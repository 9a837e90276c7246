//! The backup-keeper actor: this server's part in key backup (see `protocol::backup`).
//!
//! ```text
//!  dispatch::applied ─Committed(backup entry)─► BackupKeeper ─blocking pool─► BackupStore
//!      (registration: open our sealed shares; deal part: open our sub-shares, check,
//!       add; epoch end: erase the old epoch secret; erase: drop our share)
//!  dispatch::clients ─HandleBackup─► BackupKeeper ─task per call─► requests (info,
//!      create, eval: count the guess through the log first, unlock: compare the tag)
//!  every second ─► publish our first epoch key; deal when the epoch is due
//! ```
//! Applied entries are processed one at a time, in log order (`ctx.wait`), each in one
//! store transaction recording its index, so a re-applied entry is skipped. Secrets are
//! `Zeroizing` and never logged; the store seals them at rest.

mod deal;
mod requests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use openraft::Raft;
use protocol::backup::book::{BackupBook, BackupEffect};
use protocol::backup::make::{open_deal, open_registration};
use protocol::backup::{vss, BackupCommand, Deal};
use protocol::wire::{ClientRequest, ClientResponse, Command, ServerIndex};
use protocol::{Effect, Params};
use tokio::sync::oneshot;
use x25519_dalek::StaticSecret;

use crate::backup_store::{BackupStore, StoreError, StoredShare, Txn};
use crate::client_api::text;
use crate::messages::Committed;
use crate::metrics::{ActorStats, BackupMetrics};
use crate::net::NetHandle;
use crate::store::{AppliedEntry, SharedSm};
use crate::types::TypeConfig;

/// Backup calls a server serves at once (each may wait for a log write).
pub const MAX_BACKUP_CALLS: usize = 64;

/// Operator settings for key backup.
#[derive(Clone, Debug)]
pub struct BackupSettings {
    /// Wrong guesses allowed before this server erases its share of a backup.
    pub guess_limit: u32,
    /// How long an epoch lasts before this server deals its refresh.
    pub refresh: Duration,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            guess_limit: protocol::backup::DEFAULT_GUESS_LIMIT,
            refresh: Duration::from_secs(3600),
        }
    }
}

/// What the keeper's tasks share.
pub struct KeeperCtx {
    /// Our index.
    pub me: ServerIndex,
    /// Our identity (signs our acts, keys and deals).
    pub identity: Arc<keys::Identity>,
    /// Raft, for writes.
    pub raft: Raft<TypeConfig>,
    /// The network, to forward writes.
    pub net: NetHandle,
    /// The applied state.
    pub sm: SharedSm,
    /// Our private store.
    pub store: BackupStore,
    /// Cluster parameters.
    pub params: Arc<Params>,
    /// Operator settings.
    pub settings: BackupSettings,
    /// Counters.
    pub metrics: BackupMetrics,
    calls: Arc<tokio::sync::Semaphore>,
}

impl KeeperCtx {
    /// A context.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: ServerIndex,
        identity: Arc<keys::Identity>,
        raft: Raft<TypeConfig>,
        net: NetHandle,
        sm: SharedSm,
        store: BackupStore,
        params: Arc<Params>,
        settings: BackupSettings,
        metrics: BackupMetrics,
    ) -> Self {
        Self {
            me,
            identity,
            raft,
            net,
            sm,
            store,
            params,
            settings,
            metrics,
            calls: Arc::new(tokio::sync::Semaphore::new(MAX_BACKUP_CALLS)),
        }
    }

    /// Read the replicated backup book.
    pub fn book<T>(&self, f: impl FnOnce(&BackupBook) -> T) -> T {
        let d = self.sm.read().unwrap_or_else(|p| p.into_inner());
        f(&d.machine.state().backups)
    }

    fn refresh_gauges(&self) {
        if let Ok(n) = self.store.shares_held() {
            self.metrics.shares_held.set(n as i64);
        }
        if let Ok(n) = self.store.secrets_held() {
            self.metrics.secrets_held.set(n as i64);
        }
        self.metrics.epoch.set(self.book(|b| b.epoch) as i64);
    }
}

/// The backup-keeper.
pub struct BackupKeeper {
    ctx: Arc<KeeperCtx>,
    stats: ActorStats,
    epoch_started: Instant,
    busy: Arc<AtomicBool>,
}

impl BackupKeeper {
    /// A keeper over `ctx`.
    pub fn new(ctx: KeeperCtx, stats: ActorStats) -> Self {
        Self {
            ctx: Arc::new(ctx),
            stats,
            epoch_started: Instant::now(),
            busy: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Actor for BackupKeeper {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::MAILBOX_CAPACITY);
        self.ctx.refresh_gauges();
        ctx.run_interval(Duration::from_secs(1), |act, _| act.tick());
    }
}

impl BackupKeeper {
    /// Publish our first key, or deal when the epoch is due; one such task at a time.
    fn tick(&mut self) {
        let due = self.epoch_started.elapsed() >= self.ctx.settings.refresh;
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let (ctx, busy) = (self.ctx.clone(), self.busy.clone());
        tokio::spawn(async move {
            if let Err(e) = deal::step(&ctx, due).await {
                ctx.metrics.failure(e.label());
                tracing::warn!(error = %e, "backup refresh step failed; retrying next tick");
            }
            busy.store(false, Ordering::Release);
        });
    }
}

/// A client's backup call.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandleBackup {
    /// The call.
    pub req: ClientRequest,
    /// Where the answer goes.
    pub reply: oneshot::Sender<ClientResponse>,
}

impl Handler<HandleBackup> for BackupKeeper {
    type Result = ();
    fn handle(&mut self, msg: HandleBackup, _: &mut Self::Context) {
        self.stats.dequeued();
        let Ok(permit) = self.ctx.calls.clone().try_acquire_owned() else {
            self.stats.failed();
            let _ = msg.reply.send(ClientResponse::Unavailable(text(
                "server busy: too many backup calls",
            )));
            return;
        };
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = msg.reply.send(requests::serve(&ctx, msg.req).await);
        });
    }
}

impl Handler<Committed> for BackupKeeper {
    type Result = ();
    fn handle(&mut self, msg: Committed, ctx: &mut Self::Context) {
        self.stats.dequeued();
        let keeper = self.ctx.clone();
        let work = tokio::task::spawn_blocking(move || {
            let r = process(&keeper, &msg.0);
            keeper.refresh_gauges();
            r
        });
        // In log order: the next entry waits for this one.
        ctx.wait(
            actix::fut::wrap_future(work).map(|res, act: &mut Self, _| match res {
                Ok(Ok(advanced)) => {
                    if advanced {
                        act.epoch_started = Instant::now();
                    }
                }
                Ok(Err(e)) => {
                    act.stats.failed();
                    act.ctx.metrics.failure("store");
                    tracing::error!(error = %e, "backup entry not processed");
                }
                Err(e) => {
                    act.stats.failed();
                    tracing::error!(error = %e, "backup entry processing panicked");
                }
            }),
        );
    }
}

/// Open our sub-shares of a deal part's `applied` entries with `secret` (the epoch
/// secret they are sealed to, if we still hold it), check each against its commitments
/// and add it to our share; a share whose sub-share is bad or cannot be opened is
/// marked unusable (it no longer matches the commitments).
pub fn add_sub_shares(
    txn: &mut Txn<'_>,
    me: ServerIndex,
    d: &Deal,
    applied: &[u32],
    secret: Option<&StaticSecret>,
    metrics: &BackupMetrics,
) -> Result<(), StoreError> {
    let opened = match secret {
        None => Err("no epoch secret for the key this deal is sealed to".to_string()),
        Some(secret) => open_deal(d, applied, me, secret).map_err(|e| e.to_string()),
    };
    let entries = d.entries.as_slice();
    let subs = match opened {
        Ok(subs) => subs,
        Err(why) => {
            metrics.failure("deal_does_not_open");
            tracing::warn!(dealer = d.dealer, %why, "cannot open our sub-shares");
            for &ix in applied {
                let e = &entries[ix as usize];
                if let Some(mut share) = txn.share(e.name.as_slice())? {
                    share.valid = false;
                    txn.put_share(e.name.as_slice(), &share)?;
                }
            }
            return Ok(());
        }
    };
    for (ix, sub) in subs {
        let e = &entries[ix as usize];
        let Some(mut share) = txn.share(e.name.as_slice())? else {
            continue;
        };
        if share.version != e.version {
            continue;
        }
        let added = sub.and_then(|(dk, dof)| {
            Ok((
                vss::add_scalars(&share.key, &dk)?,
                vss::add_scalars(&share.oprf, &dof)?,
            ))
        });
        match added {
            Ok((k, o)) if share.valid => {
                (share.key, share.oprf) = (k, o);
                metrics.verified.inc();
            }
            Ok(_) => {}
            Err(_) => {
                share.valid = false;
                metrics.failure("bad_sub_share");
                tracing::warn!(
                    dealer = d.dealer,
                    "a refresh sub-share does not verify; our share of that backup is now unusable"
                );
            }
        }
        txn.put_share(e.name.as_slice(), &share)?;
    }
    Ok(())
}

/// Process one applied backup entry; true if it started a new epoch.
fn process(ctx: &KeeperCtx, entry: &AppliedEntry) -> Result<bool, StoreError> {
    let (Command::Backup(cmd), Effect::Backup(effect)) = (&entry.command, &entry.effect) else {
        return Ok(false);
    };
    if entry.index <= ctx.store.applied()? {
        return Ok(false);
    }
    let me = ctx.me;
    let mut txn = ctx.store.begin()?;
    let mut advanced = false;
    match (cmd.as_ref(), effect) {
        (
            BackupCommand::Register(r),
            BackupEffect::Registered {
                version, sealed_to, ..
            },
        ) => {
            let key = sealed_to
                .get(usize::from(me))
                .map(|k| k.0)
                .unwrap_or_default();
            match ctx.store.secret(&key)? {
                None => ctx.metrics.failure("no_epoch_secret"),
                Some(secret) => match open_registration(r, me, &secret) {
                    Ok(o) => {
                        let share = StoredShare {
                            version: *version,
                            key: o.key,
                            oprf: o.oprf,
                            tag: o.tag,
                            valid: true,
                        };
                        txn.put_share(r.name.as_slice(), &share)?;
                        ctx.metrics.registrations.inc();
                    }
                    Err(e) => {
                        ctx.metrics.failure("share_does_not_verify");
                        tracing::warn!(error = %e, "our shares of a new backup do not open or verify");
                    }
                },
            }
            txn.put_blob(r.name.as_slice(), *version, r.blob.as_slice())?;
        }
        (BackupCommand::Act(_), BackupEffect::Erased { name, server, gone })
            if *server == me || *gone =>
        {
            txn.erase_share(name.as_slice(), *gone)?;
            ctx.metrics.erasures.inc();
        }
        (
            BackupCommand::Deal(d),
            BackupEffect::Dealt {
                applied,
                sealed_to,
                advanced: adv,
                ..
            },
        ) => {
            ctx.metrics.deals_applied.inc();
            let key = sealed_to
                .get(usize::from(me))
                .map(|k| k.0)
                .unwrap_or_default();
            let secret = ctx.store.secret(&key)?;
            add_sub_shares(&mut txn, me, d, applied, secret.as_ref(), &ctx.metrics)?;
            if let Some((epoch, adopted)) = adv {
                // Adopted: the old key is never sealed to again (parts and registrations
                // of the old epoch are refused from now on), so it is erased. Not
                // adopted: we keep our old key, and a next key dealt for the epoch that
                // ended is erased.
                if adopted.iter().any(|(s, _)| *s == me) {
                    txn.erase_secret(&key)?;
                    txn.set_pending(None)?;
                } else if let Some((for_epoch, public)) = txn.pending()? {
                    if for_epoch < *epoch {
                        txn.erase_secret(&public)?;
                        txn.set_pending(None)?;
                    }
                }
                advanced = true;
                tracing::info!(epoch, "backup epoch started");
            }
        }
        _ => {}
    }
    txn.commit(entry.index)?;
    Ok(advanced)
}
