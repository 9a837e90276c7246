//! The admin HTTP endpoint: `/metrics`, `/status`, `/healthz`, `/readyz`, and
//! `POST /probe?id=N&bytes=M`, which commits an opaque entry to the log (consensus tests
//! and benchmarks; clients have no way to do this), and `POST /fault?wrong_reveals=1`
//! (a test-only fault switch, refused unless the node runs with `CHORUS_FAULTS=1`). Bound to 127.0.0.1 by default; an
//! optional bearer token guards every route.

use std::net::SocketAddr;
use std::sync::Arc;

use actors::server::ServerHandle;
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

#[derive(Clone)]
struct AppState {
    server: Arc<ServerHandle>,
    token: Option<Arc<str>>,
}

async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &st.token {
        let ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t == &**token);
        if !ok {
            return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
        }
    }
    next.run(req).await
}

async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.server.metrics.encode(),
    )
}

async fn status(State(st): State<AppState>) -> impl IntoResponse {
    Json(st.server.status().await)
}

#[derive(serde::Deserialize)]
struct ProbeQuery {
    id: u64,
    #[serde(default)]
    bytes: usize,
}

async fn probe(State(st): State<AppState>, Query(q): Query<ProbeQuery>) -> impl IntoResponse {
    match st.server.probe(q.id, q.bytes).await {
        Ok(applied) => (StatusCode::OK, format!("committed: {applied:?}\n")),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not committed: {e}\n"),
        ),
    }
}

#[derive(serde::Deserialize)]
struct FaultQuery {
    wrong_reveals: u8,
}

async fn fault(State(st): State<AppState>, Query(q): Query<FaultQuery>) -> impl IntoResponse {
    if st.server.set_wrong_reveals(q.wrong_reveals == 1) {
        (StatusCode::OK, "fault switched\n")
    } else {
        (
            StatusCode::FORBIDDEN,
            "faults are not switchable on this node (start it with CHORUS_FAULTS=1)\n",
        )
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    if st.server.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no known leader or log not applied\n",
        )
    }
}

/// Bind the admin endpoint; returns the serve future to spawn.
pub async fn serve(
    addr: SocketAddr,
    server: Arc<ServerHandle>,
    token: Option<String>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let st = AppState {
        server,
        token: token.map(Into::into),
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/probe", post(probe))
        .route("/fault", post(fault))
        .layer(middleware::from_fn_with_state(st.clone(), auth))
        .with_state(st);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("node.admin: cannot bind {addr}: {e}"))?;
    let mut shutdown = shutdown;
    Ok(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|s| *s).await;
            })
            .await;
    })
}
