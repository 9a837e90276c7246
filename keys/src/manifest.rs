//! The TOML files `keygen` writes and `node`/`client` read, as plain serde structs.
//!
//! This module only defines the *shape* of the files (and refuses unknown fields, so a
//! typo is named rather than ignored). Turning a manifest into validated settings — ranges,
//! addresses, key consistency — is the job of `node` and `client`, which report errors
//! naming the field. The schema lives here, at the bottom layer, because the writer
//! (`keygen`, in this crate) and the readers must agree on it exactly.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Round parameters shared by every server and client of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundSection {
    /// Privacy threshold `t`: any `t` colluding servers learn nothing; `t+1` reveal.
    pub threshold: u32,
    /// `k`: a round with fewer distinct clients is void and reveals nothing.
    pub min_anonymity_set: u32,
    /// Round length in milliseconds (the leader closes a round when it expires).
    pub round_ms: u64,
    /// `S`: slots per round.
    pub slots: u32,
    /// `L`: bytes per slot.
    pub slot_bytes: u32,
    /// How many revealed rounds' outputs the servers keep for clients that were away.
    pub retention_rounds: u64,
    /// Days of outputs the servers keep (room history for newcomers, catch-up for clients
    /// that were away); when set, it replaces `retention_rounds` with
    /// days × 86,400,000 / `round_ms` rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// `R`: reservation cells per round (default three per slot, about 95% of
    /// reservations decoded at the first try when every slot is wanted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_cells: Option<u32>,
    /// Exclusions for a bad validity proof, inconsistent shares or two different
    /// submissions in one round before a client is refused for `cooling_rounds`
    /// (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusions_before_cooling: Option<u32>,
    /// Rounds a client excluded that often is refused for (default 1200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooling_rounds: Option<u64>,
    /// `F`: file slots per round, laid out after every message that fits (default 1;
    /// 0 sends files through ordinary slots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_slots: Option<u32>,
    /// `Lf`: bytes per file slot, more than `slot_bytes` (default 8192).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_slot_bytes: Option<u32>,
}

/// Client admission policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Any client key may submit.
    Open,
    /// Only the listed client keys may submit.
    Listed,
}

/// Who may submit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionSection {
    /// `open` or `listed`.
    pub policy: Policy,
    /// Hex ed25519 public keys of listed clients (used when `policy = "listed"`).
    #[serde(default)]
    pub clients: Vec<String>,
    /// Under `open`: most registrations committed per round (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_registrations_per_round: Option<u32>,
    /// Under `open`: most names in the directory (default 100000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_registrations: Option<u64>,
}

/// One server of the fixed set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// Index `i`; the server's Shamir x-coordinate is `i + 1`.
    pub id: u32,
    /// libp2p PeerId (base58), derived from `ed25519`.
    pub peer_id: String,
    /// libp2p multiaddr, e.g. `/ip4/127.0.0.1/tcp/7100`.
    pub address: String,
    /// Hex ed25519 public key (signs round outputs; libp2p identity).
    pub ed25519: String,
    /// Hex x25519 public key (clients seal shares to it).
    pub x25519: String,
}

/// The public description of a cluster: `cluster.toml`, and embedded in node configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterManifest {
    /// Round parameters.
    pub round: RoundSection,
    /// Admission policy.
    pub admission: AdmissionSection,
    /// Every server, in index order.
    pub servers: Vec<ServerEntry>,
}

/// This node's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// This server's index in `servers`.
    pub id: u32,
    /// Key file, relative to the config file's folder unless absolute.
    pub key_file: PathBuf,
    /// The key every server of the cluster shares and no client holds (validity-proof
    /// query randomness), relative like `key_file`.
    pub validity_key_file: PathBuf,
    /// libp2p listen multiaddr.
    pub listen: String,
    /// Folder for the Raft log and state (redb), relative like `key_file`.
    pub data_dir: PathBuf,
    /// Admin HTTP endpoint (`/metrics`, `/status`, `/healthz`, `/readyz`).
    pub admin: String,
    /// Optional bearer token required on the admin endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
}

/// Optional Raft tuning (defaults suit a LAN or loopback cluster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RaftSection {
    /// Leader heartbeat interval, ms (default 150).
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
    /// Minimum election timeout, ms (default 1000).
    #[serde(default)]
    pub election_min_ms: Option<u64>,
    /// Maximum election timeout, ms (default 2000).
    #[serde(default)]
    pub election_max_ms: Option<u64>,
    /// Snapshot after this many log entries (default 2000).
    #[serde(default)]
    pub snapshot_logs: Option<u64>,
    /// Log entries kept behind a snapshot for slow followers (default 200).
    #[serde(default)]
    pub keep_logs: Option<u64>,
}

/// Key backup on this server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    /// Wrong passphrase guesses allowed before this server erases its share of a
    /// backup (default 10).
    #[serde(default)]
    pub guess_limit: Option<u32>,
    /// Seconds between proactive refreshes of every backup's shares (default 3600).
    #[serde(default)]
    pub refresh_secs: Option<u64>,
}

/// A server's config file: `node-<i>.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeManifest {
    /// This node.
    pub node: NodeSection,
    /// Round parameters (must be identical on every server).
    pub round: RoundSection,
    /// Admission policy (must be identical on every server).
    pub admission: AdmissionSection,
    /// Every server (must be identical on every server).
    pub servers: Vec<ServerEntry>,
    /// Raft tuning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft: Option<RaftSection>,
    /// Key backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSection>,
}

impl NodeManifest {
    /// The cluster-wide part.
    pub fn cluster(&self) -> ClusterManifest {
        ClusterManifest {
            round: self.round.clone(),
            admission: self.admission.clone(),
            servers: self.servers.clone(),
        }
    }
}

/// A client's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// Display name the client registers under.
    pub name: String,
    /// Key file, relative to the config file's folder unless absolute.
    pub key_file: PathBuf,
    /// Folder for local history, relative like `key_file`.
    pub data_dir: PathBuf,
    /// The cluster description, relative like `key_file`.
    pub cluster_file: PathBuf,
    /// The largest file this client sends or accepts, in bytes (default 8 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_bytes: Option<u64>,
}

/// A client's config file: `client-<j>.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientManifest {
    /// This client.
    pub client: ClientSection,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax error, missing or unknown field, or wrong type. The message from the
    /// TOML parser names the field and the line.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong and where.
        message: String,
    },
}

/// Largest config file we read; a bigger one is not a config we wrote.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// Read and parse a TOML manifest of type `T`.
pub fn read_manifest<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ManifestError> {
    let io = |source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_MANIFEST_BYTES {
        return Err(ManifestError::Parse {
            path: path.to_path_buf(),
            message: format!(
                "file is {len} bytes, larger than the {MAX_MANIFEST_BYTES}-byte limit"
            ),
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    parse_manifest(path, &text)
}

/// Parse manifest text; `path` is only used in error messages.
pub fn parse_manifest<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ManifestError> {
    toml::from_str(text).map_err(|e| ManifestError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// Resolve `p` against the folder holding the config file `config_path`.
pub fn resolve(config_path: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config_path
            .parent()
            .map(|d| d.join(p))
            .unwrap_or_else(|| p.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unknown_field_is_named() {
        let text =
            "[client]\nname='a'\nkey_file='a.key'\ndata_dir='d'\ncluster_file='c'\ncolour='red'\n";
        let err = parse_manifest::<ClientManifest>(Path::new("c.toml"), text).expect_err("unknown");
        let msg = err.to_string();
        assert!(msg.contains("colour") && msg.contains("c.toml"), "{msg}");
    }

    #[test]
    fn missing_field_is_named() {
        let text = "[client]\nname='a'\nkey_file='a.key'\ndata_dir='d'\n";
        let err = parse_manifest::<ClientManifest>(Path::new("c.toml"), text).expect_err("missing");
        assert!(err.to_string().contains("cluster_file"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn random_text_never_panics(text in ".{0,300}") {
            let _ = parse_manifest::<NodeManifest>(Path::new("x.toml"), &text);
            let _ = parse_manifest::<ClusterManifest>(Path::new("x.toml"), &text);
            let _ = parse_manifest::<ClientManifest>(Path::new("x.toml"), &text);
        }
    }
}
