//! Attachments: what a file looks like on its way through the rounds.
//!
//! A file goes to its recipient as one message of many fragments. Fragment 0 is the
//! *offer* ([`FileOffer`]: name, size, type, SHA-256 of the content, the fresh key and
//! the chunking), fragments 1.. are the content's chunks, each encrypted under the fresh
//! key with its index as nonce ([`seal_chunk`]), so a chunk cannot be moved to another
//! place in the file, and the hash checks the whole once it is put together. Every
//! fragment is then sealed to the recipient like any slot ([`crate::slot`]): servers and
//! observers see slots of a file slot's length, nothing more.
//!
//! The offer starts with [`FILE_MAGIC`], which begins with a NUL byte; no text message
//! may start with one, so a text can never pass for a file.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};

use crate::bounded::{Bytes, Fixed};

/// The first bytes of an offer's body.
pub const FILE_MAGIC: &[u8; 4] = b"\0CF1";
/// Longest file name carried, in bytes of UTF-8 (longer names are cut, keeping the
/// extension).
pub const MAX_FILE_NAME_BYTES: usize = 100;
/// Longest media type carried.
pub const MAX_MIME_BYTES: usize = 64;
/// AEAD tag on every chunk.
pub const CHUNK_TAG: usize = 16;
/// Most chunks in one file: fragment indices are 16 bits, and fragment 0 is the offer.
pub const MAX_CHUNKS: usize = u16::MAX as usize - 1;
/// Largest file any offer may announce (each client has its own, smaller limit).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// What the recipient learns before the content: fragment 0 of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOffer {
    /// File name, UTF-8, no path.
    pub name: Bytes<MAX_FILE_NAME_BYTES>,
    /// Media type, for example `image/png`.
    pub mime: Bytes<MAX_MIME_BYTES>,
    /// Content bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: Fixed<32>,
    /// The fresh key the chunks are encrypted under.
    pub key: Fixed<32>,
    /// Content bytes per chunk (the last may be shorter).
    pub chunk_bytes: u32,
}

/// Why a file cannot be offered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// More chunks than a message can have.
    #[error("{size} bytes in chunks of {chunk} take {chunks} chunks; at most {MAX_CHUNKS}")]
    TooManyChunks {
        /// File size.
        size: usize,
        /// Chunk size.
        chunk: usize,
        /// Chunks needed.
        chunks: usize,
    },
    /// The slots are too small to carry a chunk.
    #[error("slots of {0} bytes are too small to carry a file chunk")]
    SlotTooSmall(usize),
}

impl FileOffer {
    /// The offer for `data`, named `name` (cut to a plain name), under `key`, in chunks
    /// of `chunk_bytes`.
    pub fn new(
        name: &str,
        data: &[u8],
        key: [u8; 32],
        chunk_bytes: usize,
    ) -> Result<Self, FileError> {
        use sha2::Digest;
        if chunk_bytes == 0 {
            return Err(FileError::SlotTooSmall(chunk_bytes));
        }
        let chunks = data.len().div_ceil(chunk_bytes);
        if chunks > MAX_CHUNKS {
            return Err(FileError::TooManyChunks {
                size: data.len(),
                chunk: chunk_bytes,
                chunks,
            });
        }
        let name = plain_name(name);
        let mime = guess_mime(&name);
        Ok(Self {
            name: Bytes::new(name.into_bytes()).unwrap_or_default(),
            mime: Bytes::new(mime.as_bytes().to_vec()).unwrap_or_default(),
            size: data.len() as u64,
            sha256: Fixed(sha2::Sha256::digest(data).into()),
            key: Fixed(key),
            chunk_bytes: chunk_bytes as u32,
        })
    }

    /// Chunks of content.
    pub fn chunks(&self) -> usize {
        usize::try_from(self.size)
            .unwrap_or(usize::MAX)
            .div_ceil(self.chunk_bytes.max(1) as usize)
    }

    /// The name, as text.
    pub fn name(&self) -> String {
        String::from_utf8_lossy(self.name.as_slice()).into_owned()
    }

    /// The media type, as text.
    pub fn mime(&self) -> String {
        String::from_utf8_lossy(self.mime.as_slice()).into_owned()
    }

    /// The offer as a message body.
    pub fn to_body(&self) -> Vec<u8> {
        let mut body = FILE_MAGIC.to_vec();
        body.extend(crate::codec::encode(self).unwrap_or_default());
        body
    }

    /// An offer from a message body, if it is a well-formed one.
    pub fn from_body(body: &[u8]) -> Option<Self> {
        let rest = body.strip_prefix(FILE_MAGIC)?;
        let offer: Self = crate::codec::decode(rest).ok()?;
        let sane = offer.chunk_bytes > 0
            && offer.size <= MAX_FILE_BYTES
            && offer.chunks() <= MAX_CHUNKS
            && std::str::from_utf8(offer.name.as_slice()).is_ok()
            && std::str::from_utf8(offer.mime.as_slice()).is_ok();
        sane.then_some(offer)
    }

    /// Content bytes chunk `index` (from 0) holds.
    pub fn chunk_len(&self, index: usize) -> usize {
        let start = index as u64 * u64::from(self.chunk_bytes);
        self.size
            .saturating_sub(start)
            .min(u64::from(self.chunk_bytes)) as usize
    }
}

fn nonce(index: usize) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&(index as u64).to_le_bytes());
    n
}

/// Chunk `index` (from 0) of a file, encrypted under its key.
pub fn seal_chunk(key: &[u8; 32], sha256: &[u8; 32], index: usize, plain: &[u8]) -> Vec<u8> {
    let aead = ChaCha20Poly1305::new(Key::from_slice(key));
    let payload = Payload {
        msg: plain,
        aad: sha256,
    };
    aead.encrypt(Nonce::from_slice(&nonce(index)), payload)
        .unwrap_or_default()
}

/// Chunk `index` decrypted, or `None` if it is not that chunk of that file.
pub fn open_chunk(
    key: &[u8; 32],
    sha256: &[u8; 32],
    index: usize,
    sealed: &[u8],
) -> Option<Vec<u8>> {
    let aead = ChaCha20Poly1305::new(Key::from_slice(key));
    let payload = Payload {
        msg: sealed,
        aad: sha256,
    };
    aead.decrypt(Nonce::from_slice(&nonce(index)), payload).ok()
}

/// Content bytes per chunk when each chunk travels in a slot of `slot_len` bytes.
pub fn chunk_bytes_for(slot_len: usize) -> usize {
    crate::slot::body_capacity(slot_len).saturating_sub(CHUNK_TAG)
}

/// A name safe to show and to write in a directory: the last path component, without
/// control characters or a leading dot, at most [`MAX_FILE_NAME_BYTES`] (the extension
/// kept when it is cut), `file` if nothing is left.
pub fn plain_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .to_string();
    if clean.is_empty() {
        return "file".into();
    }
    if clean.len() <= MAX_FILE_NAME_BYTES {
        return clean;
    }
    let ext = clean
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| e.len() <= 10)
        .unwrap_or("");
    let keep = MAX_FILE_NAME_BYTES - if ext.is_empty() { 0 } else { ext.len() + 1 };
    let mut cut = keep;
    while !clean.is_char_boundary(cut) {
        cut -= 1;
    }
    if ext.is_empty() {
        clean[..cut].to_string()
    } else {
        format!("{}.{ext}", &clean[..cut])
    }
}

/// A media type from a file name's extension (`application/octet-stream` if unknown).
pub fn guess_mime(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "pdf" => "application/pdf",
        "txt" | "md" => "text/plain",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_goes_through_a_body_and_chunks_open_only_in_place() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let offer = FileOffer::new("/home/ann/Photo.PNG", &data, [7; 32], 4000).expect("offer");
        assert_eq!(offer.name(), "Photo.PNG");
        assert_eq!(offer.mime(), "image/png");
        assert_eq!(offer.chunks(), 3);
        assert_eq!(
            (offer.chunk_len(0), offer.chunk_len(2), offer.chunk_len(3)),
            (4000, 2000, 0)
        );
        let back = FileOffer::from_body(&offer.to_body()).expect("decodes");
        assert_eq!(back, offer);
        assert!(
            FileOffer::from_body(b"hello").is_none(),
            "a text is no offer"
        );
        let sealed = seal_chunk(&offer.key.0, &offer.sha256.0, 1, &data[4000..8000]);
        assert_eq!(
            open_chunk(&offer.key.0, &offer.sha256.0, 1, &sealed).as_deref(),
            Some(&data[4000..8000])
        );
        assert!(open_chunk(&offer.key.0, &offer.sha256.0, 2, &sealed).is_none());
        assert!(open_chunk(&[8; 32], &offer.sha256.0, 1, &sealed).is_none());
    }

    #[test]
    fn names_are_plain_and_bounded() {
        assert_eq!(plain_name("../../etc/passwd"), "passwd");
        assert_eq!(plain_name("..\\x\\.hidden"), "hidden");
        assert_eq!(plain_name("a\u{7}b\n"), "ab");
        assert_eq!(plain_name("  "), "file");
        let long = format!("{}.jpeg", "é".repeat(80));
        let cut = plain_name(&long);
        assert!(
            cut.len() <= MAX_FILE_NAME_BYTES && cut.ends_with(".jpeg"),
            "{cut}"
        );
        let offer = FileOffer::new(&long, b"x", [0; 32], 10).expect("offer");
        assert!(FileOffer::from_body(&offer.to_body()).is_some());
    }

    #[test]
    fn too_many_chunks_is_refused_before_anything_is_sent() {
        let data = vec![0u8; MAX_CHUNKS + 1];
        assert!(matches!(
            FileOffer::new("a", &data, [0; 32], 1),
            Err(FileError::TooManyChunks { .. })
        ));
    }

    proptest::proptest! {
        /// Any bytes after the magic decode to a sane offer or to nothing, without a panic.
        #[test]
        fn any_body_decodes_or_not(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut body = FILE_MAGIC.to_vec();
            body.extend(&bytes);
            if let Some(o) = FileOffer::from_body(&body) {
                proptest::prop_assert!(o.chunks() <= MAX_CHUNKS && o.size <= MAX_FILE_BYTES);
            }
            let _ = FileOffer::from_body(&bytes);
        }
    }
}
