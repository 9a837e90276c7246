//! The iced application: state, messages, update and view.
//!
//! No protocol logic lives here. The engine (on its own runtime, see `link.rs`) does
//! rounds, retries and decryption; this file turns its events into bubbles and status
//! dots, and user actions into engine calls.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use client::engine::Event;
use iced::widget::{
    button, column, container, operation, row, rule, scrollable, space, text, text_input,
};
use iced::{border, Alignment, Background, Color, Element, Fill, Task, Theme};

use crate::link::{self, Link, Me, Started};
use crate::model::{clock, Book, Bubble, ClusterView, Delivery};

/// The composer's widget id (focused when a conversation opens).
pub const COMPOSER: &str = "composer";
/// The conversation's scrollable id.
pub(crate) const MESSAGES: &str = "messages";

/// Directory answer carried in a message: name and both keys.
pub type FoundKeys = (String, [u8; 32], [u8; 32]);

/// Everything the window reacts to.
#[derive(Debug, Clone)]
pub enum Message {
    /// First-run form: config or key file path.
    SetupPath(String),
    /// First-run form: cluster file (for a key file or a new identity).
    SetupCluster(String),
    /// First-run form: name for a new identity.
    SetupName(String),
    /// Open the config (or key file) in the form.
    OpenConfig,
    /// Create a new identity and register its name.
    CreateIdentity,
    /// Registration form: the name to register.
    RegisterName(String),
    /// Register that name.
    Register,
    /// The cluster answered a registration.
    Registered(Result<String, String>),
    /// The name registered for our own fingerprint, if any (to offer registration).
    OwnEntry(Result<Option<String>, String>),
    /// Contacts: the name or fingerprint typed into "add contact".
    AddInput(String),
    /// Look that up and add it.
    AddContact,
    /// The directory answered a lookup.
    Found {
        /// What was asked.
        query: String,
        /// Name and keys, or nothing.
        result: Result<Option<FoundKeys>, String>,
    },
    /// Open a conversation.
    Select(usize),
    /// Show or hide the safety numbers.
    ToggleVerify,
    /// Mark the open contact verified (or not).
    SetVerified(bool),
    /// Composer text changed.
    Compose(String),
    /// Enter or the Send button.
    Send,
    /// The engine took (or refused) a message we handed it.
    Queued {
        /// Our id for the bubble.
        local: u64,
        /// Outbox id or why not.
        result: Result<u64, String>,
    },
    /// Something from the engine.
    Engine(Event),
    /// The engine's event stream ended.
    EngineStopped,
    /// Close the notice banner.
    Dismiss,
    /// Rooms form: a room's name.
    RoomName(String),
    /// Rooms form: the member to ask.
    RoomVia(String),
    /// Create the room named in the form.
    CreateRoom,
    /// Ask the member to let us into the room named in the form.
    JoinRoom,
    /// Approve (room, user).
    Approve(String, String),
    /// Decline (room, user).
    Decline(String, String),
    /// The engine did (or refused) a room request.
    RoomAnswer(Result<serde_json::Value, String>),
    /// The engine's list of rooms.
    RoomsListed(Result<serde_json::Value, String>),
    /// Attachments: the attach row, transfers, "Save as".
    File(crate::files::FileMsg),
    /// Key backup: the Back up panel and the restore form.
    Backup(crate::backup::BackupMsg),
}

/// First-run form.
#[derive(Default, Debug)]
pub struct Setup {
    /// Config or key file.
    pub path: String,
    /// Cluster file.
    pub cluster: String,
    /// Name for a new identity.
    pub name: String,
}

/// Registration of our own name.
#[derive(Debug, PartialEq, Eq)]
pub enum Registration {
    /// Not asked yet.
    Unknown,
    /// The name is ours.
    Registered(String),
    /// Not registered: show the form.
    Needed,
    /// Asked; waiting.
    Pending,
}

/// The whole window.
pub struct App {
    /// Set once the engine runs.
    pub me: Option<Me>,
    pub(crate) link: Option<Arc<Link>>,
    /// First-run form (shown while `me` is None).
    pub setup: Setup,
    /// Registration state.
    pub registration: Registration,
    /// Name typed into the registration form.
    pub register_name: String,
    /// Contacts and conversations.
    pub book: Book,
    /// Open conversation (index into contacts).
    pub selected: Option<usize>,
    /// Safety-number panel open.
    pub verifying: bool,
    /// Composer text.
    pub composer: String,
    /// "Add contact" text.
    pub add_input: String,
    /// Server dots and round info.
    pub cluster: ClusterView,
    /// An error or notice in words, shown until dismissed.
    pub notice: Option<String>,
    pub(crate) next_local: u64,
    /// States that arrived before the engine's reply with the outbox id.
    early: HashMap<u64, (Delivery, usize)>,
    /// Rooms, requests, the rooms form.
    pub rooms: crate::rooms::Rooms,
    /// File transfers, the attach row, "Save as".
    pub files: crate::files::Files,
    /// Key backup: the Back up panel and the restore form.
    pub backup: crate::backup::Backup,
}

impl App {
    /// A window with no engine: the first-run form, `path` prefilled.
    pub fn empty(path: Option<String>) -> Self {
        Self {
            me: None,
            link: None,
            setup: Setup {
                path: path.unwrap_or_default(),
                cluster: ".chorus/cluster.toml".into(),
                name: String::new(),
            },
            registration: Registration::Unknown,
            register_name: String::new(),
            book: Book::default(),
            selected: None,
            verifying: false,
            composer: String::new(),
            add_input: String::new(),
            cluster: ClusterView::default(),
            notice: None,
            next_local: 1,
            early: HashMap::new(),
            rooms: Default::default(),
            files: Default::default(),
            backup: Default::default(),
        }
    }

    /// Boot: with a config, start the engine; on error, show the form with the error.
    pub fn boot(config: Option<PathBuf>) -> (Self, Task<Message>) {
        let mut app = Self::empty(config.as_ref().map(|p| p.display().to_string()));
        let task = match config {
            Some(path) => app.open(path),
            None => Task::none(),
        };
        (app, task)
    }

    /// A window showing `me` with no engine behind it (tests).
    pub fn offline(me: Me) -> Self {
        let mut app = Self::empty(None);
        app.cluster = ClusterView::new(me.servers, me.f);
        app.register_name = me.name.clone();
        app.me = Some(me);
        app.book.pin_board();
        app
    }

    pub(crate) fn open(&mut self, config: PathBuf) -> Task<Message> {
        match link::start(&config) {
            Ok(started) => self.attach(started),
            Err(e) => {
                self.notice = Some(e);
                Task::none()
            }
        }
    }

    fn attach(&mut self, started: Started) -> Task<Message> {
        let Started { link, me, history } = started;
        self.book = match Book::load(&me.data_dir) {
            Ok(b) => b,
            Err(e) => {
                self.notice = Some(format!("contacts not loaded: {e}"));
                let mut b = Book {
                    path: None,
                    ..Book::default()
                };
                b.pin_board();
                b
            }
        };
        self.book.load_history(history);
        self.cluster = ClusterView::new(me.servers, me.f);
        self.register_name = me.name.clone();
        self.selected = self.most_recent_conversation();
        let mut tasks = vec![operation::focus(COMPOSER), operation::snap_to_end(MESSAGES)];
        let handle = link.handle.clone();
        tasks.push(Task::perform(
            async move { handle.room(client::core::RoomRequest::List).await },
            Message::RoomsListed,
        ));
        if let Some(events) = link.take_events() {
            let stream = iced::futures::stream::unfold(events, |mut rx| async move {
                rx.recv().await.map(|ev| (ev, rx))
            });
            tasks
                .push(Task::run(stream, Message::Engine).chain(Task::done(Message::EngineStopped)));
        }
        let handle = link.handle.clone();
        let fingerprint = me.fingerprint().0;
        tasks.push(Task::perform(
            async move { handle.lookup_fingerprint(fingerprint).await },
            |r| Message::OwnEntry(r.map(|o| o.map(|(name, _)| name))),
        ));
        self.registration = Registration::Pending;
        self.me = Some(me);
        self.link = Some(link);
        tasks.push(self.list_files());
        let _ = self.book.save();
        Task::batch(tasks)
    }

    fn most_recent_conversation(&self) -> Option<usize> {
        self.book
            .contacts
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let last = self.book.conversations.get(&c.address)?.last()?;
                Some((last.timestamp_ms, i))
            })
            .max()
            .map(|(_, i)| i)
            .or((!self.book.contacts.is_empty()).then_some(0))
    }

    fn save_contacts(&mut self) {
        if let Err(e) = self.book.save() {
            self.notice = Some(format!("contacts not saved: {e}"));
        }
    }

    /// Slots a text would take, or None when it is too long to send.
    pub fn fragments_for(&self, text: &str) -> Option<usize> {
        let slot_bytes = self.me.as_ref()?.slot_bytes;
        protocol::slot::fragment(text.as_bytes(), slot_bytes).map(|f| f.len())
    }

    /// Apply one message.
    pub fn update(&mut self, message: Message) -> Task<Message> {
        match message {
            Message::SetupPath(s) => self.setup.path = s,
            Message::SetupCluster(s) => self.setup.cluster = s,
            Message::SetupName(s) => self.setup.name = s,
            Message::OpenConfig => return self.open_from_form(),
            Message::CreateIdentity => return self.create_identity(),
            Message::RegisterName(s) => self.register_name = s,
            Message::Register => return self.register(),
            Message::Registered(Ok(name)) => {
                self.registration = Registration::Registered(name.clone());
                self.notice = Some(format!("registered as {name}"));
            }
            Message::Registered(Err(e)) => {
                self.registration = Registration::Needed;
                self.notice = Some(format!("registration failed: {e}"));
            }
            Message::OwnEntry(r) => self.on_own_entry(r),
            Message::AddInput(s) => self.add_input = s,
            Message::AddContact => return self.add_contact(),
            Message::Found { query, result } => self.on_found(&query, result),
            Message::Select(i) => return self.select(i),
            Message::ToggleVerify => self.verifying = !self.verifying,
            Message::SetVerified(v) => {
                if let Some(c) = self.selected.and_then(|i| self.book.contacts.get_mut(i)) {
                    c.verified = v;
                    self.save_contacts();
                }
            }
            Message::Compose(s) => self.composer = s,
            Message::Send => return self.send(),
            Message::Queued { local, result } => self.on_queued(local, result),
            Message::Engine(ev) => return self.on_engine(ev),
            Message::EngineStopped => {
                self.notice = Some("the engine stopped; restart the app".into());
            }
            Message::Dismiss => self.notice = None,
            Message::RoomName(s) => self.rooms.name_input = s,
            Message::RoomVia(s) => self.rooms.via_input = s,
            Message::CreateRoom => match self.rooms.create_request() {
                Ok(req) => {
                    self.rooms.name_input.clear();
                    return self.room_call(req);
                }
                Err(e) => self.notice = Some(e),
            },
            Message::JoinRoom => match self.rooms.join_request() {
                Ok(req) => {
                    self.rooms.name_input.clear();
                    self.rooms.via_input.clear();
                    return self.room_call(req);
                }
                Err(e) => self.notice = Some(e),
            },
            Message::Approve(name, user) => {
                return self.room_call(client::core::RoomRequest::Approve { name, user })
            }
            Message::Decline(name, user) => {
                return self.room_call(client::core::RoomRequest::Decline { name, user })
            }
            Message::RoomAnswer(Ok(_)) => return self.list_rooms(),
            Message::RoomAnswer(Err(e)) => self.notice = Some(e),
            Message::RoomsListed(Ok(v)) => self.rooms.take_list(&v, &mut self.book),
            Message::RoomsListed(Err(e)) => self.notice = Some(format!("rooms: {e}")),
            Message::File(m) => return self.on_file(m),
            Message::Backup(m) => return self.on_backup(m),
        }
        Task::none()
    }

    /// A room request to the engine; its answer refreshes the rooms.
    fn room_call(&mut self, req: client::core::RoomRequest) -> Task<Message> {
        self.room_task(req, Message::RoomAnswer)
    }

    /// Ask the engine for the rooms (members, requests, rooms we wait for).
    fn list_rooms(&mut self) -> Task<Message> {
        self.room_task(client::core::RoomRequest::List, Message::RoomsListed)
    }

    fn room_task(
        &self,
        req: client::core::RoomRequest,
        done: fn(Result<serde_json::Value, String>) -> Message,
    ) -> Task<Message> {
        let Some(link) = &self.link else {
            return Task::none();
        };
        let handle = link.handle.clone();
        Task::perform(async move { handle.room(req).await }, done)
    }

    fn open_from_form(&mut self) -> Task<Message> {
        let path = PathBuf::from(self.setup.path.trim());
        if self.setup.path.trim().is_empty() {
            self.notice = Some("enter the path of a client config (.toml) or key file".into());
            return Task::none();
        }
        if path.extension().is_some_and(|e| e == "key") {
            // A bare key file: write a config next to it, named after the file.
            let name = if self.setup.name.trim().is_empty() {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                self.setup.name.trim().to_string()
            };
            let folder = path.parent().map(PathBuf::from).unwrap_or_default();
            let cluster = PathBuf::from(self.setup.cluster.trim());
            match link::create_config(&cluster, &folder, &name, Some(&path)) {
                Ok(cfg) => {
                    self.setup.path = cfg.display().to_string();
                    return self.open(cfg);
                }
                Err(e) => {
                    self.notice = Some(e);
                    return Task::none();
                }
            }
        }
        self.open(path)
    }

    fn create_identity(&mut self) -> Task<Message> {
        let cluster = PathBuf::from(self.setup.cluster.trim());
        let folder = link::first_run_folder(&cluster);
        let name = self.setup.name.trim().to_string();
        match link::create_config(&cluster, &folder, &name, None) {
            Ok(cfg) => {
                self.setup.path = cfg.display().to_string();
                let task = self.open(cfg);
                if self.me.is_some() {
                    self.register_name = name;
                    return Task::batch([task, self.register()]);
                }
                task
            }
            Err(e) => {
                self.notice = Some(e);
                Task::none()
            }
        }
    }

    fn register(&mut self) -> Task<Message> {
        let Some(link) = &self.link else {
            return Task::none();
        };
        let name = self.register_name.trim().to_string();
        if name.is_empty() {
            self.notice = Some("enter a name to register".into());
            return Task::none();
        }
        self.registration = Registration::Pending;
        let handle = link.handle.clone();
        Task::perform(
            async move { handle.register(&name).await.map(|()| name) },
            Message::Registered,
        )
    }

    fn on_own_entry(&mut self, r: Result<Option<String>, String>) {
        if self.me.is_none() || self.registration != Registration::Pending {
            return;
        }
        self.registration = match r {
            Ok(Some(name)) => Registration::Registered(name),
            Ok(None) => Registration::Needed,
            Err(e) => {
                self.notice = Some(format!("cluster unreachable: {e}"));
                Registration::Needed
            }
        };
    }

    fn add_contact(&mut self) -> Task<Message> {
        let query = self.add_input.trim().to_string();
        if query.is_empty() {
            self.notice = Some("type a name or paste a fingerprint to add a contact".into());
            return Task::none();
        }
        let Some(link) = &self.link else {
            return Task::none();
        };
        let handle = link.handle.clone();
        let fingerprint = looks_like_fingerprint(&query)
            .then(|| keys::Fingerprint::parse(&query))
            .flatten();
        let q = query.clone();
        match fingerprint {
            Some(fp) => Task::perform(
                async move { handle.lookup_fingerprint(fp.0).await },
                move |r| Message::Found {
                    query: q.clone(),
                    result: r.map(|o| o.map(|(name, k)| (name, k.sign.0, k.dh.0))),
                },
            ),
            None => Task::perform(async move { handle.lookup(&query).await }, move |r| {
                Message::Found {
                    query: q.clone(),
                    result: r.map(|o| o.map(|k| (q.clone(), k.sign.0, k.dh.0))),
                }
            }),
        }
    }

    fn on_found(&mut self, query: &str, result: Result<Option<FoundKeys>, String>) {
        match result {
            Ok(Some((name, sign, dh))) => {
                let i = self.book.upsert_found(&name, sign, dh);
                if self.add_input.trim() == query {
                    self.add_input.clear();
                }
                self.save_contacts();
                if self.selected.is_none() {
                    self.selected = Some(i);
                }
            }
            Ok(None) if looks_like_fingerprint(query) => {
                self.notice = Some(format!("no registered user has the fingerprint {query}"));
            }
            Ok(None) => self.notice = Some(format!("no user named {query:?} is registered")),
            Err(e) => self.notice = Some(format!("could not look up {query:?}: {e}")),
        }
    }

    fn select(&mut self, i: usize) -> Task<Message> {
        let Some(c) = self.book.contacts.get_mut(i) else {
            return Task::none();
        };
        self.selected = Some(i);
        self.verifying = false;
        if c.unread > 0 {
            c.unread = 0;
            self.save_contacts();
        }
        let c = &self.book.contacts[i];
        let mut tasks = vec![operation::focus(COMPOSER), operation::snap_to_end(MESSAGES)];
        // Fetch keys for contacts known only by name, so the safety number can show.
        if c.fingerprint().is_none()
            && !c.address.starts_with('#')
            && !c.address.starts_with("key:")
        {
            if let Some(link) = &self.link {
                let handle = link.handle.clone();
                let name = c.address.clone();
                let asked = name.clone();
                tasks.push(Task::perform(
                    async move { handle.lookup(&asked).await },
                    move |r| Message::Found {
                        query: String::new(),
                        result: r.map(|o| o.map(|k| (name.clone(), k.sign.0, k.dh.0))),
                    },
                ));
            }
        }
        Task::batch(tasks)
    }

    fn send(&mut self) -> Task<Message> {
        let text = self.composer.trim_end().to_string();
        if text.trim().is_empty() {
            return Task::none();
        }
        let Some(contact) = self.selected.and_then(|i| self.book.contacts.get(i)) else {
            self.notice = Some("pick a contact first".into());
            return Task::none();
        };
        let Some(fragments) = self.fragments_for(&text) else {
            self.notice = Some("message too long to send".into());
            return Task::none();
        };
        let address = contact.address.clone();
        let local = self.next_local;
        self.next_local += 1;
        self.book.push(
            &address,
            Bubble {
                outgoing: true,
                text: text.clone(),
                timestamp_ms: now_ms(),
                delivery: Delivery::Handing,
                fragments,
                outbox_id: None,
                local_id: local,
            },
        );
        self.composer.clear();
        let snap = operation::snap_to_end(MESSAGES);
        let Some(link) = &self.link else {
            return snap;
        };
        let handle = link.handle.clone();
        if let Some(room) = crate::rooms::room_of(&address) {
            let req = client::core::RoomRequest::Send {
                name: room.to_string(),
                text,
            };
            return Task::batch([
                snap,
                Task::perform(async move { handle.room(req).await }, move |r| {
                    let result =
                        r.and_then(|v| v["id"].as_u64().ok_or_else(|| "no message id".to_string()));
                    Message::Queued { local, result }
                }),
            ]);
        }
        Task::batch([
            snap,
            Task::perform(
                async move { handle.send(&address, &text, false).await },
                move |result| Message::Queued { local, result },
            ),
        ])
    }

    fn on_queued(&mut self, local: u64, result: Result<u64, String>) {
        let early = match &result {
            Ok(id) => self.early.remove(id),
            Err(_) => None,
        };
        let Some(b) = self.book.by_local_id(local) else {
            return;
        };
        match result {
            Ok(id) => {
                b.outbox_id = Some(id);
                match early {
                    Some((d, fragments)) => {
                        b.delivery = d;
                        b.fragments = fragments;
                    }
                    None => b.delivery = Delivery::Queued,
                }
            }
            Err(e) => b.delivery = Delivery::Failed(e),
        }
    }

    fn on_engine(&mut self, ev: Event) -> Task<Message> {
        match ev {
            Event::Message {
                from,
                text,
                round,
                timestamp_ms,
                anonymous,
                reply_to,
                ..
            } => {
                let address = if anonymous || from.starts_with("unknown-") {
                    reply_to
                } else {
                    from.clone()
                };
                let i = self.book.ensure(&from, &address);
                self.book.push(
                    &address,
                    Bubble {
                        outgoing: false,
                        text,
                        timestamp_ms,
                        delivery: Delivery::Received(round),
                        fragments: 1,
                        outbox_id: None,
                        local_id: 0,
                    },
                );
                if self.selected == Some(i) {
                    return operation::snap_to_end(MESSAGES);
                }
                if self.selected.is_none() {
                    // First conversation: open it, ready to answer.
                    return self.select(i);
                }
                self.book.contacts[i].unread += 1;
                self.save_contacts();
            }
            Event::State {
                id,
                delivery,
                fragments,
                ..
            } => {
                let d = Delivery::from_engine(&delivery);
                match self.book.by_outbox_id(id) {
                    Some(b) => {
                        b.delivery = d;
                        b.fragments = fragments;
                    }
                    None => {
                        self.early.insert(id, (d, fragments));
                    }
                }
            }
            Event::Board {
                text,
                round,
                timestamp_ms,
            } => {
                let i = self
                    .book
                    .ensure(crate::model::BOARD_NAME, crate::model::BOARD);
                self.book.push(
                    crate::model::BOARD,
                    Bubble {
                        outgoing: false,
                        text,
                        timestamp_ms,
                        delivery: Delivery::Received(round),
                        fragments: 1,
                        outbox_id: None,
                        local_id: 0,
                    },
                );
                if self.selected == Some(i) {
                    return operation::snap_to_end(MESSAGES);
                }
                self.book.contacts[i].unread += 1;
            }
            Event::RoomMessage {
                room,
                from,
                text,
                round,
                timestamp_ms,
            } => return self.room_bubble(&room, format!("{from}: {text}"), round, timestamp_ms),
            Event::RoomNotice {
                room,
                notice,
                round,
            } => {
                let bubble = self.room_bubble(&room, format!("· {notice}"), round, now_ms());
                return Task::batch([bubble, self.list_rooms()]);
            }
            Event::ServerUp { server } => self.set_server(server, true),
            Event::ServerDown { server } => self.set_server(server, false),
            Event::Round {
                round,
                participants,
                leader,
                ..
            } => {
                self.cluster.round = Some(round);
                self.cluster.participants = participants;
                if leader.is_some() {
                    self.cluster.leader = leader;
                }
            }
            Event::Gap {
                from_round,
                to_round,
            } => {
                self.notice = Some(format!(
                    "rounds {from_round}–{to_round} are no longer kept by the servers: \
                     messages to you in them are lost"
                ));
            }
            Event::Error { message } => self.notice = Some(message),
            Event::File { file } => self.files.take(file),
        }
        Task::none()
    }

    /// A line in a room's conversation (a member's message or what happened).
    fn room_bubble(&mut self, room: &str, text: String, round: u64, at: u64) -> Task<Message> {
        let address = crate::rooms::address(room);
        let i = self.book.ensure(&format!("# {room}"), &address);
        self.book.push(
            &address,
            Bubble {
                outgoing: false,
                text,
                timestamp_ms: at,
                delivery: Delivery::Received(round),
                fragments: 1,
                outbox_id: None,
                local_id: 0,
            },
        );
        if self.selected == Some(i) {
            return operation::snap_to_end(MESSAGES);
        }
        self.book.contacts[i].unread += 1;
        Task::none()
    }

    fn set_server(&mut self, server: u16, up: bool) {
        if let Some(s) = self.cluster.up.get_mut(server as usize) {
            *s = up;
        }
    }

    /// The window.
    pub fn view(&self) -> Element<'_, Message> {
        let body: Element<'_, Message> = match &self.me {
            None => self.view_setup(),
            Some(me) => column![self.view_header(me), rule::horizontal(1)]
                .push(self.backup.open.then(|| self.view_backup(me)))
                .push(
                    row![
                        self.view_contacts(),
                        rule::vertical(1),
                        self.view_conversation(me)
                    ]
                    .height(Fill),
                )
                .push(rule::horizontal(1))
                .push(self.view_status())
                .into(),
        };
        match &self.notice {
            None => body,
            Some(n) => column![
                container(
                    row![
                        text(n.clone()).width(Fill),
                        button(text("Dismiss").size(13))
                            .on_press(Message::Dismiss)
                            .style(button::secondary)
                    ]
                    .spacing(10)
                    .align_y(Alignment::Center)
                )
                .padding(8)
                .width(Fill)
                .style(|_: &Theme| tinted(Color::from_rgb8(0xfd, 0xec, 0xc8))),
                body
            ]
            .into(),
        }
    }

    fn view_setup(&self) -> Element<'_, Message> {
        let open = column![
            text("Open an identity").size(20),
            text("A client config (.toml), or a key file (.key) with its cluster file below.")
                .size(13),
            text_input("path/to/client.toml or path/to/name.key", &self.setup.path)
                .id("setup-path")
                .on_input(Message::SetupPath)
                .on_submit(Message::OpenConfig),
            button(text("Open")).on_press(Message::OpenConfig),
        ]
        .spacing(8);
        let create = column![
            text("Create a new identity").size(20),
            text("A fresh key is written next to the cluster file (mode 0600) and the name is registered.")
                .size(13),
            text_input("cluster file", &self.setup.cluster)
                .id("setup-cluster")
                .on_input(Message::SetupCluster),
            text_input("the name people will find you by", &self.setup.name)
                .id("setup-name")
                .on_input(Message::SetupName)
                .on_submit(Message::CreateIdentity),
            button(text("Create and register")).on_press(Message::CreateIdentity),
        ]
        .spacing(8);
        let restore = crate::backup::view_restore(&self.backup);
        container(
            column![
                text("Chorus").size(32),
                open,
                rule::horizontal(1),
                create,
                rule::horizontal(1),
                restore
            ]
            .spacing(24)
            .max_width(560),
        )
        .padding(32)
        .center_x(Fill)
        .into()
    }

    /// The Back up panel, for the name a backup is kept under.
    fn view_backup(&self, me: &Me) -> Element<'_, Message> {
        let name = match &self.registration {
            Registration::Registered(name) => name,
            _ => &me.name,
        };
        crate::backup::view_panel(&self.backup, name)
    }

    fn view_header(&self, me: &Me) -> Element<'_, Message> {
        let mut r = row![
            text(format!(
                "Chorus — {}",
                match &self.registration {
                    Registration::Registered(name) => name,
                    _ => &me.name,
                }
            ))
            .size(20),
            space::horizontal(),
        ]
        .spacing(12)
        .padding(10)
        .align_y(Alignment::Center);
        match &self.registration {
            Registration::Registered(name) => {
                r = r.push(text(format!("registered as {name}")).size(13));
            }
            Registration::Pending => r = r.push(text("checking registration…").size(13)),
            Registration::Needed | Registration::Unknown => {
                r = r.push(text("not registered:").size(13)).push(
                    text_input("name", &self.register_name)
                        .on_input(Message::RegisterName)
                        .on_submit(Message::Register)
                        .width(180),
                );
                r = r.push(button(text("Register")).on_press(Message::Register));
            }
        }
        r.push(text(format!("you: {}", me.fingerprint().short())).size(13))
            .push(
                button(text("Back up").size(13))
                    .on_press(Message::Backup(crate::backup::BackupMsg::Toggle))
                    .style(button::secondary),
            )
            .into()
    }

    fn view_contacts(&self) -> Element<'_, Message> {
        let mut list = column![].spacing(4);
        for (i, c) in self.book.contacts.iter().enumerate() {
            let mut label = row![text(c.name.clone()).width(Fill)].spacing(6);
            if c.verified {
                label = label.push(text("verified").size(11));
            }
            if c.unread > 0 {
                label = label.push(
                    container(text(c.unread.to_string()).size(12))
                        .padding([1, 6])
                        .style(|_: &Theme| pill(Color::from_rgb8(0x2b, 0x6c, 0xd8))),
                );
            }
            let style = if self.selected == Some(i) {
                button::primary
            } else {
                button::text
            };
            list = list.push(
                button(label)
                    .on_press(Message::Select(i))
                    .width(Fill)
                    .style(style),
            );
        }
        column![
            text("Contacts").size(16),
            row![
                text_input("name or fingerprint", &self.add_input)
                    .id("add-contact")
                    .on_input(Message::AddInput)
                    .on_submit(Message::AddContact),
                button(text("Add")).on_press(Message::AddContact),
            ]
            .spacing(4),
            scrollable(list).height(Fill),
            crate::rooms::view_form(&self.rooms),
        ]
        .spacing(8)
        .padding(10)
        .width(260)
        .into()
    }

    fn view_conversation(&self, me: &Me) -> Element<'_, Message> {
        let Some(c) = self.selected.and_then(|i| self.book.contacts.get(i)) else {
            return container(text("Add a contact by name or fingerprint to start."))
                .center(Fill)
                .into();
        };
        let mut head = row![text(c.name.clone()).size(18)]
            .spacing(10)
            .align_y(Alignment::Center);
        if c.verified {
            head = head.push(text("verified").size(12));
        }
        let room = crate::rooms::room_of(&c.address).and_then(|r| self.rooms.get(r));
        if c.is_board() {
            head = head
                .push(text("anyone can read these posts; they name nobody, you included").size(12));
        } else if room.is_some() {
            head = head.push(space::horizontal()).push(
                button(text(if self.verifying {
                    "Hide members"
                } else {
                    "Members"
                }))
                .on_press(Message::ToggleVerify)
                .style(button::secondary),
            );
        } else {
            head = head.push(space::horizontal()).push(
                button(text(if self.verifying {
                    "Hide safety numbers"
                } else {
                    "Verify"
                }))
                .on_press(Message::ToggleVerify)
                .style(button::secondary),
            );
        }
        let mut pane = column![head].spacing(8).padding(10);
        if let Some(room) = room {
            pane = pane.push(crate::rooms::view_requests(room));
            if self.verifying {
                pane = pane.push(crate::rooms::view_members(room, &self.book));
            }
        } else if self.verifying && !c.is_board() && crate::rooms::room_of(&c.address).is_none() {
            pane = pane.push(self.view_verify(me, c));
        }
        let mut bubbles = column![].spacing(6).padding([4, 12]);
        let incoming = self.files.incoming_on(&self.book, &c.address);
        for (k, b) in self
            .book
            .conversations
            .get(&c.address)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let transfer = match b.outbox_id {
                Some(id) if b.outgoing => self.files.by_outbox_id(id),
                _ => incoming.get(&k).copied(),
            };
            let file = crate::files::view_file(&self.files, transfer, self.files.source_of(b));
            bubbles = bubbles.push(view_bubble(b, file));
        }
        pane = pane.push(
            scrollable(bubbles)
                .id(MESSAGES)
                .anchor_bottom()
                .height(Fill),
        );
        let hint = match self.fragments_for(&self.composer) {
            _ if self.composer.is_empty() => String::new(),
            Some(1) => String::new(),
            Some(n) => format!("takes {n} slots"),
            None => "too long to send".into(),
        };
        let attachable = !c.is_board();
        if attachable && self.files.attaching {
            pane = pane.push(crate::files::view_attach(
                &self.files,
                self.max_file_bytes(),
            ));
        }
        pane = pane.push(
            row![
                text_input(
                    &if c.is_board() {
                        "post to everyone, anonymously".to_string()
                    } else {
                        format!("message {}", c.name)
                    },
                    &self.composer
                )
                .id(COMPOSER)
                .on_input(Message::Compose)
                .on_submit(Message::Send),
                text(hint).size(12),
            ]
            .push(attachable.then(|| {
                button(text("Attach"))
                    .on_press(Message::File(crate::files::FileMsg::ToggleAttach))
                    .style(button::secondary)
            }))
            .push(button(text("Send")).on_press(Message::Send))
            .spacing(8)
            .align_y(Alignment::Center),
        );
        pane.width(Fill).into()
    }

    fn view_verify<'a>(&'a self, me: &Me, c: &'a crate::model::Contact) -> Element<'a, Message> {
        let mine = me.fingerprint();
        let theirs = c.fingerprint();
        let card = |title: String, number: String, fp: String| {
            container(
                column![
                    text(title).size(13),
                    text(number).size(18),
                    text(fp).size(10)
                ]
                .spacing(4),
            )
            .padding(10)
            .width(Fill)
            .style(|_: &Theme| tinted(Color::from_rgb8(0xee, 0xf1, 0xf6)))
        };
        let theirs_card = match theirs {
            Some(fp) => card(
                format!("{}'s safety number", c.name),
                fp.safety_number(),
                fp.to_hex(),
            ),
            None => card(
                format!("{}'s safety number", c.name),
                "unknown: the directory has no keys for this contact".into(),
                String::new(),
            ),
        };
        let mut col = column![
            text("Compare these numbers with your contact in person or on a call.").size(13),
            row![
                card(
                    "Your safety number".into(),
                    mine.safety_number(),
                    mine.to_hex()
                ),
                theirs_card
            ]
            .spacing(10),
        ]
        .spacing(6);
        if theirs.is_some() {
            col = col.push(if c.verified {
                button(text("Mark as not verified"))
                    .on_press(Message::SetVerified(false))
                    .style(button::secondary)
            } else {
                button(text("They match: mark verified"))
                    .on_press(Message::SetVerified(true))
                    .style(button::success)
            });
        }
        col.into()
    }

    fn view_status(&self) -> Element<'_, Message> {
        let mut dots = row![text("servers").size(13)]
            .spacing(6)
            .align_y(Alignment::Center);
        for (i, up) in self.cluster.up.iter().enumerate() {
            let color = if *up {
                Color::from_rgb8(0x2e, 0xa0, 0x43)
            } else {
                Color::from_rgb8(0xc9, 0x2a, 0x2a)
            };
            dots = dots.push(
                row![
                    container(space().width(10).height(10)).style(move |_: &Theme| pill(color)),
                    text(format!("{i} {}", if *up { "up" } else { "down" })).size(12),
                ]
                .spacing(3)
                .align_y(Alignment::Center),
            );
        }
        let round = match self.cluster.round {
            Some(r) => format!(
                "round {r} · {} participants · leader {}",
                self.cluster.participants,
                self.cluster
                    .leader
                    .map_or_else(|| "unknown".to_string(), |l| l.to_string())
            ),
            None => "no round yet".into(),
        };
        let mut bar = row![dots, space::horizontal(), text(round).size(13)]
            .spacing(16)
            .padding(8)
            .align_y(Alignment::Center);
        if self.cluster.cannot_confirm() {
            bar = bar.push(
                text(format!(
                    "only {} of {} servers reachable: cannot confirm outputs (needs {})",
                    self.cluster.reachable(),
                    self.cluster.up.len(),
                    self.cluster.f + 1
                ))
                .size(13)
                .color(Color::from_rgb8(0xc9, 0x2a, 0x2a)),
            );
        }
        bar.into()
    }
}

fn view_bubble<'a>(b: &'a Bubble, file: Option<Element<'a, Message>>) -> Element<'a, Message> {
    let mut meta = format!("{} · {}", clock(b.timestamp_ms), b.delivery.label());
    if b.fragments > 1 {
        meta.push_str(&format!(" · {} slots", b.fragments));
    }
    let failed = matches!(b.delivery, Delivery::Failed(_));
    let bg = match (b.outgoing, failed) {
        (_, true) => Color::from_rgb8(0xf9, 0xd6, 0xd5),
        (true, false) => Color::from_rgb8(0xd3, 0xe6, 0xff),
        (false, false) => Color::from_rgb8(0xec, 0xec, 0xec),
    };
    let bubble = container(column![text(b.text.clone()), text(meta).size(11), file].spacing(2))
        .padding([6, 10])
        .max_width(480)
        .style(move |_: &Theme| tinted(bg));
    if b.outgoing {
        row![space::horizontal(), bubble].into()
    } else {
        row![bubble, space::horizontal()].into()
    }
}

fn tinted(bg: Color) -> container::Style {
    container::Style {
        background: Some(Background::Color(bg)),
        border: border::rounded(8),
        text_color: Some(Color::from_rgb8(0x1d, 0x1d, 0x1f)),
        ..container::Style::default()
    }
}

fn pill(bg: Color) -> container::Style {
    container::Style {
        background: Some(Background::Color(bg)),
        border: border::rounded(8),
        text_color: Some(Color::WHITE),
        ..container::Style::default()
    }
}

/// 64 hex digits (spaces and colons allowed) is a fingerprint; anything else a name.
fn looks_like_fingerprint(s: &str) -> bool {
    let hex: Vec<char> = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    hex.len() == 64 && hex.iter().all(|c| c.is_ascii_hexdigit())
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
