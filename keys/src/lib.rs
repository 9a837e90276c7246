//! Chorus identities and the files that hold them.
//!
//! Every participant — server or client — has one [`Identity`]: an ed25519 signing key
//! (submissions, registrations, signed round outputs, and the libp2p PeerId) and an
//! x25519 key (shares are sealed to servers' x25519 keys, slots to recipients').
//!
//! Who uses this crate: `protocol` (sealing, signing), `node` and `client` (loading key
//! files), and the `keygen` binary, which writes a whole local cluster. This crate is the
//! bottom layer: it knows nothing of rounds, networking or consensus.
//!
//! Architecture Invariant: secret key bytes only leave this crate through
//! [`Identity::x25519_secret`] and the signing methods; they are zeroized on drop.

pub mod fingerprint;
pub mod generate;
pub mod identity;
pub mod keyfile;
pub mod manifest;
pub mod peer_id;

pub use fingerprint::Fingerprint;
pub use identity::{Identity, PublicIdentity, PublicKeyError};
pub use keyfile::{
    load_identity, load_shared_secret, save_identity, save_shared_secret, KeyFileError,
};
pub use peer_id::peer_id_string;
