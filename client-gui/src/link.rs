//! The engine on its own tokio runtime, and the first-run files.
//!
//! iced owns the main thread (winit requires it); the engine gets a runtime of its own so
//! that a slow redraw never delays a round submission, and the UI talks to it only
//! through [`EngineHandle`] and the event channel.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use client::config::Settings;
use client::engine::{self, EngineHandle, Event};
use client::store::{HistoryEntry, Store};
use tokio::sync::mpsc;

/// Who we are, taken from the settings before they move into the engine.
#[derive(Clone, Debug)]
pub struct Me {
    /// Name from the config.
    pub name: String,
    /// Our public keys.
    pub public: keys::PublicIdentity,
    /// Servers in the cluster.
    pub servers: usize,
    /// Tolerated faults.
    pub f: usize,
    /// Slot payload size, to count fragments before sending.
    pub slot_bytes: usize,
    /// Local data folder (history, contacts).
    pub data_dir: PathBuf,
}

impl Me {
    /// Our fingerprint.
    pub fn fingerprint(&self) -> keys::Fingerprint {
        keys::Fingerprint::of(&self.public)
    }
}

/// A running engine.
pub struct Link {
    /// Commands.
    pub handle: EngineHandle,
    /// The client config the engine was started from (a backup reads the key from it).
    config: PathBuf,
    events: Mutex<Option<mpsc::Receiver<Event>>>,
    // Dropped last: shutting the runtime down stops the engine task.
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Link")
    }
}

/// What starting from a config gives the UI.
#[derive(Debug)]
pub struct Started {
    /// The engine.
    pub link: Arc<Link>,
    /// Who we are.
    pub me: Me,
    /// Stored history, oldest first.
    pub history: Vec<(u64, HistoryEntry)>,
}

impl Link {
    /// Take the event receiver (once) to turn it into a UI stream.
    pub fn take_events(&self) -> Option<mpsc::Receiver<Event>> {
        self.events.lock().ok()?.take()
    }

    /// The client config the engine was started from.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Run `work` on the engine's runtime rather than the UI's (it may open connections
    /// of its own there); it stops when the app does.
    pub fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        drop(self.runtime.spawn(work));
    }
}

/// Load a client config, read its stored history, and start the engine on a runtime of
/// its own. Errors are sentences that name the file.
pub fn start(config: &Path) -> Result<Started, String> {
    let settings = Settings::load(config).map_err(|e| format!("{e:#}"))?;
    let me = Me {
        name: settings.name.clone(),
        public: settings.identity.public(),
        servers: settings.servers.len(),
        f: settings.params.f(),
        slot_bytes: settings.params.slot_bytes as usize,
        data_dir: settings.data_dir.clone(),
    };
    // Read history before the engine opens the store (one redb handle per file).
    let history = {
        let store = Store::open(&settings.data_dir).map_err(|e| e.to_string())?;
        store.history().map_err(|e| e.to_string())?
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("chorus-engine")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the engine runtime: {e}"))?;
    let (handle, events) = {
        let _guard = runtime.enter();
        engine::start(settings).map_err(|e| format!("{e:#}"))?
    };
    Ok(Started {
        link: Arc::new(Link {
            handle,
            config: config.to_path_buf(),
            events: Mutex::new(Some(events)),
            runtime,
        }),
        me,
        history,
    })
}

/// The folder a first-run identity is written to: the cluster file's.
pub fn first_run_folder(cluster_file: &Path) -> PathBuf {
    cluster_file
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Refuse a name that cannot name a user (and its files): too long, or with characters
/// other than letters, digits, '-', '_' and '.'.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > protocol::limits::MAX_NAME_BYTES
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(format!(
            "name {name:?}: use at most {} letters, digits, '-', '_' or '.'",
            protocol::limits::MAX_NAME_BYTES
        ));
    }
    Ok(())
}

/// Create a client config for a key: `<folder>/<name>.toml` naming the key, the cluster
/// file and `<folder>/data/<name>`. With `new_key`, also write a fresh key (0600) at
/// `<folder>/<name>.key`. Refuses to overwrite anything. Returns the config path.
pub fn create_config(
    cluster_file: &Path,
    folder: &Path,
    name: &str,
    key_file: Option<&Path>,
) -> Result<PathBuf, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("name: enter the name you want to be found by".into());
    }
    check_name(name)?;
    let cluster_file = std::fs::canonicalize(cluster_file)
        .map_err(|e| format!("cluster file {}: {e}", cluster_file.display()))?;
    keys::manifest::read_manifest::<keys::manifest::ClusterManifest>(&cluster_file)
        .map_err(|e| e.to_string())?;
    std::fs::create_dir_all(folder).map_err(|e| format!("folder {}: {e}", folder.display()))?;
    let config = folder.join(format!("{name}.toml"));
    if config.exists() {
        return Err(format!(
            "{} already exists: open it instead, or pick another name",
            config.display()
        ));
    }
    let key_path = match key_file {
        Some(k) => {
            // Check it now so the error names the key file, not the config.
            keys::load_identity(k).map_err(|e| e.to_string())?;
            std::fs::canonicalize(k).map_err(|e| format!("key file {}: {e}", k.display()))?
        }
        None => {
            let k = folder.join(format!("{name}.key"));
            let id = keys::Identity::generate(&mut rand_core::OsRng);
            keys::save_identity(&k, &id, false).map_err(|e| e.to_string())?;
            PathBuf::from(format!("{name}.key"))
        }
    };
    client::config::write_config(
        &config,
        name,
        key_path,
        cluster_file,
        "written by client-gui",
    )?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_config_writes_a_loadable_client() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = keys::generate::ClusterSpec {
            servers: 3,
            clients: 0,
            out: dir.path().to_path_buf(),
            base_port: 29_000,
            threshold: None,
            round_ms: 500,
            slots: 16,
            slot_bytes: 256,
            min_anonymity_set: 2,
            retention_rounds: 1000,
            policy: keys::manifest::Policy::Open,
            force: false,
        };
        keys::generate::write_cluster(&spec, &mut rand_core::OsRng).expect("cluster");
        let cluster = dir.path().join("cluster.toml");
        let folder = dir.path().join("me");
        let cfg = create_config(&cluster, &folder, "carol", None).expect("created");
        let s = Settings::load(&cfg).expect("loads");
        assert_eq!(s.name, "carol");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(folder.join("carol.key"))
                .expect("key")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let again = create_config(&cluster, &folder, "carol", None).expect_err("exists");
        assert!(again.contains("already exists"), "{again}");
        let bad = create_config(&cluster, &folder, "bad name!", None).expect_err("bad");
        assert!(bad.starts_with("name"), "{bad}");
        let missing =
            create_config(&folder.join("nope.toml"), &folder, "dave", None).expect_err("missing");
        assert!(missing.contains("nope.toml"), "{missing}");
    }
}
