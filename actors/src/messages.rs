//! Messages that more than one actor handles. Messages private to one actor live in its
//! own module.

use actix::prelude::*;

use crate::store::AppliedEntry;

/// A committed and applied log entry, for the share-keeper and the broadcaster (sent by
/// the applied-entry dispatcher in log order).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Committed(pub AppliedEntry);

/// Publish bytes on the output topic (broadcaster → peer-connection).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Vec<u8>);
