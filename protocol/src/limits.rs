//! Hard size limits. Every one is checked before the data it bounds is allocated.

/// Most servers a cluster may have (Shamir x-coordinates 1..=32).
pub const MAX_SERVERS: usize = 32;
/// Most slots per round.
pub const MAX_SLOTS: usize = 4096;
/// Most bytes per slot.
pub const MAX_SLOT_BYTES: usize = 16 * 1024;
/// Most bytes in a round's message region (`S * L`).
pub const MAX_VECTOR_BYTES: usize = 256 * 1024;
/// Most reservation cells per round (three field elements each).
pub const MAX_RESERVE_CELLS: usize = 3 * MAX_SLOTS;
/// Most footprints one output can decode (two per cell).
pub const MAX_RESERVATIONS: usize = 2 * MAX_RESERVE_CELLS;
/// Most laid-out slots in one output.
pub const MAX_OUTPUT_SLOTS: usize = MAX_VECTOR_BYTES / crate::slot::MIN_SLOT_BYTES;
/// Most bytes of one share or sum: the reservation cells (three 8-byte elements each)
/// and the message region packed 7 bytes to an 8-byte element; about 0.6 MB, so one
/// upload stays far under [`MAX_FRAME_BYTES`].
pub const MAX_SHARE_BYTES: usize = crate::field::share_bytes(MAX_VECTOR_BYTES)
    + 3 * MAX_RESERVE_CELLS * crate::field::ELEMENT_BYTES;
/// AEAD tag length (ChaCha20-Poly1305).
pub const TAG_BYTES: usize = 16;
/// Most bytes of one sealed share's ciphertext.
pub const MAX_SEALED_SHARE_BYTES: usize = MAX_SHARE_BYTES + TAG_BYTES;
/// Bytes of one sealed proof share: the tags' masks and the proofs, and the AEAD tag.
pub const MAX_PROOF_SEALED_BYTES: usize =
    crate::validity::EXTRA_ELEMENTS * crate::field::ELEMENT_BYTES + TAG_BYTES;
/// Bytes of a share seed (see [`crate::shamir`]).
pub const SEED_BYTES: usize = 32;
/// Most clients one round can include (and one `Have` list can name: 128 bytes each,
/// 2 MiB).
pub const MAX_ROUND_CLIENTS: usize = 16_384;
/// Longest registered name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 64;
/// Largest opaque probe payload (benchmarks and consensus tests).
pub const MAX_PROBE_BYTES: usize = 64 * 1024;
/// Most round outputs in one `History` response; clients page through longer gaps.
pub const MAX_HISTORY_OUTPUTS: usize = 64;
/// Most registrations in one `Directory` page (about 250 KiB at the longest names).
pub const MAX_DIRECTORY_PAGE: usize = 1024;
/// Largest frame on any Chorus protocol. Large enough for a full submission and for a
/// Raft snapshot chunk (the consensus actor sets its chunk size below this), small enough
/// that a hostile peer cannot make a server buffer much.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
