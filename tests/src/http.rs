//! A tiny HTTP/1.0 GET and POST, enough to read the admin endpoint without an HTTP client crate.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GET `path` from `127.0.0.1:port`; returns (status code, body).
pub async fn get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    get_at("127.0.0.1", port, path).await
}

/// GET `path` from `host:port`; (status code, body). Times out after 5 s.
pub async fn get_at(host: &str, port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    request(host, port, "GET", path, Duration::from_secs(5)).await
}

/// POST (no body) to `path` at `host:port`; (status code, body). Times out after `wait`.
pub async fn post_at(
    host: &str,
    port: u16,
    path: &str,
    wait: Duration,
) -> anyhow::Result<(u16, String)> {
    request(host, port, "POST", path, wait).await
}

async fn request(
    host: &str,
    port: u16,
    method: &str,
    path: &str,
    wait: Duration,
) -> anyhow::Result<(u16, String)> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect((host, port)).await?;
        s.write_all(
            format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let code = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok::<_, anyhow::Error>((code, body))
    };
    tokio::time::timeout(wait, fut).await?
}
