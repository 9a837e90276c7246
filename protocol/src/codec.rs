//! The one place that knows the wire encoding (bincode 2, serde mode).
//!
//! Frames are checked against [`MAX_FRAME_BYTES`] before decoding, bincode's own limit
//! stops any length prefix from claiming more than the frame holds, and the bounded field
//! types refuse oversized fields before copying them. Decoding borrows from the input, so
//! byte fields are measured before they are allocated.

use serde::{de::DeserializeOwned, Serialize};

use crate::limits::MAX_FRAME_BYTES;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_variable_int_encoding()
        .with_limit::<MAX_FRAME_BYTES>()
}

/// Why bytes could not be decoded. Nothing here panics on hostile input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge {
        /// Frame length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input ended in the middle of a value.
    #[error("frame truncated: {0}")]
    Truncated(String),
    /// A field was longer than its limit.
    #[error("field too long: {0}")]
    FieldTooLong(String),
    /// Bytes after a complete value: frames carry exactly one value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// Anything else malformed (bad enum tag, invalid UTF-8, bad bool…).
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Why a value could not be encoded (only when a limit would be broken).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded value would exceed [`MAX_FRAME_BYTES`].
    #[error("value does not fit a frame: {0}")]
    TooLarge(String),
}

/// Encode `value` as one frame.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| EncodeError::TooLarge(e.to_string()))
}

/// Decode exactly one value from `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(DecodeError::FrameTooLarge {
            len: bytes.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    let (value, used): (T, usize) =
        bincode::serde::borrow_decode_from_slice(bytes, config()).map_err(classify)?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

fn classify(e: bincode::error::DecodeError) -> DecodeError {
    use bincode::error::DecodeError as B;
    match &e {
        B::UnexpectedEnd { .. } => DecodeError::Truncated(e.to_string()),
        B::LimitExceeded => DecodeError::FieldTooLong(e.to_string()),
        B::OtherString(s) if s.contains("exceeds the limit") => {
            DecodeError::FieldTooLong(s.clone())
        }
        _ => DecodeError::Malformed(e.to_string()),
    }
}

/// Encode large internal values (state snapshots, state hashes) into a writer, without
/// the frame limit. Never used for anything read from the network.
pub fn encode_into<T: Serialize, W: std::io::Write>(
    value: &T,
    w: &mut W,
) -> Result<usize, EncodeError> {
    let cfg = bincode::config::standard()
        .with_little_endian()
        .with_variable_int_encoding();
    bincode::serde::encode_into_std_write(value, w, cfg)
        .map_err(|e| EncodeError::TooLarge(e.to_string()))
}

/// Decode a large internal value (a snapshot written by [`encode_into`]); `max_bytes`
/// bounds what a corrupt length prefix can make us allocate.
pub fn decode_large<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    const LIMIT: usize = 1 << 30;
    let cfg = bincode::config::standard()
        .with_little_endian()
        .with_variable_int_encoding()
        .with_limit::<LIMIT>();
    let (value, used): (T, usize) =
        bincode::serde::borrow_decode_from_slice(bytes, cfg).map_err(classify)?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}
