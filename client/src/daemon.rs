//! The always-online client's local socket: JSON-RPC 2.0 over a Unix socket, one JSON
//! object per line, in the manner of signal-cli's daemon.
//!
//! A client that is online only while it sends makes its submissions appear exactly
//! when its user writes; cover traffic hides senders only among clients that stay in
//! every round. So one long-running engine per identity (`chat-cli listen`, alias
//! `daemon`) takes part in every round, and everything else (`chat-cli send`, scripts,
//! bots) hands it work over this socket instead of starting an engine of its own.
//!
//! The socket is `chat.sock` in the identity's private data folder (0700), itself 0600:
//! only the user who owns the identity can use it.
//!
//! Methods (`params` is an object; errors carry a `message` naming the problem):
//! - `send {to, text, anonymous?}` → `{id}`; the message's `state` events follow on
//!   every subscribed connection.
//! - `register {name}` → `{name}`.
//! - `lookup {name}` → `{name, fingerprint}` or `null` (the local directory answers).
//! - `history {with?}` → `[entry, …]` as `chat-cli --json history` prints them.
//! - `subscribe {}` → `true`; then every engine event arrives as a notification
//!   `{"jsonrpc":"2.0","method":"event","params":{…}}` (the `--json` event shapes).
//! - `version {}` → `{version}`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc};

use crate::engine::{EngineHandle, Event};
use crate::store::Store;

/// The socket's file name in the data folder.
pub const SOCKET_FILE: &str = "chat.sock";
/// Longest request line (a full-length message with room for its JSON).
pub const MAX_LINE_BYTES: usize = 256 * 1024;
/// Events buffered per subscriber before it is told it missed some.
const SUBSCRIBER_QUEUE: usize = 1024;

/// JSON-RPC error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
/// The engine refused or failed (the message says why).
const ENGINE_ERROR: i64 = -32000;

/// Where the daemon for the identity with this data folder listens.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// Whether a daemon answers on `path`.
pub async fn running(path: &Path) -> bool {
    UnixStream::connect(path).await.is_ok()
}

/// Bind the socket (0600). A live daemon on it is an error; a stale file from one that
/// died is replaced.
pub async fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if running(path).await {
        bail!(
            "a daemon for this identity is already running (socket {}); use `chat-cli send`, \
             or stop it first",
            path.display()
        );
    }
    if path.exists() {
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", path.display()))?;
    }
    Ok(listener)
}

/// What the server side needs.
#[derive(Clone)]
pub struct Daemon {
    /// The engine.
    pub engine: EngineHandle,
    /// The local store (history).
    pub store: Store,
    /// Engine events, fanned out to subscribers.
    pub events: broadcast::Sender<Event>,
}

impl Daemon {
    /// A daemon over `engine` and `store`, with a fresh event fan-out.
    pub fn new(engine: EngineHandle, store: Store) -> Self {
        let (events, _) = broadcast::channel(SUBSCRIBER_QUEUE);
        Self {
            engine,
            store,
            events,
        }
    }

    /// Accept connections until the listener fails; each is served on its own task.
    pub async fn serve(self, listener: UnixListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let d = self.clone();
                    tokio::spawn(async move { d.connection(stream).await });
                }
                Err(e) => {
                    tracing::warn!("daemon socket: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn connection(self, stream: UnixStream) {
        let (read, mut write) = stream.into_split();
        let (out_tx, mut out_rx) = mpsc::channel::<String>(SUBSCRIBER_QUEUE);
        let writer = tokio::spawn(async move {
            while let Some(line) = out_rx.recv().await {
                if write.write_all(line.as_bytes()).await.is_err()
                    || write.write_all(b"\n").await.is_err()
                {
                    break;
                }
            }
        });
        let mut reader = BufReader::new(read);
        let mut subscribed = false;
        loop {
            let line = match read_line(&mut reader).await {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    let _ = out_tx.send(error(Value::Null, INVALID_REQUEST, &e)).await;
                    break;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            let (reply, subscribe) = self.handle(&line).await;
            if subscribe && !subscribed {
                subscribed = true;
                tokio::spawn(forward(self.events.subscribe(), out_tx.clone()));
            }
            if let Some(reply) = reply {
                if out_tx.send(reply).await.is_err() {
                    break;
                }
            }
        }
        drop(out_tx);
        let _ = writer.await;
    }

    /// One request line: the reply (none for a notification) and whether it asked to
    /// subscribe.
    async fn handle(&self, line: &str) -> (Option<String>, bool) {
        let req = match parse_request(line) {
            Ok(req) => req,
            Err(reply) => return (Some(reply), false),
        };
        let result = self.call(&req.method, &req.params).await;
        let subscribe = req.method == "subscribe" && result.is_ok();
        // A request without an id is a notification: no reply.
        let reply = req.id.map(|id| match result {
            Ok(v) => json!({"jsonrpc": "2.0", "id": id, "result": v}).to_string(),
            Err((code, message)) => error(id, code, &message),
        });
        (reply, subscribe)
    }

    async fn call(&self, method: &str, p: &Value) -> Result<Value, (i64, String)> {
        let engine = |e: String| (ENGINE_ERROR, e);
        match method {
            "send" => {
                let to = str_param(p, "to")?;
                let text = str_param(p, "text")?;
                let anonymous = p.get("anonymous").and_then(Value::as_bool).unwrap_or(false);
                let id = self
                    .engine
                    .send(to, text, anonymous)
                    .await
                    .map_err(engine)?;
                Ok(json!({ "id": id }))
            }
            "register" => {
                let name = str_param(p, "name")?;
                self.engine.register(name).await.map_err(engine)?;
                let name = protocol::names::normalise(name).unwrap_or_else(|_| name.into());
                Ok(json!({ "name": name }))
            }
            "lookup" => {
                let name = str_param(p, "name")?;
                let keys = self.engine.lookup(name).await.map_err(engine)?;
                Ok(match keys {
                    Some(k) => json!({
                        "name": protocol::names::normalise(name).unwrap_or_else(|_| name.into()),
                        "fingerprint": k.to_identity().fingerprint().to_hex(),
                    }),
                    None => Value::Null,
                })
            }
            "history" => {
                let with = p.get("with").and_then(Value::as_str);
                let all = self.store.history().map_err(|e| engine(e.to_string()))?;
                let entries: Vec<_> = all
                    .into_iter()
                    .map(|(_, e)| e)
                    .filter(|e| with.is_none_or(|w| w == e.peer))
                    .collect();
                serde_json::to_value(entries).map_err(|e| engine(e.to_string()))
            }
            "room" => {
                let req: crate::core::RoomRequest = serde_json::from_value(p.clone())
                    .map_err(|e| (INVALID_PARAMS, format!("params: {e}")))?;
                self.engine.room(req).await.map_err(engine)
            }
            "send_file" => {
                let to = str_param(p, "to")?;
                let path = std::path::Path::new(str_param(p, "path")?);
                let data = read_for_sending(path, self.engine.max_file_bytes()).map_err(engine)?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let id = self
                    .engine
                    .send_file(to, &name, data)
                    .await
                    .map_err(engine)?;
                Ok(json!({ "id": id }))
            }
            "files" => {
                let files = self.engine.files().await.map_err(engine)?;
                serde_json::to_value(files).map_err(|e| engine(e.to_string()))
            }
            "subscribe" => Ok(Value::Bool(true)),
            "version" => Ok(json!({ "version": env!("CARGO_PKG_VERSION") })),
            other => Err((METHOD_NOT_FOUND, format!("no method {other:?}"))),
        }
    }
}

/// The content of the file at `path`, if it is a readable file of at most `limit`
/// bytes: refused before it is read (and before anything is sent) when it is larger.
pub fn read_for_sending(path: &std::path::Path, limit: u64) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a file"));
    }
    if meta.len() > limit {
        return Err(format!(
            "{shown} is {}; the largest file is {} (client.max_file_bytes = {limit})",
            crate::core::size_text(meta.len()),
            crate::core::size_text(limit)
        ));
    }
    std::fs::read(path).map_err(|e| format!("{shown}: {e}"))
}

/// A request line, parsed.
#[derive(Debug, PartialEq)]
pub struct Request {
    /// Its id; `None` for a notification (no reply).
    pub id: Option<Value>,
    /// The method.
    pub method: String,
    /// Its params (`{}` when absent).
    pub params: Value,
}

/// Parse one request line, or the error reply that names what is wrong with it.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let req: Value =
        serde_json::from_str(line).map_err(|e| error(Value::Null, PARSE_ERROR, &e.to_string()))?;
    let id = req.get("id").cloned();
    let Some(method) = req.get("method").and_then(Value::as_str) else {
        let reply_id = id.unwrap_or(Value::Null);
        let e = "a request needs a string \"method\"";
        return Err(error(reply_id, INVALID_REQUEST, e));
    };
    Ok(Request {
        id,
        method: method.to_string(),
        params: req.get("params").cloned().unwrap_or_else(|| json!({})),
    })
}

/// What one line from the daemon is: a reply, an event, or neither (`None`: another
/// notification, skipped).
pub fn parse_incoming(line: &str) -> anyhow::Result<Option<Incoming>> {
    let v: Value = serde_json::from_str(line).context("daemon sent bad JSON")?;
    if let Some(id) = v.get("id").and_then(Value::as_u64) {
        let result = match v.get("error") {
            Some(e) => Err(e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_string()),
            None => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
        };
        return Ok(Some(Incoming::Reply { id, result }));
    }
    if v.get("method").and_then(Value::as_str) == Some("event") {
        if let Some(p) = v.get("params") {
            return Ok(Some(Incoming::Event(p.clone())));
        }
    }
    Ok(None)
}

fn str_param<'a>(p: &'a Value, name: &str) -> Result<&'a str, (i64, String)> {
    p.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| (INVALID_PARAMS, format!("params.{name} must be a string")))
}

fn error(id: Value, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

/// Forward engine events to one subscriber until it goes away.
async fn forward(mut events: broadcast::Receiver<Event>, out: mpsc::Sender<String>) {
    loop {
        let note = match events.recv().await {
            Ok(ev) => json!({"jsonrpc": "2.0", "method": "event", "params": ev}),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                json!({"jsonrpc": "2.0", "method": "lagged", "params": {"missed": missed}})
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        if out.send(note.to_string()).await.is_err() {
            break;
        }
    }
}

/// Read one line of at most [`MAX_LINE_BYTES`]; `None` at the end of the stream.
pub async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> Result<Option<String>, String> {
    let mut buf = Vec::new();
    let limit = MAX_LINE_BYTES as u64 + 1;
    let n = (&mut *reader)
        .take(limit)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() > MAX_LINE_BYTES {
        return Err(format!("line longer than {MAX_LINE_BYTES} bytes"));
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| "line is not UTF-8".into())
}

/// A connection to a running daemon, for `chat-cli` and scripts written in Rust.
pub struct DaemonClient {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
    next_id: u64,
}

/// What the daemon sent: a reply to a call, or an event notification.
#[derive(Debug)]
pub enum Incoming {
    /// The reply to call `id`.
    Reply {
        /// The call.
        id: u64,
        /// Its result, or the error message.
        result: Result<Value, String>,
    },
    /// An engine event (JSON as `--json` prints it).
    Event(Value),
}

impl DaemonClient {
    /// Connect to the daemon on `path`.
    pub async fn connect(path: &Path) -> std::io::Result<Self> {
        let (read, writer) = UnixStream::connect(path).await?.into_split();
        Ok(Self {
            reader: BufReader::new(read),
            writer,
            next_id: 0,
        })
    }

    /// Send a call; returns its id (the reply comes through [`Self::next`]).
    pub async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<u64> {
        self.next_id += 1;
        let req = json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        self.writer.write_all(req.to_string().as_bytes()).await?;
        self.writer.write_all(b"\n").await?;
        Ok(self.next_id)
    }

    /// The next reply or notification; `None` when the daemon closed the connection.
    pub async fn next(&mut self) -> anyhow::Result<Option<Incoming>> {
        loop {
            let Some(line) = read_line(&mut self.reader)
                .await
                .map_err(anyhow::Error::msg)?
            else {
                return Ok(None);
            };
            if let Some(incoming) = parse_incoming(&line)? {
                return Ok(Some(incoming));
            }
        }
    }

    /// Call and wait for the reply (notifications meanwhile are dropped).
    pub async fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.call(method, params).await?;
        loop {
            match self.next().await? {
                Some(Incoming::Reply { id: i, result }) if i == id => {
                    return result.map_err(anyhow::Error::msg)
                }
                Some(_) => {}
                None => bail!("the daemon closed the connection"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

    use proptest::prelude::*;

    use super::*;

    fn read_all(bytes: &[u8]) -> Vec<Result<Option<String>, String>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut r = BufReader::new(bytes);
            let mut out = Vec::new();
            loop {
                let line = read_line(&mut r).await;
                let stop = !matches!(line, Ok(Some(_)));
                out.push(line);
                if stop {
                    return out;
                }
            }
        })
    }

    #[test]
    fn requests_parse_and_bad_ones_are_answered_by_code() {
        let r = parse_request(r#"{"jsonrpc":"2.0","id":3,"method":"send","params":{"to":"bob"}}"#)
            .unwrap();
        assert_eq!(r.id, Some(json!(3)));
        assert_eq!(r.method, "send");
        assert_eq!(r.params["to"], "bob");
        let r = parse_request(r#"{"method":"subscribe"}"#).unwrap();
        assert_eq!((r.id, r.params), (None, json!({})));
        let e: Value = serde_json::from_str(&parse_request("nope").unwrap_err()).unwrap();
        assert_eq!(e["error"]["code"], PARSE_ERROR);
        let e: Value = serde_json::from_str(&parse_request(r#"{"id":9}"#).unwrap_err()).unwrap();
        assert_eq!(
            (e["id"].clone(), e["error"]["code"].clone()),
            (json!(9), json!(INVALID_REQUEST))
        );
    }

    #[test]
    fn a_line_over_the_limit_is_refused_and_shorter_ones_pass() {
        let mut long = vec![b'a'; MAX_LINE_BYTES + 1];
        long.push(b'\n');
        assert!(read_all(&long)[0].is_err());
        let mut ok = vec![b'a'; MAX_LINE_BYTES - 1];
        ok.push(b'\n');
        assert_eq!(
            read_all(&ok)[0]
                .as_ref()
                .map(|l| l.as_ref().map(String::len)),
            Ok(Some(MAX_LINE_BYTES))
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for line in read_all(&bytes).into_iter().flatten().flatten() {
                prop_assert!(line.len() <= MAX_LINE_BYTES);
                let _ = parse_request(&line);
                let _ = parse_incoming(&line);
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_request(&text);
            let _ = parse_incoming(&text);
        }

        #[test]
        fn any_request_a_client_writes_parses_back(id in any::<u64>(), method in "[a-z]{1,12}", to in ".{0,40}") {
            let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {"to": to}}).to_string();
            let r = parse_request(&line).unwrap();
            prop_assert_eq!(r.id, Some(json!(id)));
            prop_assert_eq!(r.method, method);
            prop_assert_eq!(r.params["to"].as_str(), Some(to.as_str()));
        }
    }
}
