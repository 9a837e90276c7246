//! Attachments in the window: the "Attach" row by a contact's composer, the transfers
//! the engine reports (progress under a file's bubble, its final state in words), "Save
//! as" for a received file, and a thumbnail for images.
//!
//! A file travels as a message whose text is `📎 NAME (SIZE)` plus its chunks. An
//! outgoing file's bubble is found by its outbox id; an incoming one's is the latest
//! incoming bubble from that peer whose text starts with `📎 NAME (SIZE)`. Files are
//! read and copied off the UI thread (`spawn_blocking`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use client::core::size_text;
use client::event::FileProgress;
use client::store::{FileEntry, FileState};
use iced::widget::{button, column, container, image, progress_bar, row, text, text_input};
use iced::{Alignment, Element, Fill, Task};

use crate::app::{App, Message};
use crate::model::{Book, Bubble, Contact, Delivery};

/// The attach row's path input.
pub const ATTACH_PATH: &str = "attach-path";
/// Thumbnails are this wide (pixels).
const THUMB_WIDTH: f32 = 160.0;
/// Nor taller than this.
const THUMB_MAX_HEIGHT: f32 = 200.0;

/// What the attach row, the transfers and "Save as" do.
#[derive(Debug, Clone)]
pub enum FileMsg {
    /// Show or hide the attach row.
    ToggleAttach,
    /// The attach row's path changed.
    Path(String),
    /// "Send file" (or Enter in the path).
    Send,
    /// The file was read (or not), to go to `to`.
    Read {
        /// Recipient's address.
        to: String,
        /// Where it was read from.
        path: PathBuf,
        /// Its content, or why not.
        result: Result<FileData, String>,
    },
    /// The engine's transfers (at start).
    Listed(Result<Vec<FileEntry>, String>),
    /// A received file's "Save as" destination changed.
    SavePath {
        /// The transfer.
        id: String,
        /// Destination typed.
        path: String,
    },
    /// "Save as" pressed.
    Save(String),
    /// The copy finished (or not).
    Saved {
        /// The transfer.
        id: String,
        /// Where the copy is, or why not.
        result: Result<PathBuf, String>,
    },
}

/// A file's content on its way to the engine (its Debug form is only its length).
#[derive(Clone)]
pub struct FileData(pub Arc<Vec<u8>>);

impl fmt::Debug for FileData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileData({} bytes)", self.0.len())
    }
}

/// One transfer as last reported.
#[derive(Clone, Debug)]
pub struct Transfer {
    /// The engine's record.
    pub entry: FileEntry,
    /// Content bytes done.
    pub done_bytes: u64,
    /// Rounds still needed, once the engine knows the pace.
    pub eta_rounds: Option<u64>,
    /// Order first seen (newer is larger).
    seq: u64,
}

impl Transfer {
    /// How the bubble's text starts: `📎 NAME (SIZE)`, in a room `FROM: 📎 NAME (SIZE)`.
    pub fn label(&self) -> String {
        let file = format!("📎 {} ({})", self.entry.name, size_text(self.entry.size));
        match room_peer(&self.entry.peer) {
            Some((_, from)) if !self.entry.outgoing => format!("{from}: {file}"),
            _ => file,
        }
    }

    /// Still moving (a progress bar is shown).
    pub fn moving(&self) -> bool {
        matches!(self.entry.state, FileState::Sending | FileState::Receiving)
    }

    /// Fraction done, 0 to 1.
    pub fn fraction(&self) -> f32 {
        if self.entry.size == 0 {
            return 0.0;
        }
        (self.done_bytes as f64 / self.entry.size as f64).clamp(0.0, 1.0) as f32
    }

    /// "X of Y, about N rounds left" while moving; the final state otherwise.
    pub fn status(&self) -> String {
        match &self.entry.state {
            FileState::Sending | FileState::Receiving => {
                let mut s = format!(
                    "{} of {}",
                    size_text(self.done_bytes),
                    size_text(self.entry.size)
                );
                if let Some(n) = self.eta_rounds {
                    let unit = if n == 1 { "round" } else { "rounds" };
                    s.push_str(&format!(", about {n} {unit} left"));
                }
                s
            }
            FileState::Sent => "sent".into(),
            FileState::Received { .. } => "saved".into(),
            FileState::Failed { reason } => format!("failed: {reason}"),
            FileState::Refused { reason } => format!("refused: {reason}"),
        }
    }

    /// Where a received file was saved.
    pub fn saved_path(&self) -> Option<&str> {
        match &self.entry.state {
            FileState::Received { path } => Some(path),
            _ => None,
        }
    }

    fn is_image(&self) -> bool {
        self.entry.mime.starts_with("image/")
    }
}

/// Transfers, the attach row and the "Save as" fields.
#[derive(Debug, Default)]
pub struct Files {
    transfers: HashMap<String, Transfer>,
    next_seq: u64,
    /// The attach row is open.
    pub attaching: bool,
    /// Path typed into the attach row.
    pub path_input: String,
    /// "Save as" destinations typed, by transfer id.
    pub save_inputs: HashMap<String, String>,
    /// What the last "Save as" did, in words, by transfer id.
    pub save_notes: HashMap<String, String>,
    /// Files we attached from a path, by the bubble's local id (for thumbnails).
    sources: HashMap<u64, PathBuf>,
}

impl Files {
    /// Take a progress report from the engine.
    pub fn take(&mut self, p: FileProgress) {
        let seq = self.transfers.get(&p.entry.id).map(|t| t.seq);
        let seq = seq.unwrap_or_else(|| {
            self.next_seq += 1;
            self.next_seq
        });
        let (entry, done_bytes, eta_rounds) = (p.entry, p.done_bytes, p.eta_rounds);
        let t = Transfer {
            entry,
            done_bytes,
            eta_rounds,
            seq,
        };
        self.transfers.insert(t.entry.id.clone(), t);
    }

    /// Take the engine's list (at start); what events already said is newer and kept.
    pub fn take_list(&mut self, entries: Vec<FileEntry>) {
        for entry in entries {
            if !self.transfers.contains_key(&entry.id) {
                let done_bytes = entry.done_bytes();
                self.take(FileProgress {
                    entry,
                    done_bytes,
                    eta_rounds: None,
                });
            }
        }
    }

    /// The transfer with this id.
    pub fn get(&self, id: &str) -> Option<&Transfer> {
        self.transfers.get(id)
    }

    /// The outgoing transfer of the message with this outbox id.
    pub fn by_outbox_id(&self, id: u64) -> Option<&Transfer> {
        self.transfers
            .values()
            .filter(|t| t.entry.outgoing && t.entry.outbox_id == Some(id))
            .max_by_key(|t| t.seq)
    }

    /// The incoming transfers shown in `address`'s conversation: bubble index → transfer.
    /// Each goes to the latest incoming bubble from its peer that starts with its label
    /// and no newer transfer took.
    pub fn incoming_on<'a>(&'a self, book: &Book, address: &str) -> HashMap<usize, &'a Transfer> {
        let mut shown = HashMap::new();
        let Some(list) = book.conversations.get(address) else {
            return shown;
        };
        let mut mine: Vec<&Transfer> = self
            .transfers
            .values()
            .filter(|t| !t.entry.outgoing && target(book, t).as_deref() == Some(address))
            .collect();
        mine.sort_by_key(|t| std::cmp::Reverse(t.seq));
        for t in mine {
            let label = t.label();
            let free = (0..list.len())
                .rev()
                .find(|k| !shown.contains_key(k) && is_file_bubble(&list[*k], &label));
            if let Some(k) = free {
                shown.insert(k, t);
            }
        }
        shown
    }

    /// Remember where the file of the bubble with this local id came from.
    pub fn attached(&mut self, local: u64, path: PathBuf) {
        self.sources.insert(local, path);
    }

    /// The path an outgoing bubble's file was attached from (this session).
    pub fn source_of(&self, b: &Bubble) -> Option<&Path> {
        (b.outgoing && b.local_id != 0)
            .then(|| self.sources.get(&b.local_id))
            .flatten()
            .map(PathBuf::as_path)
    }
}

/// An incoming bubble announcing the file labelled `label`.
/// A file sent to a room names its sender and room as `FROM in #room/NAME`: (the room's
/// address, the sender).
fn room_peer(peer: &str) -> Option<(&str, &str)> {
    let (from, room) = peer.split_once(" in ")?;
    crate::rooms::room_of(room).map(|_| (room, from))
}

fn is_file_bubble(b: &Bubble, label: &str) -> bool {
    !b.outgoing && b.text.starts_with(label)
}

/// Whether `c` is the peer the engine named `peer`: by address or name, or, for a key
/// it could not name (`unknown-…`, `anonymous-…`), by that key's first bytes.
fn is_peer(c: &Contact, peer: &str) -> bool {
    if c.address == peer || c.name == peer {
        return true;
    }
    let Some(tag) = peer
        .strip_prefix("unknown-")
        .or_else(|| peer.strip_prefix("anonymous-"))
    else {
        return false;
    };
    c.address
        .strip_prefix("key:")
        .is_some_and(|k| k.starts_with(tag))
        || c.dh.as_deref().is_some_and(|d| d.starts_with(tag))
}

/// The conversation an incoming transfer belongs to: its peer's, or, when no contact
/// is that peer (a name learnt after the file began), the one with the latest bubble
/// announcing it (never the board or a room).
fn target(book: &Book, t: &Transfer) -> Option<String> {
    if let Some((room, _)) = room_peer(&t.entry.peer) {
        return Some(room.to_string());
    }
    let label = t.label();
    let has = |address: &str| {
        book.conversations
            .get(address)
            .is_some_and(|l| l.iter().any(|b| is_file_bubble(b, &label)))
    };
    let peers: Vec<&Contact> = book
        .contacts
        .iter()
        .filter(|c| is_peer(c, &t.entry.peer))
        .collect();
    if let Some(c) = peers.iter().find(|c| has(&c.address)) {
        return Some(c.address.clone());
    }
    if !peers.is_empty() {
        return None;
    }
    book.conversations
        .iter()
        .filter(|(address, _)| !address.starts_with('#'))
        .filter_map(|(address, list)| {
            let b = list.iter().rev().find(|b| is_file_bubble(b, &label))?;
            Some((b.timestamp_ms, address))
        })
        .max()
        .map(|(_, address)| address.clone())
}

/// The file name to send a path's file under.
pub fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// `~/x` is in the home folder.
fn expand(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Read a file to send (at most `limit` bytes), off the UI thread.
pub async fn read(path: PathBuf, limit: u64) -> Result<FileData, String> {
    tokio::task::spawn_blocking(move || client::daemon::read_for_sending(&path, limit))
        .await
        .map_err(|e| format!("reading stopped: {e}"))?
        .map(|data| FileData(Arc::new(data)))
}

/// Copy a received file to `to` (into it, under `name`, when it is a folder), off the UI
/// thread. Nothing is overwritten; the copy is readable only by the user, like the file.
pub async fn save_copy(from: PathBuf, to: PathBuf, name: String) -> Result<PathBuf, String> {
    tokio::task::spawn_blocking(move || {
        let to = if to.is_dir() { to.join(name) } else { to };
        copy_new(&from, &to).map(|()| to)
    })
    .await
    .map_err(|e| format!("copying stopped: {e}"))?
}

fn copy_new(from: &Path, to: &Path) -> Result<(), String> {
    let mut src = std::fs::File::open(from).map_err(|e| format!("{}: {e}", from.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut dst = options.open(to).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            format!("{} already exists; choose another name", to.display())
        }
        _ => format!("{}: {e}", to.display()),
    })?;
    let copied = std::io::copy(&mut src, &mut dst).and_then(|_| dst.sync_all());
    if let Err(e) = copied {
        drop(dst);
        let _ = std::fs::remove_file(to);
        return Err(format!("{}: {e}", to.display()));
    }
    Ok(())
}

impl App {
    /// The largest file the engine sends (its default with no engine).
    pub fn max_file_bytes(&self) -> u64 {
        self.link
            .as_ref()
            .map_or(client::core::DEFAULT_MAX_FILE_BYTES, |l| {
                l.handle.max_file_bytes()
            })
    }

    /// Ask the engine for its transfers (at start).
    pub(crate) fn list_files(&self) -> Task<Message> {
        let Some(link) = &self.link else {
            return Task::none();
        };
        let handle = link.handle.clone();
        Task::perform(async move { handle.files().await }, |r| {
            Message::File(FileMsg::Listed(r))
        })
    }

    /// Apply a file message.
    pub(crate) fn on_file(&mut self, m: FileMsg) -> Task<Message> {
        match m {
            FileMsg::ToggleAttach => {
                self.files.attaching = !self.files.attaching;
                if self.files.attaching {
                    return iced::widget::operation::focus(ATTACH_PATH);
                }
            }
            FileMsg::Path(s) => self.files.path_input = s,
            FileMsg::Send => return self.read_to_send(),
            FileMsg::Read { to, path, result } => match result {
                Ok(data) => return self.send_file(to, path, data),
                Err(e) => self.notice = Some(format!("file not sent: {e}")),
            },
            FileMsg::Listed(Ok(entries)) => self.files.take_list(entries),
            FileMsg::Listed(Err(e)) => self.notice = Some(format!("files: {e}")),
            FileMsg::SavePath { id, path } => {
                self.files.save_inputs.insert(id, path);
            }
            FileMsg::Save(id) => return self.save_as(id),
            FileMsg::Saved { id, result } => {
                let note = match result {
                    Ok(to) => format!("saved a copy to {}", to.display()),
                    Err(e) => format!("not saved: {e}"),
                };
                self.files.save_notes.insert(id, note);
            }
        }
        Task::none()
    }

    /// "Send file": read the typed path off the UI thread for the open contact.
    fn read_to_send(&mut self) -> Task<Message> {
        let typed = self.files.path_input.trim().to_string();
        if typed.is_empty() {
            self.notice = Some("type the path of the file to send".into());
            return Task::none();
        }
        let Some(contact) = self.selected.and_then(|i| self.book.contacts.get(i)) else {
            self.notice = Some("pick a contact first".into());
            return Task::none();
        };
        if contact.is_board() || crate::rooms::room_of(&contact.address).is_some() {
            self.notice = Some("files go to one contact, not to the board or a room".into());
            return Task::none();
        }
        let to = contact.address.clone();
        let path = expand(&typed);
        let read = read(path.clone(), self.max_file_bytes());
        Task::perform(read, move |result| {
            Message::File(FileMsg::Read { to, path, result })
        })
    }

    /// The file is read: its bubble, then hand it to the engine (its answer is a
    /// `Queued`, as for a message).
    fn send_file(&mut self, to: String, path: PathBuf, data: FileData) -> Task<Message> {
        let name = name_of(&path);
        let local = self.next_local;
        self.next_local += 1;
        self.book.push(
            &to,
            Bubble {
                outgoing: true,
                text: format!("📎 {name} ({})", size_text(data.0.len() as u64)),
                timestamp_ms: crate::app::now_ms(),
                delivery: Delivery::Handing,
                fragments: 1,
                outbox_id: None,
                local_id: local,
            },
        );
        self.files.attached(local, path);
        self.files.path_input.clear();
        self.files.attaching = false;
        let snap = iced::widget::operation::snap_to_end(crate::app::MESSAGES);
        let Some(link) = &self.link else {
            return snap;
        };
        let handle = link.handle.clone();
        let data = Arc::try_unwrap(data.0).unwrap_or_else(|shared| (*shared).clone());
        Task::batch([
            snap,
            Task::perform(
                async move { handle.send_file(&to, &name, data).await },
                move |result| Message::Queued { local, result },
            ),
        ])
    }

    /// "Save as": copy the received file where the user typed, off the UI thread.
    fn save_as(&mut self, id: String) -> Task<Message> {
        let Some(t) = self.files.get(&id) else {
            return Task::none();
        };
        let Some(from) = t.saved_path().map(PathBuf::from) else {
            return Task::none();
        };
        let name = t.entry.name.clone();
        let typed = self
            .files
            .save_inputs
            .get(&id)
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if typed.is_empty() {
            self.files
                .save_notes
                .insert(id, "type where to save it first".into());
            return Task::none();
        }
        self.files.save_notes.remove(&id);
        let copy = save_copy(from, expand(&typed), name);
        Task::perform(copy, move |result| {
            Message::File(FileMsg::Saved { id, result })
        })
    }
}

/// The row that opens under a contact's composer: a path and "Send file".
pub fn view_attach(files: &Files, limit: u64) -> Element<'_, Message> {
    row![
        text_input("path of the file to send", &files.path_input)
            .id(ATTACH_PATH)
            .on_input(|s| Message::File(FileMsg::Path(s)))
            .on_submit(Message::File(FileMsg::Send)),
        text(format!("up to {}", size_text(limit))).size(12),
        button(text("Send file")).on_press(Message::File(FileMsg::Send)),
    ]
    .spacing(8)
    .align_y(Alignment::Center)
    .into()
}

/// Under a file's bubble: progress or final state, a thumbnail, and "Save as".
/// `source` is where an outgoing file was attached from.
pub fn view_file<'a>(
    files: &'a Files,
    t: Option<&'a Transfer>,
    source: Option<&'a Path>,
) -> Option<Element<'a, Message>> {
    let mut col = column![].spacing(4);
    let image_like = t.map_or_else(|| source.is_some_and(looks_like_image), Transfer::is_image);
    let picture = t.and_then(Transfer::saved_path).map(Path::new).or(source);
    if let Some(p) = picture.filter(|_| image_like) {
        col = col.push(
            container(
                image(image::Handle::from_path(p))
                    .width(THUMB_WIDTH)
                    .content_fit(iced::ContentFit::Contain),
            )
            .max_height(THUMB_MAX_HEIGHT),
        );
    }
    let Some(t) = t else {
        return picture.filter(|_| image_like).map(|_| col.into());
    };
    if t.moving() {
        col = col.push(progress_bar(0.0..=1.0, t.fraction()).girth(6));
    }
    col = col.push(text(t.status()).size(12));
    if let Some(path) = t.saved_path() {
        let id = t.entry.id.clone();
        let typed = files.save_inputs.get(&id).map_or("", String::as_str);
        let save = Message::File(FileMsg::Save(id.clone()));
        let edit = {
            let id = id.clone();
            move |path| {
                Message::File(FileMsg::SavePath {
                    id: id.clone(),
                    path,
                })
            }
        };
        col = col.push(text(path).size(10)).push(
            row![
                text_input("save a copy as… (path)", typed)
                    .id(format!("save-as-{id}"))
                    .on_input(edit)
                    .on_submit(save.clone())
                    .size(13)
                    .width(Fill),
                button(text("Save as").size(13)).on_press(save),
            ]
            .spacing(6)
            .align_y(Alignment::Center),
        );
        if let Some(note) = files.save_notes.get(&id) {
            col = col.push(text(note.clone()).size(12));
        }
    }
    Some(col.into())
}

/// A file name an image would have (for a file attached before the engine says its type).
fn looks_like_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .is_some_and(|e| matches!(e.as_str(), "png" | "jpg" | "jpeg" | "gif" | "webp" | "bmp"))
}

#[cfg(test)]
mod tests;
