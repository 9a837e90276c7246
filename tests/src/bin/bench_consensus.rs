//! Load generator for the consensus benchmark: committed writes against a Chorus cluster
//! (opaque probes through each node's admin endpoint, `POST /probe`) or an etcd cluster (puts through its
//! HTTP/JSON gateway), with a fixed payload and a fixed number of writers in flight.
//! Prints one JSON line: ops, seconds, throughput and latency percentiles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use clap::{Parser, ValueEnum};
use tests::stats::percentile;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Target {
    Chorus,
    Etcd,
}

/// Committed-write load generator (Chorus or etcd).
#[derive(Parser, Debug)]
struct Args {
    /// What to load.
    #[arg(long, value_enum)]
    target: Target,
    /// Chorus: the cluster.toml written by keygen.
    #[arg(long)]
    cluster: Option<std::path::PathBuf>,
    /// etcd: comma-separated host:port client endpoints.
    #[arg(long)]
    endpoints: Option<String>,
    /// Bytes per write.
    #[arg(long, default_value_t = 256)]
    payload: usize,
    /// Writers in flight.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Measurement time in seconds (after a 1 s warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

/// A minimal HTTP/1.1 keep-alive client for etcd's JSON gateway.
struct Http {
    stream: BufReader<tokio::net::TcpStream>,
    host: String,
}

impl Http {
    async fn connect(host: &str) -> anyhow::Result<Self> {
        let s = tokio::net::TcpStream::connect(host)
            .await
            .with_context(|| format!("connecting to etcd at {host}"))?;
        s.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(s),
            host: host.to_string(),
        })
    }

    async fn post(&mut self, path: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let code: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let (mut len, mut chunked) = (None, false);
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse::<usize>().ok();
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0u8; n + 2];
                self.stream.read_exact(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = len {
            out.resize(n, 0);
            self.stream.read_exact(&mut out).await?;
        }
        Ok((code, out))
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stop_at = Instant::now() + Duration::from_secs(1 + args.seconds);
    let measure_from = Instant::now() + Duration::from_secs(1);
    let next_id = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    match args.target {
        Target::Chorus => {
            let path = args
                .cluster
                .clone()
                .context("--cluster is required for --target chorus")?;
            let admins = admin_addresses(&path)?;
            let n = admins.len();
            for w in 0..args.concurrency {
                let (admin, next_id, payload) =
                    (admins[w % n].clone(), next_id.clone(), args.payload);
                workers.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let Ok(mut http) = Http::connect(&admin).await else {
                        eprintln!("cannot reach the admin endpoint {admin}");
                        return lat;
                    };
                    while Instant::now() < stop_at {
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        let t = Instant::now();
                        match http
                            .post(&format!("/probe?id={id}&bytes={payload}"), b"")
                            .await
                        {
                            Ok((200, _)) => {
                                if t >= measure_from && Instant::now() <= stop_at {
                                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                                }
                            }
                            Ok((code, body)) => eprintln!(
                                "write refused: {code} {}",
                                String::from_utf8_lossy(&body)
                            ),
                            Err(e) => {
                                eprintln!("write failed: {e}");
                                match Http::connect(&admin).await {
                                    Ok(h) => http = h,
                                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                                }
                            }
                        }
                    }
                    lat
                }));
            }
        }
        Target::Etcd => {
            let eps: Vec<String> = args
                .endpoints
                .clone()
                .context("--endpoints is required for --target etcd")?
                .split(',')
                .map(str::to_string)
                .collect();
            for w in 0..args.concurrency {
                let ep = eps[w % eps.len()].clone();
                let (next_id, payload) = (next_id.clone(), args.payload);
                let b64 = base64::engine::general_purpose::STANDARD;
                let value = b64.encode(vec![7u8; payload]);
                workers.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let Ok(mut http) = Http::connect(&ep).await else {
                        eprintln!("cannot connect to {ep}");
                        return lat;
                    };
                    while Instant::now() < stop_at {
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        let key = b64.encode(format!("bench/{}", id % 100_000));
                        let body = format!("{{\"key\":\"{key}\",\"value\":\"{value}\"}}");
                        let t = Instant::now();
                        match http.post("/v3/kv/put", body.as_bytes()).await {
                            Ok((200, _)) => {
                                if t >= measure_from && Instant::now() <= stop_at {
                                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                                }
                            }
                            Ok((code, b)) => {
                                eprintln!("etcd answered {code}: {}", String::from_utf8_lossy(&b))
                            }
                            Err(e) => {
                                eprintln!("etcd request failed: {e}");
                                return lat;
                            }
                        }
                    }
                    lat
                }));
            }
        }
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap_or_default());
    }
    all.sort_by(f64::total_cmp);
    let secs = args.seconds as f64;
    println!(
        "{}",
        serde_json::json!({
            "target": format!("{:?}", args.target).to_lowercase(),
            "payload": args.payload,
            "concurrency": args.concurrency,
            "ops": all.len(),
            "seconds": secs,
            "ops_per_sec": all.len() as f64 / secs,
            "p50_ms": percentile(&all, 0.50).unwrap_or(f64::NAN),
            "p99_ms": percentile(&all, 0.99).unwrap_or(f64::NAN),
        })
    );
    Ok(())
}

/// The admin `host:port` of every node, from the `node-<i>.toml` files keygen wrote beside
/// `cluster.toml`.
fn admin_addresses(cluster: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let dir = cluster.parent().unwrap_or(std::path::Path::new("."));
    let mut out = Vec::new();
    for i in 0.. {
        let path = dir.join(format!("node-{i}.toml"));
        if !path.exists() {
            break;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: toml::Value =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let admin = value
            .get("node")
            .and_then(|n| n.get("admin"))
            .and_then(|a| a.as_str())
            .with_context(|| format!("{}: no node.admin", path.display()))?;
        out.push(admin.to_string());
    }
    anyhow::ensure!(
        !out.is_empty(),
        "no node-<i>.toml beside {}",
        cluster.display()
    );
    Ok(out)
}
