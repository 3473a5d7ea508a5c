//! The admin HTTP API of a replica: topics and records (`topics.rs`), components,
//! deployments, status and logs (`functions.rs`), health and metrics (`health.rs`).
//! Token-protected when a token is set (required off loopback). Blocking work (storage,
//! compiling) runs off the async threads.

mod functions;
mod health;
mod topics;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use self::wire::ErrorBody;
use crate::replica::Replica;

/// Largest request body: components of interpreted languages are tens of MiB.
const MAX_BODY: usize = 256 * 1024 * 1024;

#[derive(Clone)]
struct Api {
    replica: Arc<Replica>,
    token: Option<Arc<str>>,
}

/// An error answer with a status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl ApiError {
    fn bad(err: impl std::fmt::Display) -> Self {
        ApiError(StatusCode::BAD_REQUEST, err.to_string())
    }

    fn unprocessable(err: impl std::fmt::Display) -> Self {
        ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("{err:#}"))
    }

    fn not_found(err: impl std::fmt::Display) -> Self {
        ApiError(StatusCode::NOT_FOUND, format!("{err:#}"))
    }

    fn internal(err: impl std::fmt::Display) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}"))
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Runs `work` on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
}

/// The API's routes over `replica`.
pub fn router(replica: Arc<Replica>, token: Option<String>) -> Router {
    let api = Api {
        replica,
        token: token.map(Arc::from),
    };
    let v1 = Router::new()
        .route("/topics", get(topics::list).post(topics::create))
        .route(
            "/topics/{topic}/records",
            post(topics::produce).get(topics::consume),
        )
        .route("/artifacts/{sha256}", put(functions::upload))
        .route("/deployments", get(functions::list).post(functions::deploy))
        .route(
            "/deployments/{name}",
            get(functions::status).delete(functions::undeploy),
        )
        .route("/deployments/{name}/logs", get(functions::logs))
        .route("/replica", get(health::replica))
        .layer(middleware::from_fn_with_state(api.clone(), require_token));
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

/// Serves the API of `replica` on `listener` until `shutdown` completes, then stops the
/// replica.
pub async fn serve(
    listener: tokio::net::TcpListener,
    replica: Arc<Replica>,
    token: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let address: SocketAddr = listener.local_addr()?;
    tracing::info!("admin API listening on http://{address}");
    axum::serve(listener, router(replica.clone(), token))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the admin API")?;
    tracing::info!("stopping");
    tokio::task::spawn_blocking(move || replica.shutdown()).await?;
    Ok(())
}

async fn require_token(
    State(api): State<Api>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &api.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_ref()) {
            return ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong admin token: pass --token or set FNCTL_TOKEN".to_owned(),
            )
            .into_response();
        }
    }
    next.run(request).await
}
