//! Key files: 0600, fixed layout, checked on load.
//!
//! Layout (80 bytes): magic `CHORUSK1` (8) | ed25519 seed (32) | x25519 secret (32) |
//! first 8 bytes of SHA-256 over everything before it (8). The checksum catches a file
//! that was cut short and padded, or edited by hand; the magic catches "not a key file".
//!
//! Files are created with mode 0600 atomically (write to a temporary sibling, fsync,
//! rename) and a file that group or others may read is refused on load, the way ssh does.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::identity::Identity;

const MAGIC: &[u8; 8] = b"CHORUSK1";
/// Exact size of a key file in bytes.
pub const KEY_FILE_BYTES: usize = 8 + 32 + 32 + 8;

/// Why a key file could not be read or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be opened, read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Group or others have some access; secrets must be private to the owner.
    #[error("key file {path} has mode {mode:04o}; it must not be accessible by group or others (run `chmod 600 {path}`)")]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Shorter than a key file.
    #[error("key file {path} is truncated: {len} bytes, expected {expected}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
        /// The length of its kind of key file.
        expected: usize,
    },
    /// Longer than a key file.
    #[error("key file {path} is too long: {len} bytes, expected {expected}")]
    TooLong {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
        /// The length of its kind of key file.
        expected: usize,
    },
    /// Wrong magic: this is some other file.
    #[error("{path} is not a Chorus key file (bad magic header)")]
    NotAKey {
        /// The file.
        path: PathBuf,
    },
    /// Right size and magic but the checksum does not match.
    #[error("key file {path} is corrupt (checksum mismatch)")]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
    /// Refused to replace an existing key.
    #[error(
        "key file {path} already exists; refusing to overwrite it (use --force to replace keys)"
    )]
    Exists {
        /// The file.
        path: PathBuf,
    },
}

fn checksum(body: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(body);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

fn encode(identity: &Identity) -> Zeroizing<Vec<u8>> {
    let (seed, dh) = identity.secret_bytes();
    let (seed, dh) = (Zeroizing::new(seed), Zeroizing::new(dh));
    let mut buf = Zeroizing::new(Vec::with_capacity(KEY_FILE_BYTES));
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&seed[..]);
    buf.extend_from_slice(&dh[..]);
    let sum = checksum(&buf);
    buf.extend_from_slice(&sum);
    debug_assert_eq!(buf.len(), KEY_FILE_BYTES);
    buf
}

/// The body of a key file of `len` bytes with `magic` (everything before the checksum),
/// after checking magic, length and checksum.
fn check_layout<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: &[u8; 8],
    len: usize,
) -> Result<&'a [u8], KeyFileError> {
    let path = path.to_path_buf();
    if bytes.len() >= magic.len() && &bytes[..magic.len()] != magic {
        return Err(KeyFileError::NotAKey { path });
    }
    if bytes.len() < len {
        if bytes.len() < magic.len() && !magic.starts_with(bytes) {
            return Err(KeyFileError::NotAKey { path });
        }
        return Err(KeyFileError::Truncated {
            path,
            len: bytes.len(),
            expected: len,
        });
    }
    if bytes.len() > len {
        return Err(KeyFileError::TooLong {
            path,
            len: bytes.len(),
            expected: len,
        });
    }
    let (body, sum) = bytes.split_at(len - 8);
    if checksum(body) != sum {
        return Err(KeyFileError::Corrupt { path });
    }
    Ok(body)
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Identity, KeyFileError> {
    let body = check_layout(path, bytes, MAGIC, KEY_FILE_BYTES)?;
    let mut seed = Zeroizing::new([0u8; 32]);
    let mut dh = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&body[8..40]);
    dh.copy_from_slice(&body[40..72]);
    Ok(Identity::from_secret_bytes(&seed, &dh))
}

const SHARED_MAGIC: &[u8; 8] = b"CHORUSQ1";
/// Exact size of a shared-secret file (the servers' validity key): magic, 32 bytes,
/// checksum.
pub const SHARED_FILE_BYTES: usize = 8 + 32 + 8;

/// Write a 32-byte secret all servers share (the validity key) to `path`, mode 0600.
pub fn save_shared_secret(
    path: &Path,
    secret: &[u8; 32],
    overwrite: bool,
) -> Result<(), KeyFileError> {
    let mut buf = Zeroizing::new(Vec::with_capacity(SHARED_FILE_BYTES));
    buf.extend_from_slice(SHARED_MAGIC);
    buf.extend_from_slice(secret);
    let sum = checksum(&buf);
    buf.extend_from_slice(&sum);
    write_private(path, &buf, overwrite)
}

/// Load a shared secret written by [`save_shared_secret`], with the checks of
/// [`load_identity`].
pub fn load_shared_secret(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let bytes = read_private(path)?;
    let body = check_layout(path, &bytes, SHARED_MAGIC, SHARED_FILE_BYTES)?;
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&body[8..40]);
    Ok(out)
}

/// Write `identity` to `path` with mode 0600. Without `overwrite`, an existing file is an
/// error ([`KeyFileError::Exists`]).
pub fn save_identity(
    path: &Path,
    identity: &Identity,
    overwrite: bool,
) -> Result<(), KeyFileError> {
    write_private(path, &encode(identity), overwrite)
}

/// Write `bytes` to `path` atomically with mode 0600.
fn write_private(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    if !overwrite && path.exists() {
        return Err(KeyFileError::Exists {
            path: path.to_path_buf(),
        });
    }
    let tmp = path.with_extension("key.tmp");
    let _ = fs::remove_file(&tmp);
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)?;
    // Defence in depth: a umask cannot widen 0600, but a pre-existing file kept its mode.
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(())
}

/// Load an identity, refusing files that are readable by group/others, truncated, too
/// long, not key files, or corrupt.
pub fn load_identity(path: &Path) -> Result<Identity, KeyFileError> {
    let bytes = read_private(path)?;
    decode(path, &bytes)
}

/// The bytes of a private file: refused if group or others may read it, or if it is
/// far longer than any key file.
fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    if meta.len() > 4096 {
        return Err(KeyFileError::TooLong {
            path: path.to_path_buf(),
            len: usize::try_from(meta.len()).unwrap_or(usize::MAX),
            expected: KEY_FILE_BYTES,
        });
    }
    Ok(Zeroizing::new(fs::read(path).map_err(io)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    #[test]
    fn save_then_load_round_trips_with_mode_0600() {
        let dir = tmp();
        let path = dir.path().join("a.key");
        let id = Identity::generate(&mut rand_core::OsRng);
        save_identity(&path, &id, false).expect("save");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = load_identity(&path).expect("load");
        assert_eq!(back.public(), id.public());
    }

    #[test]
    fn refuses_overwrite_without_flag() {
        let dir = tmp();
        let path = dir.path().join("a.key");
        let id = Identity::generate(&mut rand_core::OsRng);
        save_identity(&path, &id, false).expect("save");
        let err = save_identity(&path, &id, false).expect_err("must refuse");
        assert!(matches!(err, KeyFileError::Exists { .. }), "{err}");
        save_identity(&path, &id, true).expect("force works");
    }

    #[test]
    fn group_readable_file_is_refused_and_named() {
        let dir = tmp();
        let path = dir.path().join("a.key");
        save_identity(&path, &Identity::generate(&mut rand_core::OsRng), false).expect("save");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = load_identity(&path).expect_err("must refuse");
        assert!(matches!(
            err,
            KeyFileError::InsecurePermissions { mode: 0o640, .. }
        ));
        assert!(err.to_string().contains("a.key"), "{err}");
    }

    #[test]
    fn truncated_not_a_key_and_corrupt_are_distinguished() {
        let dir = tmp();
        let path = dir.path().join("a.key");
        save_identity(&path, &Identity::generate(&mut rand_core::OsRng), false).expect("save");
        let good = fs::read(&path).expect("read");
        let write = |bytes: &[u8]| {
            fs::write(&path, bytes).expect("write");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
            load_identity(&path).expect_err("must fail")
        };
        assert!(matches!(
            write(&good[..40]),
            KeyFileError::Truncated { len: 40, .. }
        ));
        assert!(matches!(
            write(b"-----BEGIN OPENSSH PRIVATE KEY-----"),
            KeyFileError::NotAKey { .. }
        ));
        let mut flipped = good.clone();
        flipped[20] ^= 1;
        assert!(matches!(write(&flipped), KeyFileError::Corrupt { .. }));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(write(&long), KeyFileError::TooLong { .. }));
        assert!(matches!(write(b""), KeyFileError::Truncated { len: 0, .. }));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(Path::new("fuzz.key"), &bytes);
            let _ = check_layout(Path::new("fuzz.key"), &bytes, SHARED_MAGIC, SHARED_FILE_BYTES);
        }
    }

    #[test]
    fn a_shared_secret_round_trips_and_bad_files_are_named() {
        let dir = tmp();
        let path = dir.path().join("validity.key");
        save_shared_secret(&path, &[7; 32], false).expect("save");
        assert_eq!(*load_shared_secret(&path).expect("load"), [7; 32]);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            save_shared_secret(&path, &[8; 32], false),
            Err(KeyFileError::Exists { .. })
        ));
        // An identity key file is not a shared secret, and a cut one says how long.
        let id = dir.path().join("node.key");
        save_identity(&id, &Identity::generate(&mut rand_core::OsRng), false).expect("id");
        assert!(matches!(
            load_shared_secret(&id),
            Err(KeyFileError::NotAKey { .. })
        ));
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..20]).expect("cut");
        let err = load_shared_secret(&path).expect_err("cut");
        assert!(err.to_string().contains("20 bytes, expected 48"), "{err}");
    }
}
