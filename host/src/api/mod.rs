//! The admin HTTP API of a replica: topics and records (`topics.rs`), components,
//! deployments, status and logs (`functions.rs`), functions' committed state
//! (`state.rs`), health and metrics (`health.rs`).
//! Token-protected when a token is set (required off loopback). Blocking work (storage,
//! compiling) runs off the async threads.

mod functions;
mod health;
mod state;
pub mod tls;
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
use sha2::{Digest as _, Sha256};

use self::wire::ErrorBody;
use crate::replica::Replica;

/// Largest request body: components of interpreted languages are tens of MiB.
const MAX_BODY: usize = 256 * 1024 * 1024;

#[derive(Clone)]
struct Api {
    replica: Arc<Replica>,
    token: Option<Token>,
}

/// The admin token, kept as its digest: a request's token is compared digest to digest,
/// in time that does not depend on where they differ.
#[derive(Clone)]
struct Token([u8; 32]);

impl Token {
    fn new(token: &str) -> Token {
        Token(Sha256::digest(token.as_bytes()).into())
    }

    fn admits(&self, given: Option<&str>) -> bool {
        let given = Token::new(given.unwrap_or_default());
        let differ = self
            .0
            .iter()
            .zip(given.0)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(differ) == 0
    }
}

/// How the admin API is reached and who may use it.
#[derive(Default)]
pub struct Admin {
    /// Token clients must present, when set.
    pub token: Option<String>,
    /// TLS, when set.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
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

    fn not_found(err: impl std::fmt::Display) -> Self {
        ApiError(StatusCode::NOT_FOUND, format!("{err:#}"))
    }

    fn internal(err: impl std::fmt::Display) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}"))
    }
}

type ApiResult<T> = Result<T, ApiError>;

impl Api {
    /// The answer to a failed change: the server's fault when the store cannot be
    /// written (507 for a full disk, else 503), otherwise `status`.
    fn refused(&self, err: anyhow::Error, status: StatusCode) -> ApiError {
        match self.replica.log().trouble() {
            Some(trouble) => {
                let status = if trouble.no_space {
                    StatusCode::INSUFFICIENT_STORAGE
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                ApiError(
                    status,
                    format!(
                        "the store cannot take writes now ({}): {err:#}",
                        trouble.reason
                    ),
                )
            }
            None => ApiError(status, format!("{err:#}")),
        }
    }
}

/// Runs `work` on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
}

/// The API's routes over `replica`, admitting those who present `token` when there is
/// one.
pub fn router(replica: Arc<Replica>, token: Option<&str>) -> Router {
    let api = Api {
        replica,
        token: token.map(Token::new),
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
        .route("/deployments/{name}/state", get(state::read))
        .route("/deployments/{name}/versions", get(functions::versions))
        .route("/deployments/{name}/rollback", post(functions::rollback))
        .route("/deployments/{name}/canary", post(functions::canary))
        .route("/deployments/{name}/promote", post(functions::promote))
        .route("/deployments/{name}/replay", post(functions::replay))
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
    admin: Admin,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let address: SocketAddr = listener.local_addr()?;
    let app = router(replica.clone(), admin.token.as_deref());
    match admin.tls {
        Some(acceptor) => {
            tracing::info!("admin API listening on https://{address}");
            axum::serve(tls::TlsListener::new(listener, acceptor)?, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            tracing::info!("admin API listening on http://{address}");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
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
        if !token.admits(given) {
            return ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong admin token: pass --token or set FNCTL_TOKEN".to_owned(),
            )
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn only_the_token_itself_is_admitted() {
        let token = Token::new("s3cret");
        assert!(token.admits(Some("s3cret")));
        for wrong in [
            None,
            Some(""),
            Some("s3cre"),
            Some("s3cret "),
            Some("S3CRET"),
        ] {
            assert!(!token.admits(wrong), "{wrong:?}");
        }
    }
}
