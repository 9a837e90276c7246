//! Key backup from the client's side: make one, restore one on a fresh machine, and
//! ask how one stands. The decisions are in [`plan`]; this module only asks servers.
//!
//! What servers see: `backup create` is signed by the user's key (it names them, as a
//! registration does); a restore asks every server for the backup by name, once, and
//! then for one evaluation and one unlock. Neither says anything about whom the user
//! talks to, but a restore does say "this connection is NAME, restoring now".

pub mod plan;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::join_all;
use protocol::backup::book::BackupRefusal;
use protocol::backup::make::{open_blob, registration};
use protocol::backup::oprf::{blind, Unlock};
use protocol::backup::{reply_aad, sealbox, BackupName, BackupView};
use protocol::bounded::{Bytes, Fixed};
use protocol::wire::{ClientRequest, ClientResponse, RejectReason, ServerIndex};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::conn::ClusterConn;
pub use plan::{check_passphrase, Contents};

/// How long one server is waited for.
const CALL: Duration = Duration::from_secs(20);
/// Rounds of asking again when servers' shares are mid-refresh.
const RETRIES: usize = 15;
/// How long a backup waits for a cluster to settle (keys published, an epoch ended, the
/// backup shown by t + 1 servers).
const SETTLE: Duration = Duration::from_secs(60);

/// The cluster as a backup needs it: servers and threshold.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// Every server, in index order.
    pub servers: Vec<p2p::ServerAddr>,
    /// t.
    pub threshold: usize,
}

impl Cluster {
    /// From a validated client config.
    pub fn of(s: &crate::config::Settings) -> Self {
        Self {
            servers: s.servers.clone(),
            threshold: usize::from(s.params.threshold),
        }
    }

    /// From a cluster file, or a client config naming one: the cluster file's path too.
    pub fn load(path: &Path) -> anyhow::Result<(PathBuf, Self)> {
        use keys::manifest::{read_manifest, resolve, ClientManifest, ClusterManifest};
        let cluster_path = match read_manifest::<ClientManifest>(path) {
            Ok(m) => resolve(path, &m.client.cluster_file),
            Err(_) => path.to_path_buf(),
        };
        let c: ClusterManifest = read_manifest(&cluster_path)?;
        let mut servers = Vec::new();
        for (i, s) in c.servers.iter().enumerate() {
            servers.push(
                p2p::ServerAddr::parse(i as u16, &s.peer_id, &s.address)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", cluster_path.display()))?,
            );
        }
        let params =
            protocol::Params::from_manifest(&c.servers, &c.round, &c.admission).map_err(|e| {
                anyhow::anyhow!("{}: {}: {}", cluster_path.display(), e.field, e.problem)
            })?;
        Ok((
            cluster_path,
            Self {
                servers,
                threshold: usize::from(params.threshold),
            },
        ))
    }

    fn n(&self) -> usize {
        self.servers.len()
    }
}

/// A step of a backup or restore, for progress displays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Asking every server how backups stand.
    Asking,
    /// Sealing shares and sending the backup.
    Sending,
    /// Waiting for servers to count the guess and evaluate the passphrase.
    Checking,
    /// Asking servers for their shares.
    Unlocking,
    /// Decrypting the backup.
    Opening,
}

fn name_of(name: &str) -> anyhow::Result<BackupName> {
    protocol::names::check(name).map_err(|e| anyhow::anyhow!("name {name:?}: {e}"))?;
    Bytes::new(name.as_bytes().to_vec()).map_err(|_| anyhow::anyhow!("name {name:?} is too long"))
}

async fn ask_all(
    conn: &ClusterConn,
    n: usize,
    req: impl Fn(ServerIndex) -> ClientRequest,
) -> Vec<(ServerIndex, Result<ClientResponse, String>)> {
    let calls = (0..n as ServerIndex).map(|i| {
        let r = req(i);
        async move {
            let out = match tokio::time::timeout(CALL, conn.request(i, r)).await {
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "server {i} did not answer within {} s",
                    CALL.as_secs()
                )),
            };
            (i, out)
        }
    });
    join_all(calls).await
}

/// Every server's view of backups (of `name`'s if given).
pub async fn views(
    conn: &ClusterConn,
    cluster: &Cluster,
    name: Option<&str>,
) -> anyhow::Result<Vec<(ServerIndex, Result<BackupView, String>)>> {
    let name = name.map(name_of).transpose()?;
    let answers = ask_all(conn, cluster.n(), |_| ClientRequest::BackupInfo {
        name: name.clone(),
    })
    .await;
    Ok(answers
        .into_iter()
        .map(|(i, r)| {
            let v = match r {
                Ok(ClientResponse::Backup(v)) => Ok(*v),
                Ok(other) => Err(describe(&other)),
                Err(e) => Err(e),
            };
            (i, v)
        })
        .collect())
}

/// Whether asking again may help: a server busy, leaderless or catching up.
fn retryable(r: &ClientResponse) -> bool {
    matches!(
        r,
        ClientResponse::Unavailable(_)
            | ClientResponse::Rejected(RejectReason::Backup(
                protocol::backup::book::BackupRefusal::NotReady(_)
            ))
    )
}

fn describe(r: &ClientResponse) -> String {
    match r {
        ClientResponse::Rejected(why) => why.to_string(),
        ClientResponse::Unavailable(t) | ClientResponse::Malformed(t) => {
            String::from_utf8_lossy(t.as_slice()).into_owned()
        }
        other => format!("unexpected answer {other:?}"),
    }
}

/// What a finished backup is.
#[derive(Debug, Clone)]
pub struct Created {
    /// Its version.
    pub version: u64,
    /// The refresh epoch it was made in.
    pub epoch: u64,
    /// Bytes of the encrypted backup.
    pub bytes: usize,
}

/// Back up `identity` (registered as `name`) with `contacts`, under `passphrase`.
pub async fn create(
    conn: &ClusterConn,
    cluster: &Cluster,
    name: &str,
    identity: &keys::Identity,
    contacts: Option<String>,
    passphrase: &str,
    progress: &mut (dyn FnMut(Step) + Send),
) -> anyhow::Result<Created> {
    check_passphrase(passphrase, name).map_err(|e| anyhow::anyhow!(e))?;
    let bname = name_of(name)?;
    let made_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let plain = Zeroizing::new(serde_json::to_vec(&Contents::of(
        name, identity, contacts, made_at,
    ))?);
    let quorum = cluster.threshold + 1;
    let mut last = String::new();
    // A cluster just started may not have every server's key yet, and an epoch may end
    // while the backup is sealed: ask again, for up to [`SETTLE`].
    let deadline = tokio::time::Instant::now() + SETTLE;
    while tokio::time::Instant::now() < deadline {
        progress(Step::Asking);
        let vs = views(conn, cluster, None).await?;
        let ok: Vec<(u64, Vec<protocol::bounded::Key32>)> = vs
            .iter()
            .filter_map(|(_, v)| v.as_ref().ok().map(plan::keys_of))
            .collect();
        let agreed = plan::agreed(&ok, quorum).filter(|(_, keys)| keys.len() == cluster.n());
        let Some((epoch, keys)) = agreed else {
            let errs: Vec<String> = vs
                .iter()
                .filter_map(|(i, v)| v.as_ref().err().map(|e| format!("server {i}: {e}")))
                .collect();
            last = if ok.len() < quorum {
                format!("fewer than {quorum} servers answered ({})", errs.join("; "))
            } else {
                "not every server has published its backup key yet".into()
            };
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        progress(Step::Sending);
        let mut r = registration(
            &bname,
            Fixed(identity.public().sign),
            epoch,
            &keys,
            cluster.threshold,
            passphrase.as_bytes(),
            &plain,
            &mut rand::rngs::OsRng,
        )?;
        r.signature = Fixed(identity.sign(&r.signed_bytes()));
        let bytes = r.blob.len();
        let hash = r.blob_hash();
        for i in 0..cluster.n() as ServerIndex {
            match tokio::time::timeout(
                CALL,
                conn.request(i, ClientRequest::BackupCreate(Box::new(r.clone()))),
            )
            .await
            {
                Ok(Ok(ClientResponse::Accepted { .. })) => {
                    let version = confirm(conn, cluster, name, &hash).await?;
                    return Ok(Created {
                        version,
                        epoch,
                        bytes,
                    });
                }
                Ok(Ok(ClientResponse::Rejected(RejectReason::Backup(
                    protocol::backup::book::BackupRefusal::WrongEpoch { .. },
                )))) => {
                    last = "the servers moved to a new epoch while the backup was made".into();
                    break;
                }
                Ok(Ok(ClientResponse::Rejected(why))) => {
                    anyhow::bail!("the servers refused the backup: {why}")
                }
                Ok(Ok(other)) => last = format!("server {i}: {}", describe(&other)),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = format!("server {i} did not answer"),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!("the backup was not stored: {last}; try again in a minute")
}

/// Wait until `t + 1` servers hold the backup with our blob; its version.
async fn confirm(
    conn: &ClusterConn,
    cluster: &Cluster,
    name: &str,
    hash: &protocol::bounded::Key32,
) -> anyhow::Result<u64> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    while tokio::time::Instant::now() < deadline {
        let vs = views(conn, cluster, Some(name)).await?;
        let holding: Vec<u64> = vs
            .iter()
            .filter_map(|(_, v)| {
                v.as_ref()
                    .ok()?
                    .record
                    .as_ref()
                    .filter(|r| r.blob_hash == *hash)
                    .map(|r| r.version)
            })
            .collect();
        if let Some(v) = plan::agreed(&holding, cluster.threshold + 1) {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("the backup was committed but fewer than t + 1 servers show it yet")
}

/// What a restore brings back.
pub struct Restored {
    /// The contents.
    pub contents: Contents,
    /// Its version.
    pub version: u64,
}

/// What one round of asking every server left: why the servers that did not help did
/// not, and whether asking again may help.
#[derive(Default)]
struct Notes {
    notes: Vec<String>,
    retry: bool,
}

impl Notes {
    /// Server `i` answered something else than wanted.
    fn answered(&mut self, i: ServerIndex, r: &ClientResponse) {
        self.retry |= retryable(r);
        self.notes.push(format!("server {i}: {}", describe(r)));
    }

    /// A server could not be asked.
    fn unreachable(&mut self, why: String) {
        self.retry = true;
        self.notes.push(why);
    }

    /// Server `i`'s answer did not check.
    fn ignored(&mut self, i: ServerIndex, what: &str) {
        self.notes.push(format!("server {i}: {what} (ignored)"));
    }
}

/// Ask every server with `attempt` until it yields something, at most [`RETRIES`]
/// times, a second apart, and only while asking again may help; else the notes.
async fn until_enough<T, Fut>(mut attempt: impl FnMut() -> Fut) -> anyhow::Result<Result<T, String>>
where
    Fut: std::future::Future<Output = anyhow::Result<(Option<T>, Notes)>>,
{
    let mut last = String::new();
    for _ in 0..RETRIES {
        let (got, notes) = attempt().await?;
        if let Some(v) = got {
            return Ok(Ok(v));
        }
        last = notes.notes.join("; ");
        if !notes.retry {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(Err(last))
}

/// Restore `name`'s backup with `passphrase`.
pub async fn restore(
    conn: &ClusterConn,
    cluster: &Cluster,
    name: &str,
    passphrase: &str,
    progress: &mut (dyn FnMut(Step) + Send),
) -> anyhow::Result<Restored> {
    let bname = name_of(name)?;
    let t = cluster.threshold;
    progress(Step::Asking);
    let vs = views(conn, cluster, Some(name)).await?;
    let held: Vec<(ServerIndex, BackupView)> = vs
        .iter()
        .filter_map(|(i, v)| v.as_ref().ok().map(|v| (*i, v.clone())))
        .collect();
    let Some(record) = plan::record_of(&held, t) else {
        if held.len() <= t {
            let errs: Vec<String> = vs
                .iter()
                .filter_map(|(i, v)| v.as_ref().err().map(|e| format!("server {i}: {e}")))
                .collect();
            anyhow::bail!(
                "fewer than {} servers answered ({})",
                t + 1,
                errs.join("; ")
            );
        }
        anyhow::bail!(
            "no backup is stored under the name {name:?} (or it was erased after too many wrong passphrases)"
        );
    };
    let version = record.version;
    let blob = held
        .iter()
        .filter_map(|(_, v)| v.blob.as_ref())
        .find(|b| Sha256::digest(b.as_slice()).as_slice() == record.blob_hash.0)
        .ok_or_else(|| anyhow::anyhow!("no server has an intact copy of the backup"))?
        .clone();

    progress(Step::Checking);
    let bl = blind(
        name.as_bytes(),
        passphrase.as_bytes(),
        &mut rand::rngs::OsRng,
    );
    // The same blinded input each time: a server counts it as one guess.
    let evals = until_enough(|| async {
        let eval = |_| ClientRequest::BackupEval {
            name: bname.clone(),
            version,
            blinded: bl.blinded,
        };
        let mut ok = Vec::new();
        let mut notes = Notes::default();
        for (i, a) in ask_all(conn, cluster.n(), eval).await {
            match a {
                Ok(ClientResponse::BackupEvaluated {
                    eval,
                    oprf_commitments,
                    ..
                }) => ok.push((i, eval, oprf_commitments.as_slice().to_vec())),
                Ok(other) => notes.answered(i, &other),
                Err(e) => notes.unreachable(e),
            }
        }
        let (group, bad) = plan::usable_evaluations(&bl.blinded, &ok, t);
        for i in bad {
            notes.ignored(i, "its evaluation does not match its commitments");
        }
        Ok((group, notes))
    })
    .await?
    .map_err(|why| anyhow::anyhow!("fewer than {} servers checked the passphrase: {why}", t + 1))?;
    let unlock = Unlock::combine(name.as_bytes(), passphrase.as_bytes(), &bl, &evals)?;

    progress(Step::Unlocking);
    let reply = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let reply_to = Fixed(PublicKey::from(&reply).to_bytes());
    let key = until_enough(|| async {
        let ask = |i| ClientRequest::BackupUnlock {
            name: bname.clone(),
            version,
            tag: unlock.tag(i),
            reply_to,
        };
        let mut shares = Vec::new();
        let mut notes = Notes::default();
        let mut wrong: Option<u32> = None;
        for (i, a) in ask_all(conn, cluster.n(), ask).await {
            match a {
                Ok(ClientResponse::BackupShare {
                    sealed,
                    key_commitments,
                }) => {
                    match sealbox::open(&reply, &reply_aad(name.as_bytes(), version, i), &sealed.0)
                    {
                        Some(p) if p.len() == 32 => {
                            let mut s = Zeroizing::new([0u8; 32]);
                            s.copy_from_slice(&p);
                            shares.push((i, s, key_commitments.as_slice().to_vec()));
                        }
                        _ => notes.ignored(i, "its share does not open"),
                    }
                }
                Ok(ClientResponse::Rejected(RejectReason::Backup(
                    BackupRefusal::WrongPassphrase { left },
                ))) => {
                    wrong = Some(wrong.map_or(left, |w| w.min(left)));
                }
                Ok(other) => notes.answered(i, &other),
                Err(e) => notes.unreachable(e),
            }
        }
        let (k, bad) = plan::recover_key(&shares, t);
        for i in bad {
            notes.ignored(i, "its share does not match the commitments");
        }
        if let (None, Some(left)) = (&k, wrong) {
            anyhow::bail!(
                "wrong passphrase: {left} more wrong guesses and the servers erase this backup"
            );
        }
        Ok((k, notes))
    })
    .await?
    .map_err(|why| {
        anyhow::anyhow!(
            "fewer than {} servers gave back a share that checks: {why}",
            t + 1
        )
    })?;
    progress(Step::Opening);
    let plain = open_blob(&key, name.as_bytes(), blob.as_slice())?;
    let contents: Contents = serde_json::from_slice(&plain)
        .map_err(|e| anyhow::anyhow!("the backup opened but is not readable: {e}"))?;
    if contents.name != name {
        anyhow::bail!(
            "the backup under {name:?} holds the name {:?}",
            contents.name
        );
    }
    Ok(Restored { contents, version })
}

/// Write a restored identity into `folder`: `NAME.key` (0600), `NAME.toml` naming it
/// and `cluster_file`, and the contacts into `data/NAME/contacts.json` (0600). Refuses
/// to overwrite anything. Returns the config path.
pub fn write_restored(
    folder: &Path,
    cluster_file: &Path,
    restored: &Restored,
) -> anyhow::Result<PathBuf> {
    let name = &restored.contents.name;
    let identity = restored
        .contents
        .identity()
        .map_err(|e| anyhow::anyhow!(e))?;
    let cluster_file = std::fs::canonicalize(cluster_file)
        .map_err(|e| anyhow::anyhow!("cluster file {}: {e}", cluster_file.display()))?;
    std::fs::create_dir_all(folder)
        .map_err(|e| anyhow::anyhow!("folder {}: {e}", folder.display()))?;
    let config = folder.join(format!("{name}.toml"));
    let key = folder.join(format!("{name}.key"));
    for p in [&config, &key] {
        if p.exists() {
            anyhow::bail!(
                "{} already exists: restore into an empty folder",
                p.display()
            );
        }
    }
    keys::save_identity(&key, &identity, false)?;
    crate::config::write_config(
        &config,
        name,
        PathBuf::from(format!("{name}.key")),
        cluster_file,
        "restored from backup",
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    if let Some(contacts) = &restored.contents.contacts {
        let data = folder.join("data").join(name);
        crate::store::private_dir(&data)?;
        crate::store::write_private(&data.join("contacts.json"), contacts.as_bytes())?;
    }
    Ok(config)
}
