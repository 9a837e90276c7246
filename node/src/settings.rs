//! Config file → validated settings. Every error names the file, the field and why.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use keys::manifest::{read_manifest, resolve, NodeManifest};
use protocol::Params;

/// Validated node settings.
pub struct Settings {
    /// The parsed file.
    pub manifest: NodeManifest,
    /// Key file path (resolved).
    pub key_file: PathBuf,
    /// The servers' shared validity key file (resolved).
    pub validity_key_file: PathBuf,
    /// Data folder (resolved).
    pub data_dir: PathBuf,
    /// Admin endpoint address.
    pub admin: SocketAddr,
    /// Round parameters.
    pub params: Params,
    /// Key backup: guess limit and refresh epoch.
    pub backup: actors::backup_keeper::BackupSettings,
}

/// A config problem: the file, the field, and what is wrong.
#[derive(Debug)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The field (dotted path).
    pub field: String,
    /// The problem.
    pub problem: String,
}

impl std::error::Error for ConfigError {}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.file.display(),
            self.field,
            self.problem
        )
    }
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    keys::identity::parse_hex32(text).ok()
}

/// Read and validate `path`.
pub fn load(path: &Path) -> anyhow::Result<Settings> {
    let manifest: NodeManifest = read_manifest(path)?;
    Ok(validate(path, manifest)?)
}

/// Validate a parsed manifest.
pub fn validate(path: &Path, m: NodeManifest) -> Result<Settings, ConfigError> {
    let err = |field: &str, problem: String| ConfigError {
        file: path.to_path_buf(),
        field: field.into(),
        problem,
    };
    let n = m.servers.len();
    for (i, s) in m.servers.iter().enumerate() {
        if s.id as usize != i {
            return Err(err(
                &format!("servers[{i}].id"),
                format!(
                    "is {}, expected {i}: servers must be listed in index order",
                    s.id
                ),
            ));
        }
        let Some(ed) = hex32(&s.ed25519) else {
            return Err(err(
                &format!("servers[{i}].ed25519"),
                "must be 64 hex characters".into(),
            ));
        };
        if hex32(&s.x25519).is_none() {
            return Err(err(
                &format!("servers[{i}].x25519"),
                "must be 64 hex characters".into(),
            ));
        }
        if keys::peer_id_string(&ed) != s.peer_id {
            return Err(err(
                &format!("servers[{i}].peer_id"),
                format!(
                    "{} does not match servers[{i}].ed25519 (expected {})",
                    s.peer_id,
                    keys::peer_id_string(&ed)
                ),
            ));
        }
        if !s.address.starts_with('/') {
            return Err(err(
                &format!("servers[{i}].address"),
                format!(
                    "{:?} is not a multiaddr like /ip4/127.0.0.1/tcp/7100",
                    s.address
                ),
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, s) in m.servers.iter().enumerate() {
        if !seen.insert(&s.peer_id) {
            return Err(err(&format!("servers[{i}].peer_id"), "listed twice".into()));
        }
    }
    if m.node.id as usize >= n {
        return Err(err(
            "node.id",
            format!("{} but only {n} servers are listed", m.node.id),
        ));
    }
    if !m.node.listen.starts_with('/') {
        return Err(err(
            "node.listen",
            format!(
                "{:?} is not a multiaddr like /ip4/127.0.0.1/tcp/7100",
                m.node.listen
            ),
        ));
    }
    let admin: SocketAddr = m.node.admin.parse().map_err(|e| {
        err(
            "node.admin",
            format!("{:?} is not host:port ({e})", m.node.admin),
        )
    })?;
    let params = Params::from_manifest(&m.servers, &m.round, &m.admission)
        .map_err(|e| err(&e.field, e.problem))?;
    let r = &m.round;
    if r.round_ms < 100 {
        return Err(err(
            "round.round_ms",
            format!("{} is below the 100 ms minimum", r.round_ms),
        ));
    }
    if let Some(raft) = &m.raft {
        let hb = raft.heartbeat_ms.unwrap_or(150);
        let lo = raft.election_min_ms.unwrap_or(1000);
        let hi = raft.election_max_ms.unwrap_or(2000);
        if !(hb < lo && lo < hi) {
            return Err(err(
                "raft",
                format!(
                    "need heartbeat_ms ({hb}) < election_min_ms ({lo}) < election_max_ms ({hi})"
                ),
            ));
        }
    }
    let mut backup = actors::backup_keeper::BackupSettings::default();
    if let Some(b) = &m.backup {
        if let Some(limit) = b.guess_limit {
            if !(1..=1000).contains(&limit) {
                return Err(err(
                    "backup.guess_limit",
                    format!("{limit} is not between 1 and 1000"),
                ));
            }
            backup.guess_limit = limit;
        }
        if let Some(secs) = b.refresh_secs {
            if secs == 0 {
                return Err(err(
                    "backup.refresh_secs",
                    "0 is not a refresh period; at least 1".into(),
                ));
            }
            backup.refresh = std::time::Duration::from_secs(secs);
        }
    }
    Ok(Settings {
        backup,
        key_file: resolve(path, &m.node.key_file),
        validity_key_file: resolve(path, &m.node.validity_key_file),
        data_dir: resolve(path, &m.node.data_dir),
        admin,
        params,
        manifest: m,
    })
}
