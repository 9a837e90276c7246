//! Key backup in the window: "Back up" (a panel opened from the header) and "Restore
//! from backup" (on the first-run screen).
//!
//! A backup is made by `client::backup::create` on the engine's runtime (it opens a
//! connection of its own to every server); a restore, before any engine runs, on a
//! short-lived runtime of its own on a thread. Either reports its steps and its end
//! through a channel that the window reads as messages, so the UI never waits.
//!
//! Passphrases are checked here before anything is sent: a weak one or two that differ
//! are refused in words, and each restore attempt counts as a guess at every server,
//! so a restore that would write over an identity already there is refused before it
//! asks.

use std::fmt;
use std::path::PathBuf;

use client::backup::{self, Cluster, Step};
use client::conn::ClusterConn;
use iced::widget::{button, column, container, row, text, text_input};
use iced::{Alignment, Color, Element, Fill, Task};
use tokio::sync::mpsc;

use crate::app::{App, Message, Registration};

/// The Back up panel's passphrase input.
pub const BACKUP_PASS: &str = "backup-pass";
/// The Back up panel's "again" input.
pub const BACKUP_AGAIN: &str = "backup-again";
/// The restore form's name input.
pub const RESTORE_NAME: &str = "restore-name";
/// The restore form's passphrase input.
pub const RESTORE_PASS: &str = "restore-pass";

/// Errors are shown in this red.
const ERROR_RED: Color = Color::from_rgb8(0xc9, 0x2a, 0x2a);

/// A passphrase as typed: never printed, its bytes overwritten when dropped (best
/// effort: iced's text input keeps copies of its own while it is edited).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The passphrase itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Nothing typed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(hidden)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

/// What a running backup or restore reports.
#[derive(Debug, Clone)]
pub enum Report<T> {
    /// It reached this step.
    Step(Step),
    /// It finished: what it made, or why not in words.
    Done(Result<T, String>),
    /// Its reports ended (after `Done`, or when it stopped without one).
    Ended,
}

/// A backup the servers now hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    /// The name it is kept under.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// Bytes of the encrypted backup.
    pub bytes: usize,
}

/// A restored identity, written to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredTo {
    /// Its name.
    pub name: String,
    /// The client config written.
    pub config: PathBuf,
    /// The backup's version.
    pub version: u64,
    /// Whether the backup held contacts.
    pub contacts: bool,
}

/// What the Back up panel and the restore form do.
#[derive(Debug, Clone)]
pub enum BackupMsg {
    /// Open or close the Back up panel.
    Toggle,
    /// The passphrase changed.
    Pass(Secret),
    /// The passphrase typed again changed.
    Again(Secret),
    /// "Back up now".
    Start,
    /// What the running backup reports.
    Made(Report<Made>),
    /// Restore form: the name the backup was made under.
    RestoreName(String),
    /// Restore form: the passphrase.
    RestorePass(Secret),
    /// "Restore".
    Restore,
    /// What the running restore reports.
    Restored(Report<RestoredTo>),
}

/// Where a backup or restore stands.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Status {
    /// Nothing asked yet.
    #[default]
    Idle,
    /// Running: the last step reported (none yet while connecting).
    Working(Option<Step>),
    /// Finished, in words.
    Done(String),
    /// Refused or failed, in words.
    Failed(String),
}

impl Status {
    /// Running now.
    pub fn working(&self) -> bool {
        matches!(self, Self::Working(_))
    }

    /// The status line, if there is one.
    pub fn words(&self) -> Option<String> {
        match self {
            Self::Idle => None,
            Self::Working(None) => Some("connecting to the servers…".into()),
            Self::Working(Some(step)) => Some(format!("{}…", step_words(step))),
            Self::Done(s) | Self::Failed(s) => Some(s.clone()),
        }
    }

    /// Take a report; the finished value, if this is it.
    fn take<T>(&mut self, report: Report<T>, failed: &str) -> Option<T> {
        match report {
            Report::Step(step) => *self = Self::Working(Some(step)),
            Report::Done(Ok(v)) => return Some(v),
            Report::Done(Err(e)) => *self = Self::Failed(format!("{failed}: {e}")),
            Report::Ended if self.working() => {
                *self = Self::Failed(format!(
                    "{failed}: it stopped before it finished; try again"
                ));
            }
            Report::Ended => {}
        }
        None
    }
}

/// A step in words.
pub fn step_words(step: &Step) -> &'static str {
    match step {
        Step::Asking => "asking every server how backups stand",
        Step::Sending => "sealing the shares and sending the backup",
        Step::Checking => "the servers are counting this guess and checking the passphrase",
        Step::Unlocking => "asking the servers for their shares",
        Step::Opening => "decrypting the backup",
    }
}

/// The Back up panel and the restore form.
#[derive(Debug, Default)]
pub struct Backup {
    /// The Back up panel is open.
    pub open: bool,
    /// The passphrase.
    pub pass: Secret,
    /// The passphrase typed again.
    pub again: Secret,
    /// Where the backup stands.
    pub status: Status,
    /// Restore form: the name.
    pub restore_name: String,
    /// Restore form: the passphrase.
    pub restore_pass: Secret,
    /// Where the restore stands.
    pub restore_status: Status,
}

/// Refuse a new backup's passphrase in words: missing, typed differently twice, or
/// too weak (`name` is the name the backup is kept under).
pub fn check_new(pass: &Secret, again: &Secret, name: &str) -> Result<(), String> {
    if pass.is_empty() {
        return Err("type a passphrase, then the same passphrase again below it".into());
    }
    if pass != again {
        return Err("the two passphrases differ: type the same passphrase in both fields".into());
    }
    backup::check_passphrase(pass.expose(), name)
}

/// What a finished backup says.
pub fn made_words(m: &Made) -> String {
    format!(
        "Backed up ({} bytes encrypted) as version {} under the name {}. To restore it on \
         another computer you need that name, the cluster file and this passphrase.",
        m.bytes, m.version, m.name
    )
}

/// What a finished restore says.
pub fn restored_words(r: &RestoredTo) -> String {
    let contacts = if r.contacts {
        "keys and contacts"
    } else {
        "keys (the backup held no contacts)"
    };
    format!(
        "Restored {} from backup version {}: {contacts} written to {}.",
        r.name,
        r.version,
        r.config.display()
    )
}

/// A restore that may go ahead: which name, from which cluster, into which folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    /// The name the backup was made under.
    pub name: String,
    /// The cluster file (or a client config naming one).
    pub cluster: PathBuf,
    /// Where the key, config and contacts are written (first-run's folder).
    pub folder: PathBuf,
}

/// Check the restore form before anything is asked (every attempt that reaches the
/// servers counts as a guess): a cluster file, a valid name, a passphrase, and no
/// identity of that name in the folder already.
pub fn restore_plan(cluster: &str, name: &str, pass: &Secret) -> Result<RestorePlan, String> {
    let cluster = cluster.trim();
    if cluster.is_empty() {
        return Err("enter the cluster file (cluster.toml) above".into());
    }
    let name = name.trim();
    if name.is_empty() {
        return Err("name: enter the name the backup was made under".into());
    }
    crate::link::check_name(name)?;
    if pass.is_empty() {
        return Err("type the backup's passphrase".into());
    }
    let cluster = PathBuf::from(cluster);
    let folder = crate::link::first_run_folder(&cluster);
    for file in [format!("{name}.toml"), format!("{name}.key")] {
        let path = folder.join(file);
        if path.exists() {
            return Err(format!(
                "{} already exists: open it above instead, or move it away to restore",
                path.display()
            ));
        }
    }
    Ok(RestorePlan {
        name: name.to_string(),
        cluster,
        folder,
    })
}

impl App {
    /// Apply a backup message.
    pub(crate) fn on_backup(&mut self, m: BackupMsg) -> Task<Message> {
        match m {
            BackupMsg::Toggle => {
                self.backup.open = !self.backup.open;
                if self.backup.open {
                    return iced::widget::operation::focus(BACKUP_PASS);
                }
            }
            BackupMsg::Pass(s) => self.backup.pass = s,
            BackupMsg::Again(s) => self.backup.again = s,
            BackupMsg::Start => return self.start_backup(),
            BackupMsg::Made(report) => {
                if let Some(made) = self.backup.status.take(report, "Not backed up") {
                    self.backup.status = Status::Done(made_words(&made));
                }
            }
            BackupMsg::RestoreName(s) => self.backup.restore_name = s,
            BackupMsg::RestorePass(s) => self.backup.restore_pass = s,
            BackupMsg::Restore => return self.start_restore(),
            BackupMsg::Restored(report) => {
                let failed = "Not restored";
                if let Some(done) = self.backup.restore_status.take(report, failed) {
                    let words = restored_words(&done);
                    // Shown in the banner once the identity opens (an error opening it
                    // replaces it there; the form keeps the line).
                    self.notice = Some(words.clone());
                    self.backup.restore_status = Status::Done(words);
                    self.setup.path = done.config.display().to_string();
                    return self.open(done.config);
                }
            }
        }
        Task::none()
    }

    /// The name a backup is kept under: the registered one (the servers take a backup
    /// only from the key the name is registered to).
    fn backup_name(&self) -> Result<String, String> {
        match (&self.registration, &self.me) {
            (Registration::Registered(name), _) => Ok(name.clone()),
            (Registration::Needed, _) => Err(
                "register your name first (at the top): a backup is kept under your registered name"
                    .into(),
            ),
            (_, Some(me)) => Ok(me.name.clone()),
            (_, None) => Err("open an identity first".into()),
        }
    }

    /// "Back up now": check the passphrases, then make the backup on the engine's runtime.
    fn start_backup(&mut self) -> Task<Message> {
        if self.backup.status.working() {
            return Task::none();
        }
        let checked = self.backup_name().and_then(|name| {
            check_new(&self.backup.pass, &self.backup.again, &name)?;
            let link = self.link.as_ref().ok_or_else(|| {
                "the engine is not running, so nothing can be sent: restart the app".to_string()
            })?;
            Ok((name, link.clone()))
        });
        let (name, link) = match checked {
            Ok(ok) => ok,
            Err(e) => {
                self.backup.status = Status::Failed(e);
                return Task::none();
            }
        };
        let pass = std::mem::take(&mut self.backup.pass);
        self.backup.again = Secret::default();
        self.backup.status = Status::Working(None);
        let (tx, rx) = mpsc::channel(REPORTS);
        let config = link.config().to_path_buf();
        link.spawn(async move {
            let result = make(config, name, &pass, &tx).await;
            let _ = tx.send(Report::Done(result)).await;
        });
        reports(rx, BackupMsg::Made)
    }

    /// "Restore": check the form, then restore on a thread of its own.
    fn start_restore(&mut self) -> Task<Message> {
        if self.backup.restore_status.working() {
            return Task::none();
        }
        let plan = match restore_plan(
            &self.setup.cluster,
            &self.backup.restore_name,
            &self.backup.restore_pass,
        ) {
            Ok(plan) => plan,
            Err(e) => {
                self.backup.restore_status = Status::Failed(e);
                return Task::none();
            }
        };
        // Each attempt is a guess the servers count: the next one is typed again.
        let pass = std::mem::take(&mut self.backup.restore_pass);
        self.backup.restore_status = Status::Working(None);
        let (tx, rx) = mpsc::channel(REPORTS);
        let spawned = std::thread::Builder::new()
            .name("chorus-restore".into())
            .spawn(move || {
                let result = restore_on_thread(&plan, &pass, &tx);
                let _ = tx.blocking_send(Report::Done(result));
            });
        if let Err(e) = spawned {
            self.backup.restore_status =
                Status::Failed(format!("Not restored: cannot start it ({e}); try again"));
            return Task::none();
        }
        reports(rx, BackupMsg::Restored)
    }
}

/// Reports a job can queue: every step of a backup or restore (at most a few dozen with
/// retries) and its result; a step beyond it is dropped, never the result.
const REPORTS: usize = 64;

/// A job's reports as messages, then `Ended`.
fn reports<T>(rx: mpsc::Receiver<Report<T>>, wrap: fn(Report<T>) -> BackupMsg) -> Task<Message>
where
    T: Send + 'static,
{
    let stream =
        iced::futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    Task::run(stream, move |r| Message::Backup(wrap(r)))
        .chain(Task::done(Message::Backup(wrap(Report::Ended))))
}

/// Make the backup of the identity in `config` (with its contacts) under `name`.
async fn make(
    config: PathBuf,
    name: String,
    pass: &Secret,
    tx: &mpsc::Sender<Report<Made>>,
) -> Result<Made, String> {
    let loaded = tokio::task::spawn_blocking(move || {
        let settings = client::config::Settings::load(&config).map_err(|e| format!("{e:#}"))?;
        // No contacts file yet is a backup of the keys alone.
        let contacts = std::fs::read_to_string(settings.data_dir.join("contacts.json")).ok();
        Ok::<_, String>((settings, contacts))
    })
    .await
    .map_err(|e| format!("reading the config stopped: {e}"))?;
    let (settings, contacts) = loaded?;
    let cluster = Cluster::of(&settings);
    // The receiver is kept until the backup is done: dropping it would close the conn.
    let (conn, _events) = ClusterConn::connect(cluster.servers.clone())
        .map_err(|e| format!("cannot connect to the servers: {e}"))?;
    let mut progress = |step| {
        let _ = tx.try_send(Report::Step(step));
    };
    let created = backup::create(
        &conn,
        &cluster,
        &name,
        &settings.identity,
        contacts,
        pass.expose(),
        &mut progress,
    )
    .await
    .map_err(|e| format!("{e:#}"))?;
    Ok(Made {
        name,
        version: created.version,
        bytes: created.bytes,
    })
}

/// Restore `plan` on this thread (a runtime of its own), then write the files.
fn restore_on_thread(
    plan: &RestorePlan,
    pass: &Secret,
    tx: &mpsc::Sender<Report<RestoredTo>>,
) -> Result<RestoredTo, String> {
    let (cluster_file, cluster) = Cluster::load(&plan.cluster).map_err(|e| format!("{e:#}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime for the restore: {e}"))?;
    let restored = runtime.block_on(async {
        let (conn, _events) = ClusterConn::connect(cluster.servers.clone())
            .map_err(|e| format!("cannot connect to the servers: {e}"))?;
        let mut progress = |step| {
            let _ = tx.try_send(Report::Step(step));
        };
        backup::restore(&conn, &cluster, &plan.name, pass.expose(), &mut progress)
            .await
            .map_err(|e| format!("{e:#}"))
    })?;
    let config = backup::write_restored(&plan.folder, &cluster_file, &restored)
        .map_err(|e| format!("{e:#}"))?;
    Ok(RestoredTo {
        name: restored.contents.name.clone(),
        config,
        version: restored.version,
        contacts: restored.contents.contacts.is_some(),
    })
}

/// A status line: red when something failed.
fn status_line(status: &Status) -> Option<Element<'_, Message>> {
    let words = status.words()?;
    let line = text(words).size(13);
    Some(match status {
        Status::Failed(_) => line.color(ERROR_RED).into(),
        _ => line.into(),
    })
}

/// The Back up panel (under the header), for the name `name`.
pub fn view_panel<'a>(b: &'a Backup, name: &str) -> Element<'a, Message> {
    let start = (!b.status.working()).then_some(Message::Backup(BackupMsg::Start));
    let form = column![
        row![
            text("Back up your identity").size(18).width(Fill),
            button(text("Close").size(13))
                .on_press(Message::Backup(BackupMsg::Toggle))
                .style(button::secondary),
        ]
        .align_y(Alignment::Center),
        text(format!(
            "Your keys and contacts are encrypted and kept by the servers under the name \
             {name}; no single server can open them. Restore them on another computer with \
             that name, the cluster file and this passphrase. Nobody can reset a forgotten \
             passphrase, and after too many wrong guesses the servers erase the backup."
        ))
        .size(13),
        text_input("passphrase (four or more unrelated words)", b.pass.expose())
            .id(BACKUP_PASS)
            .secure(true)
            .on_input(|s| Message::Backup(BackupMsg::Pass(s.into())))
            .on_submit(Message::Backup(BackupMsg::Start)),
        text_input("the same passphrase again", b.again.expose())
            .id(BACKUP_AGAIN)
            .secure(true)
            .on_input(|s| Message::Backup(BackupMsg::Again(s.into())))
            .on_submit(Message::Backup(BackupMsg::Start)),
        row![button(text("Back up now")).on_press_maybe(start)]
            .push(status_line(&b.status))
            .spacing(12)
            .align_y(Alignment::Center),
    ]
    .spacing(8)
    .max_width(640);
    container(form)
        .padding(12)
        .width(Fill)
        .style(container::bordered_box)
        .into()
}

/// "Restore from backup" on the first-run screen (the cluster file is the form's).
pub fn view_restore(b: &Backup) -> Element<'_, Message> {
    let restore = (!b.restore_status.working()).then_some(Message::Backup(BackupMsg::Restore));
    column![
        text("Restore from backup").size(20),
        text(
            "Bring back an identity and its contacts from the servers, with the cluster file \
             above. Every attempt counts as a guess at every server."
        )
        .size(13),
        row![
            text_input("name of the backup", &b.restore_name)
                .id(RESTORE_NAME)
                .on_input(|s| Message::Backup(BackupMsg::RestoreName(s))),
            text_input("passphrase", b.restore_pass.expose())
                .id(RESTORE_PASS)
                .secure(true)
                .on_input(|s| Message::Backup(BackupMsg::RestorePass(s.into())))
                .on_submit(Message::Backup(BackupMsg::Restore)),
            button(text("Restore")).on_press_maybe(restore),
        ]
        .spacing(8)
        .align_y(Alignment::Center),
    ]
    .push(status_line(&b.restore_status))
    .spacing(8)
    .into()
}

#[cfg(test)]
mod tests;
