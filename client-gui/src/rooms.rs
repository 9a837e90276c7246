//! Rooms in the window: the rooms list and its create/join form, a room's pending
//! requests with Approve and Decline, "waiting for approval", and its members with
//! verified marks. A room's conversation is a pinned entry in the contact list (address
//! `#room/NAME`), so bubbles, the composer and unread counts work as for a contact.
//!
//! Plain data and rules here; `app.rs` wires messages to the engine (`room` calls) and
//! calls the views below.

use client::core::RoomRequest;
use iced::widget::{button, column, container, row, text, text_input};
use iced::{Alignment, Color, Element, Fill, Theme};
use serde_json::Value;

use crate::app::Message;
use crate::model::Book;

/// A room member as the engine lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// Name.
    pub name: String,
    /// Fingerprint (hex).
    pub fingerprint: String,
    /// An admin of the room.
    pub admin: bool,
}

/// One room as the engine lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomInfo {
    /// Name.
    pub name: String,
    /// Members.
    pub members: Vec<MemberInfo>,
    /// Users asking to join.
    pub requests: Vec<String>,
}

/// Rooms, rooms we wait for, and the create/join form.
#[derive(Clone, Debug, Default)]
pub struct Rooms {
    /// Rooms we are in.
    pub rooms: Vec<RoomInfo>,
    /// Rooms we asked to join: (room, member asked).
    pub waiting: Vec<(String, String)>,
    /// The form: a room's name.
    pub name_input: String,
    /// The form: the member to ask.
    pub via_input: String,
}

/// The address of a room's conversation.
pub fn address(name: &str) -> String {
    format!("#room/{name}")
}

/// The room an address is for, if it is a room's.
pub fn room_of(address: &str) -> Option<&str> {
    address.strip_prefix("#room/")
}

impl Rooms {
    /// Take the engine's `room list` answer; pin an entry in the book for every room.
    pub fn take_list(&mut self, v: &Value, book: &mut Book) {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        self.rooms = v["rooms"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| RoomInfo {
                name: s(&r["name"]),
                members: r["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| MemberInfo {
                        name: s(&m["name"]),
                        fingerprint: s(&m["fingerprint"]),
                        admin: m["admin"] == true,
                    })
                    .collect(),
                requests: r["requests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(s)
                    .collect(),
            })
            .collect();
        self.waiting = v["waiting"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| (s(&w["room"]), s(&w["via"])))
            .collect();
        for r in &self.rooms {
            book.ensure(&format!("# {}", r.name), &address(&r.name));
        }
    }

    /// The room named `name`.
    pub fn get(&self, name: &str) -> Option<&RoomInfo> {
        self.rooms.iter().find(|r| r.name == name)
    }

    /// What "Create" asks the engine, or why not.
    pub fn create_request(&self) -> Result<RoomRequest, String> {
        let name = self.name_input.trim();
        if name.is_empty() {
            return Err("type the new room's name first".into());
        }
        Ok(RoomRequest::Create {
            name: name.into(),
            admins_only: false,
            history: true,
        })
    }

    /// What "Ask to join" asks the engine, or why not.
    pub fn join_request(&self) -> Result<RoomRequest, String> {
        let (name, via) = (self.name_input.trim(), self.via_input.trim());
        if name.is_empty() || via.is_empty() {
            return Err("to join, type the room's name and a member you know".into());
        }
        Ok(RoomRequest::Join {
            name: name.into(),
            via: via.into(),
        })
    }
}

/// The sidebar's rooms form and the rooms we wait for.
pub fn view_form(rooms: &Rooms) -> Element<'_, Message> {
    let mut col = column![
        text("Rooms").size(16),
        text_input("room name", &rooms.name_input)
            .id("room-name")
            .on_input(Message::RoomName),
        row![
            button(text("Create").size(13)).on_press(Message::CreateRoom),
            text_input("member to ask", &rooms.via_input)
                .id("room-via")
                .on_input(Message::RoomVia)
                .on_submit(Message::JoinRoom),
            button(text("Ask to join").size(13)).on_press(Message::JoinRoom),
        ]
        .spacing(4)
        .align_y(Alignment::Center),
    ]
    .spacing(6);
    for (room, via) in &rooms.waiting {
        col = col.push(text(format!("{room}: waiting for approval (asked {via})")).size(12));
    }
    col.into()
}

/// A room's banner: each pending request with Approve and Decline.
pub fn view_requests<'a>(room: &'a RoomInfo) -> Element<'a, Message> {
    let mut col = column![].spacing(4);
    for user in &room.requests {
        col = col.push(
            container(
                row![
                    text(format!("{user} asks to join")).width(Fill),
                    button(text("Approve").size(13))
                        .on_press(Message::Approve(room.name.clone(), user.clone())),
                    button(text("Decline").size(13))
                        .on_press(Message::Decline(room.name.clone(), user.clone()))
                        .style(button::secondary),
                ]
                .spacing(8)
                .align_y(Alignment::Center),
            )
            .padding(6)
            .width(Fill)
            .style(|_: &Theme| {
                container::Style::default().background(Color::from_rgb8(0xe6, 0xf0, 0xfd))
            }),
        );
    }
    col.into()
}

/// A room's members, each marked verified when a contact with its fingerprint is.
pub fn view_members<'a>(room: &'a RoomInfo, book: &Book) -> Element<'a, Message> {
    let mut col = column![text(format!("{} members", room.members.len())).size(13)].spacing(2);
    for m in &room.members {
        let verified = book.contacts.iter().any(|c| {
            c.verified
                && c.fingerprint()
                    .is_some_and(|fp| fp.to_hex() == m.fingerprint)
        });
        let mut line = m.name.clone();
        if m.admin {
            line.push_str(" · admin");
        }
        if verified {
            line.push_str(" · verified");
        }
        col = col.push(text(line).size(12));
    }
    col.into()
}
