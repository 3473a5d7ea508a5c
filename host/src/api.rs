//! The admin HTTP API of a replica: topics, records, components, deployments, status,
//! health and metrics. Token-protected when a token is set (required off loopback).
//! Blocking work (storage, compiling) runs off the async threads.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::embedded::TopicError;
use crate::logbook::LogEntry;
use crate::registry::{DeploySpec, Deployment};
use crate::replica::{FunctionStatus, Replica, now_ms};
use crate::wire::{
    ConsumeResponse, ConsumedRecord, CreateTopic, ErrorBody, ProduceRequest, ProduceResponse,
    TopicInfo, UploadResponse,
};

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
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl ApiError {
    fn bad(err: impl std::fmt::Display) -> Self {
        ApiError(StatusCode::BAD_REQUEST, err.to_string())
    }

    fn unprocessable(err: anyhow::Error) -> Self {
        ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("{err:#}"))
    }

    fn not_found(err: anyhow::Error) -> Self {
        ApiError(StatusCode::NOT_FOUND, format!("{err:#}"))
    }

    fn internal(err: impl std::fmt::Display) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
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
        .route("/topics", get(list_topics).post(create_topic))
        .route("/topics/{topic}/records", post(produce).get(consume))
        .route("/artifacts/{sha256}", put(upload))
        .route("/deployments", get(list_deployments).post(deploy))
        .route("/deployments/{name}", get(status).delete(undeploy))
        .route("/deployments/{name}/logs", get(logs))
        .route("/replica", get(replica_info))
        .layer(middleware::from_fn_with_state(api.clone(), require_token));
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
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

/// Who answers, and which replicas it knows.
#[derive(serde::Serialize)]
struct ReplicaInfo {
    id: String,
    log: &'static str,
    replicas: Vec<String>,
}

async fn replica_info(State(api): State<Api>) -> Json<ReplicaInfo> {
    Json(ReplicaInfo {
        id: api.replica.id.clone(),
        log: if api.replica.kafka().is_some() {
            "kafka"
        } else {
            "embedded"
        },
        replicas: api.replica.replicas(),
    })
}

async fn ready(State(api): State<Api>) -> impl IntoResponse {
    if api.replica.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn metrics(State(api): State<Api>) -> ApiResult<impl IntoResponse> {
    let text = blocking(move || {
        api.replica.refresh_gauges();
        Ok(api.replica.metrics.encode())
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}

#[derive(Deserialize)]
struct LogsQuery {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_max")]
    max: usize,
}

async fn logs(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(query): Query<LogsQuery>,
) -> ApiResult<Json<Vec<LogEntry>>> {
    if api.replica.registry.history(&name).is_none() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no function named {name:?} was ever deployed"),
        ));
    }
    Ok(Json(api.replica.logs.after(
        &name,
        query.after,
        query.max.clamp(1, 10_000),
    )))
}

/// The embedded log, or an error saying where the topics are instead.
fn embedded(api: &Api) -> ApiResult<&crate::embedded::EmbeddedLog> {
    match api.replica.kafka() {
        Some(kafka) => Err(ApiError::bad(format!(
            "this replica runs on Kafka at {0}: use `fnctl topics|produce|consume --brokers {0}`",
            kafka.options.brokers
        ))),
        None => Ok(&api.replica.log),
    }
}

async fn list_topics(State(api): State<Api>) -> ApiResult<Json<Vec<TopicInfo>>> {
    blocking(move || {
        let log = embedded(&api)?;
        let mut topics = Vec::new();
        for meta in log.topics() {
            let extents = log.extents(&meta).map_err(ApiError::internal)?;
            topics.push(TopicInfo {
                name: meta.name,
                partitions: meta.partitions,
                retention_ms: meta.retention_ms,
                retention_bytes: meta.retention_bytes,
                records: extents.iter().map(|e| e.end - e.start).sum(),
                bytes: extents.iter().map(|e| e.bytes).sum(),
                offsets: extents.iter().map(|e| (e.start, e.end)).collect(),
            });
        }
        Ok(Json(topics))
    })
    .await
}

async fn create_topic(
    State(api): State<Api>,
    Json(request): Json<CreateTopic>,
) -> ApiResult<(StatusCode, Json<TopicInfo>)> {
    blocking(move || {
        let log = embedded(&api)?;
        let created = log.create_topic(
            &request.name,
            request.partitions,
            request.retention_ms,
            request.retention_bytes,
        );
        let (status, meta) = match created {
            Ok(meta) => (StatusCode::CREATED, meta),
            Err(TopicError::Exists(name)) if request.if_not_exists => (
                StatusCode::OK,
                log.require_topic(&name).map_err(ApiError::internal)?,
            ),
            Err(err @ TopicError::Exists(_)) => {
                return Err(ApiError(StatusCode::CONFLICT, err.to_string()));
            }
            Err(err) => return Err(ApiError::bad(err)),
        };
        Ok((
            status,
            Json(TopicInfo {
                name: meta.name,
                partitions: meta.partitions,
                retention_ms: meta.retention_ms,
                retention_bytes: meta.retention_bytes,
                offsets: Vec::new(),
                records: 0,
                bytes: 0,
            }),
        ))
    })
    .await
}

async fn produce(
    State(api): State<Api>,
    Path(topic): Path<String>,
    Json(request): Json<ProduceRequest>,
) -> ApiResult<Json<ProduceResponse>> {
    blocking(move || {
        let now = now_ms();
        let records = request
            .records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.into_record(now)
                    .map_err(|e| ApiError::bad(format!("record {i}: {e}")))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let log = embedded(&api)?;
        log.require_topic(&topic).map_err(ApiError::not_found)?;
        let placed = log
            .append(&topic, records)
            .map_err(ApiError::unprocessable)?;
        Ok(Json(ProduceResponse { placed }))
    })
    .await
}

#[derive(Deserialize)]
struct ConsumeQuery {
    partition: u32,
    offset: u64,
    #[serde(default = "default_max")]
    max: usize,
}

fn default_max() -> usize {
    500
}

async fn consume(
    State(api): State<Api>,
    Path(topic): Path<String>,
    Query(query): Query<ConsumeQuery>,
) -> ApiResult<Json<ConsumeResponse>> {
    blocking(move || {
        let log = embedded(&api)?;
        let meta = log.require_topic(&topic).map_err(ApiError::not_found)?;
        if query.partition >= meta.partitions {
            return Err(ApiError::bad(format!(
                "topic {topic} has no partition {}",
                query.partition
            )));
        }
        let fetched = log
            .fetch(
                &meta,
                query.partition,
                query.offset,
                query.max.clamp(1, 10_000),
            )
            .map_err(ApiError::internal)?;
        Ok(Json(ConsumeResponse {
            next: fetched.next,
            records: fetched
                .records
                .into_iter()
                .map(|(offset, record)| {
                    ConsumedRecord::new(&topic, query.partition, offset, record)
                })
                .collect(),
        }))
    })
    .await
}

async fn upload(
    State(api): State<Api>,
    Path(sha256): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<UploadResponse>)> {
    blocking(move || {
        let sha256 = api
            .replica
            .upload(&body, Some(&sha256))
            .map_err(ApiError::unprocessable)?;
        Ok((
            StatusCode::CREATED,
            Json(UploadResponse {
                sha256,
                bytes: body.len(),
            }),
        ))
    })
    .await
}

async fn deploy(
    State(api): State<Api>,
    Json(spec): Json<DeploySpec>,
) -> ApiResult<(StatusCode, Json<Deployment>)> {
    blocking(move || {
        let deployment = api.replica.deploy(spec).map_err(ApiError::unprocessable)?;
        Ok((StatusCode::CREATED, Json(deployment)))
    })
    .await
}

async fn list_deployments(State(api): State<Api>) -> Json<Vec<Deployment>> {
    Json(api.replica.registry.active())
}

async fn status(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> ApiResult<Json<FunctionStatus>> {
    blocking(move || {
        api.replica
            .status(&name)
            .map(Json)
            .map_err(ApiError::not_found)
    })
    .await
}

async fn undeploy(State(api): State<Api>, Path(name): Path<String>) -> ApiResult<Json<Deployment>> {
    blocking(move || {
        api.replica
            .undeploy(&name)
            .map(Json)
            .map_err(ApiError::not_found)
    })
    .await
}
