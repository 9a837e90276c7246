//! Generating a whole local cluster: keys plus ready-to-run configs (used by `keygen`).

use std::path::{Path, PathBuf};

use rand_core::{CryptoRng, RngCore};

use crate::manifest::{
    AdmissionSection, ClientManifest, ClientSection, ClusterManifest, NodeManifest, NodeSection,
    Policy, RoundSection, ServerEntry,
};
use crate::{save_identity, Identity, KeyFileError};

/// What to generate.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// `n`, the number of servers.
    pub servers: u32,
    /// Number of client identities.
    pub clients: u32,
    /// Output folder.
    pub out: PathBuf,
    /// First libp2p port; server `i` listens on `base_port + i`, its admin endpoint on
    /// `base_port + 100 + i`.
    pub base_port: u16,
    /// `t`, or `None` for the default `max(1, n - f - 1)` with `f = (n-1)/2`.
    pub threshold: Option<u32>,
    /// Round parameters other than the threshold.
    pub round_ms: u64,
    /// Slots per round.
    pub slots: u32,
    /// Bytes per slot.
    pub slot_bytes: u32,
    /// `k`.
    pub min_anonymity_set: u32,
    /// Outputs kept for catch-up.
    pub retention_rounds: u64,
    /// Admission policy.
    pub policy: Policy,
    /// Replace existing key files.
    pub force: bool,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Parameters that cannot form a working cluster.
    #[error("invalid parameters: {0}")]
    Invalid(String),
    /// A key file problem (including refusing to overwrite).
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// Writing a config failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// TOML serialization failed (a bug).
    #[error("serializing {path}: {message}")]
    Serialize {
        /// The file.
        path: PathBuf,
        /// The serializer's message.
        message: String,
    },
}

/// The default threshold for `n` servers: the largest `t` with `t <= n - f - 1` (t+1
/// servers reveal while f are down) and `t <= f` (t servers cannot vouch for an output
/// alone, which takes f+1), where `f = (n-1)/2`; at least 1. For odd `n` that is `f`;
/// for even `n` it is one less than `n - f - 1`.
pub fn default_threshold(n: u32) -> u32 {
    let f = n.saturating_sub(1) / 2;
    n.saturating_sub(f + 1).min(f.max(1)).max(1)
}

/// What keygen tells the operator about an even server count, if anything.
pub fn even_servers_note(n: u32) -> Option<String> {
    (n % 2 == 0 && n >= 4).then(|| {
        let f = (n - 1) / 2;
        format!(
            "note: {n} servers is an even count: it tolerates f = {f} faults, like {} servers, \
             and t = {} (not {}) so that t colluding servers cannot vouch for an output alone \
             (that takes f+1 = {})",
            n - 1,
            default_threshold(n),
            n - f - 1,
            f + 1
        )
    })
}

/// The servers' shared validity key, beside their key files.
pub const VALIDITY_KEY_FILE: &str = "validity.key";

/// Files written, for the summary keygen prints.
#[derive(Debug, Default)]
pub struct Written {
    /// Every path written.
    pub files: Vec<PathBuf>,
}

fn write_text(path: &Path, text: &str, written: &mut Written) -> Result<(), GenerateError> {
    std::fs::write(path, text).map_err(|source| GenerateError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    written.files.push(path.to_path_buf());
    Ok(())
}

fn to_toml<T: serde::Serialize>(path: &Path, value: &T) -> Result<String, GenerateError> {
    toml::to_string_pretty(value).map_err(|e| GenerateError::Serialize {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Generate keys and configs for `spec`.
pub fn write_cluster<R: RngCore + CryptoRng>(
    spec: &ClusterSpec,
    rng: &mut R,
) -> Result<Written, GenerateError> {
    let n = spec.servers;
    if !(2..=32).contains(&n) {
        return Err(GenerateError::Invalid(format!(
            "--servers must be 2..=32 (hiding needs t >= 1 and t+1 servers), got {n}"
        )));
    }
    let t = spec.threshold.unwrap_or_else(|| default_threshold(n));
    let f = (n - 1) / 2;
    let max_t = default_threshold(n);
    if t < 1 || t > max_t {
        return Err(GenerateError::Invalid(format!(
            "--threshold {t} must satisfy 1 <= t <= {max_t} for n = {n} (f = {f}): t+1 live \
             servers must remain when f are down (t <= n - f - 1 = {}), and t colluding \
             servers must not be able to vouch for an output alone (t <= f)",
            n - f - 1
        )));
    }
    if u32::from(spec.base_port) + 100 + n > u32::from(u16::MAX) {
        return Err(GenerateError::Invalid(format!(
            "--base-port {} leaves no room for {n} libp2p and admin ports",
            spec.base_port
        )));
    }
    std::fs::create_dir_all(&spec.out).map_err(|source| GenerateError::Io {
        path: spec.out.clone(),
        source,
    })?;
    // Check every key path before writing any, so a refusal leaves nothing half-done.
    let server_key = |i: u32| spec.out.join(format!("node-{i}.key"));
    let client_key = |j: u32| spec.out.join(format!("client-{j}.key"));
    let validity_key = spec.out.join(VALIDITY_KEY_FILE);
    if !spec.force {
        let all = (0..n)
            .map(server_key)
            .chain((1..=spec.clients).map(client_key))
            .chain(std::iter::once(validity_key.clone()));
        for path in all {
            if path.exists() {
                return Err(KeyFileError::Exists { path }.into());
            }
        }
    }

    let mut written = Written::default();
    let mut servers = Vec::new();
    for i in 0..n {
        let id = Identity::generate(rng);
        let path = server_key(i);
        save_identity(&path, &id, spec.force)?;
        written.files.push(path);
        let public = id.public();
        servers.push(ServerEntry {
            id: i,
            peer_id: crate::peer_id_string(&public.sign),
            address: format!("/ip4/127.0.0.1/tcp/{}", u32::from(spec.base_port) + i),
            ed25519: hex::encode(public.sign),
            x25519: hex::encode(public.dh),
        });
    }
    // One key all servers share and no client holds: the query randomness of validity
    // proofs. Copy it to every server with its own key file.
    let mut shared = zeroize::Zeroizing::new([0u8; 32]);
    rng.fill_bytes(shared.as_mut());
    crate::keyfile::save_shared_secret(&validity_key, &shared, spec.force)?;
    written.files.push(validity_key);
    let mut client_keys = Vec::new();
    for j in 1..=spec.clients {
        let id = Identity::generate(rng);
        let path = client_key(j);
        save_identity(&path, &id, spec.force)?;
        written.files.push(path);
        client_keys.push(hex::encode(id.public().sign));
    }

    let cluster = ClusterManifest {
        round: RoundSection {
            threshold: t,
            min_anonymity_set: spec.min_anonymity_set,
            round_ms: spec.round_ms,
            slots: spec.slots,
            slot_bytes: spec.slot_bytes,
            retention_rounds: spec.retention_rounds,
            retention_days: None,
            reserve_cells: None,
            exclusions_before_cooling: None,
            cooling_rounds: None,
            file_slots: None,
            file_slot_bytes: None,
        },
        admission: AdmissionSection {
            policy: spec.policy,
            clients: if spec.policy == Policy::Listed {
                client_keys
            } else {
                Vec::new()
            },
            max_registrations_per_round: None,
            max_registrations: None,
        },
        servers,
    };
    let cluster_path = spec.out.join("cluster.toml");
    let text = to_toml(&cluster_path, &cluster)?;
    write_text(
        &cluster_path,
        &format!("# Public description of a Chorus cluster (written by keygen).\n{text}"),
        &mut written,
    )?;

    for i in 0..n {
        let node = NodeManifest {
            node: NodeSection {
                id: i,
                key_file: PathBuf::from(format!("node-{i}.key")),
                validity_key_file: PathBuf::from(VALIDITY_KEY_FILE),
                listen: format!("/ip4/127.0.0.1/tcp/{}", u32::from(spec.base_port) + i),
                data_dir: PathBuf::from(format!("data/node-{i}")),
                admin: format!("127.0.0.1:{}", u32::from(spec.base_port) + 100 + i),
                admin_token: None,
            },
            round: cluster.round.clone(),
            admission: cluster.admission.clone(),
            servers: cluster.servers.clone(),
            raft: None,
            backup: None,
        };
        let path = spec.out.join(format!("node-{i}.toml"));
        let text = to_toml(&path, &node)?;
        write_text(
            &path,
            &format!(
                "# Chorus server {i} (written by keygen). Run: node --config {}\n{text}",
                path.display()
            ),
            &mut written,
        )?;
    }
    for j in 1..=spec.clients {
        let client = ClientManifest {
            client: ClientSection {
                name: format!("client-{j}"),
                key_file: PathBuf::from(format!("client-{j}.key")),
                data_dir: PathBuf::from(format!("data/client-{j}")),
                cluster_file: PathBuf::from("cluster.toml"),
                max_file_bytes: None,
            },
        };
        let path = spec.out.join(format!("client-{j}.toml"));
        let text = to_toml(&path, &client)?;
        write_text(
            &path,
            &format!("# Chorus client {j} (written by keygen).\n{text}"),
            &mut written,
        )?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::read_manifest;

    fn spec(out: &Path) -> ClusterSpec {
        ClusterSpec {
            servers: 3,
            clients: 2,
            out: out.to_path_buf(),
            base_port: 7100,
            threshold: None,
            round_ms: 1000,
            slots: 16,
            slot_bytes: 512,
            min_anonymity_set: 3,
            retention_rounds: 1000,
            policy: Policy::Open,
            force: false,
        }
    }

    #[test]
    fn default_thresholds_match_the_design() {
        assert_eq!(default_threshold(3), 1);
        assert_eq!(default_threshold(5), 2);
        assert_eq!(default_threshold(7), 3);
        // Even n: t stays below f+1 (n = 4 has f = 1, so t = 1, not n - f - 1 = 2).
        assert_eq!(default_threshold(2), 1);
        assert_eq!(default_threshold(4), 1);
        assert_eq!(default_threshold(6), 2);
        assert!(even_servers_note(4).is_some_and(|n| n.contains("t = 1")));
        assert!(even_servers_note(5).is_none());
    }

    #[test]
    fn writes_configs_that_parse_back() {
        let dir = tempfile::tempdir().expect("tmp");
        write_cluster(&spec(dir.path()), &mut rand_core::OsRng).expect("write");
        let node: NodeManifest = read_manifest(&dir.path().join("node-1.toml")).expect("node");
        assert_eq!(node.node.id, 1);
        assert_eq!(node.servers.len(), 3);
        assert_eq!(node.round.threshold, 1);
        let key = crate::load_identity(&dir.path().join("node-1.key")).expect("key");
        assert_eq!(node.servers[1].ed25519, hex::encode(key.public().sign));
        let _: ClientManifest = read_manifest(&dir.path().join("client-2.toml")).expect("client");
        let _: ClusterManifest = read_manifest(&dir.path().join("cluster.toml")).expect("cluster");
    }

    #[test]
    fn second_run_without_force_fails_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        write_cluster(&spec(dir.path()), &mut rand_core::OsRng).expect("write");
        let before = std::fs::read(dir.path().join("node-0.key")).expect("read");
        let err = write_cluster(&spec(dir.path()), &mut rand_core::OsRng).expect_err("refuse");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(
            before,
            std::fs::read(dir.path().join("node-0.key")).expect("read")
        );
    }

    #[test]
    fn threshold_too_high_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = spec(dir.path());
        s.threshold = Some(2);
        let err = write_cluster(&s, &mut rand_core::OsRng).expect_err("t=2 of 3");
        assert!(err.to_string().contains("--threshold"), "{err}");
    }
}
