//! Client config (`client-<j>.toml` + `cluster.toml`) → validated settings.

use std::path::{Path, PathBuf};

use keys::manifest::{read_manifest, resolve, ClientManifest, ClusterManifest};
use protocol::Params;

use p2p::ServerAddr;

/// Everything the engine needs.
pub struct Settings {
    /// Display name.
    pub name: String,
    /// Our identity.
    pub identity: keys::Identity,
    /// Local history folder.
    pub data_dir: PathBuf,
    /// Round parameters (as the servers use them).
    pub params: Params,
    /// Round length.
    pub round_ms: u64,
    /// Where the servers are.
    pub servers: Vec<ServerAddr>,
    /// Servers' x25519 keys (shares are sealed to them), by index.
    pub server_dh: Vec<x25519_dalek::PublicKey>,
    /// Servers' ed25519 keys (they sign outputs), by index.
    pub server_sign: Vec<[u8; 32]>,
    /// The largest file sent or accepted (`client.max_file_bytes`, default 8 MiB).
    pub max_file_bytes: u64,
}

impl Settings {
    /// Outputs are accepted once this many distinct servers vouch for the same hash.
    pub fn vouches_needed(&self) -> usize {
        self.params.f() + 1
    }

    /// Load from a client config file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let m: ClientManifest = read_manifest(path)?;
        let cluster_path = resolve(path, &m.client.cluster_file);
        let c: ClusterManifest = read_manifest(&cluster_path)?;
        let identity = keys::load_identity(&resolve(path, &m.client.key_file))?;
        let bad = |field: String, why: &str| {
            anyhow::anyhow!("{}: {field}: {why}", cluster_path.display())
        };
        let mut servers = Vec::new();
        let mut server_dh = Vec::new();
        let mut server_sign = Vec::new();
        for (i, s) in c.servers.iter().enumerate() {
            servers.push(
                ServerAddr::parse(i as u16, &s.peer_id, &s.address)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", cluster_path.display()))?,
            );
            let dh = keys::identity::parse_hex32(&s.x25519)
                .map_err(|_| bad(format!("servers[{i}].x25519"), "must be 64 hex characters"))?;
            let sign = keys::identity::parse_hex32(&s.ed25519)
                .map_err(|_| bad(format!("servers[{i}].ed25519"), "must be 64 hex characters"))?;
            server_dh.push(x25519_dalek::PublicKey::from(dh));
            server_sign.push(sign);
        }
        let params = Params::from_manifest(&c.servers, &c.round, &c.admission)
            .map_err(|e| bad(e.field, &e.problem))?;
        let r = &c.round;
        if m.client.max_file_bytes == Some(0) {
            anyhow::bail!(
                "{}: client.max_file_bytes: must be at least 1 (leave it out for 8 MiB)",
                path.display()
            );
        }
        Ok(Self {
            name: m.client.name.clone(),
            identity,
            data_dir: resolve(path, &m.client.data_dir),
            params,
            round_ms: r.round_ms,
            servers,
            server_dh,
            server_sign,
            max_file_bytes: m
                .client
                .max_file_bytes
                .unwrap_or(crate::core::DEFAULT_MAX_FILE_BYTES),
        })
    }
}

/// Write the client config `config` for `name`: its key file (relative to the config's
/// folder unless absolute), its data folder `data/<name>` and the cluster file.
/// `written_by` goes in the header comment.
pub fn write_config(
    config: &Path,
    name: &str,
    key_file: PathBuf,
    cluster_file: PathBuf,
    written_by: &str,
) -> Result<(), String> {
    let manifest = ClientManifest {
        client: keys::manifest::ClientSection {
            name: name.to_string(),
            key_file,
            data_dir: PathBuf::from(format!("data/{name}")),
            cluster_file,
            max_file_bytes: None,
        },
    };
    let text = toml::to_string(&manifest).map_err(|e| e.to_string())?;
    std::fs::write(
        config,
        format!("# Chorus client {name} ({written_by}).\n{text}"),
    )
    .map_err(|e| format!("{}: {e}", config.display()))
}
