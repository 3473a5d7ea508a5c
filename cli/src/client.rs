//! The admin API client `fnctl` uses to talk to a replica. Turns every failure into a
//! message that says what was wrong and what to do.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;
use serde::de::DeserializeOwned;
use ureq::Agent;
use ureq::http::Response;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, parse_pem};

use streamfn_host::api::wire::{
    CanaryRequest, ConsumeResponse, CreateTopic, ErrorBody, ProduceRequest, ProduceResponse,
    RollbackRequest, TopicInfo, UploadResponse,
};
use streamfn_host::logbook::LogEntry;
use streamfn_host::model::deployment::{DeploySpec, Deployment, Replay};
use streamfn_host::replica::state::{StateAnswer, StateQuery};
use streamfn_host::replica::{FunctionStatus, VersionInfo};

/// A connection to one replica's admin API.
pub struct Client {
    agent: Agent,
    base: String,
    token: Option<String>,
}

/// How long a produce request is sent again while the replica does not take it.
pub const RETRY_FOR: Duration = Duration::from_secs(60);

/// Largest answer read: a page of records.
const MAX_ANSWER: u64 = 512 * 1024 * 1024;

impl Client {
    /// A client of the replica at `base` (for example `http://127.0.0.1:7070`, or
    /// `https://...`, whose certificate is checked against `ca` when given, else
    /// against the usual roots).
    pub fn new(base: &str, token: Option<String>, ca: Option<&Path>) -> Result<Self> {
        let mut tls = TlsConfig::builder();
        if let Some(ca) = ca {
            let pem = std::fs::read(ca)
                .with_context(|| format!("cannot read the CA certificate {}", ca.display()))?;
            let certs: Vec<Certificate<'static>> = parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(cert)) => Some(Ok(cert)),
                    Ok(_) => None,
                    Err(err) => Some(Err(err)),
                })
                .collect::<Result<_, _>>()
                .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
            anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", ca.display());
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Client {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    fn unreachable(&self, err: ureq::Error) -> anyhow::Error {
        anyhow!(
            "cannot reach the replica at {}: {err}\nstart one with `fnctl serve`, or point --admin (or FNCTL_ADMIN) at a running one",
            self.base
        )
    }

    fn answer<T: DeserializeOwned>(
        &self,
        response: Result<Response<ureq::Body>, ureq::Error>,
    ) -> Result<T> {
        let mut response = response.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .context("reading the replica's answer")?;
        if !status.is_success() {
            let message = serde_json::from_str::<ErrorBody>(&body).map_or(body, |e| e.error);
            return Err(anyhow!("{message}"));
        }
        serde_json::from_str(&body)
            .with_context(|| format!("the replica's answer is not what fnctl expects: {body}"))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.answer(self.auth(self.agent.get(self.url(path))).call())
    }

    fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.answer(self.auth(self.agent.post(self.url(path))).send_json(body))
    }

    /// Creates a topic.
    pub fn create_topic(&self, request: &CreateTopic) -> Result<TopicInfo> {
        self.post("/v1/topics", request)
    }

    /// Lists topics.
    pub fn topics(&self) -> Result<Vec<TopicInfo>> {
        self.get("/v1/topics")
    }

    /// Appends records to `topic`. A request that carries its producer's sequence number
    /// is sent again while the replica cannot be reached or answers 503, for up to
    /// [`RETRY_FOR`]: the replica writes it once however often it arrives.
    pub fn produce(&self, topic: &str, request: &ProduceRequest) -> Result<ProduceResponse> {
        let path = format!("/v1/topics/{topic}/records");
        if request.producer.is_none() {
            return self.post(&path, request);
        }
        let deadline = Instant::now() + RETRY_FOR;
        let mut pause = Duration::from_millis(100);
        let mut told = false;
        loop {
            let response = self
                .auth(self.agent.post(self.url(&path)))
                .send_json(request);
            let again = match &response {
                Err(_) => true,
                Ok(answer) => answer.status() == ureq::http::StatusCode::SERVICE_UNAVAILABLE,
            };
            if !again || Instant::now() + pause >= deadline {
                return self.answer(response);
            }
            if !told {
                eprintln!(
                    "the replica at {} did not take the request; sending it again (it is written once)",
                    self.base
                );
                told = true;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Reads up to `max` records of `topic`'s `partition` from `offset`.
    pub fn consume(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max: usize,
    ) -> Result<ConsumeResponse> {
        self.get(&format!(
            "/v1/topics/{topic}/records?partition={partition}&offset={offset}&max={max}"
        ))
    }

    /// Uploads a component.
    pub fn upload(&self, sha256: &str, bytes: &[u8]) -> Result<UploadResponse> {
        let request = self.auth(self.agent.put(self.url(&format!("/v1/artifacts/{sha256}"))));
        self.answer(
            request
                .header("Content-Type", "application/wasm")
                .send(bytes),
        )
    }

    /// Deploys a function.
    pub fn deploy(&self, spec: &DeploySpec) -> Result<Deployment> {
        self.post("/v1/deployments", spec)
    }

    /// Deploys `spec` as a canary on `percent` of its partitions.
    pub fn deploy_canary(
        &self,
        spec: &DeploySpec,
        percent: u8,
        max_failure_rate: Option<f64>,
    ) -> Result<Deployment> {
        self.post(
            &format!("/v1/deployments/{}/canary", spec.name),
            &CanaryRequest {
                spec: spec.clone(),
                percent,
                max_failure_rate,
            },
        )
    }

    /// Makes a function's canary its only version.
    pub fn promote(&self, name: &str) -> Result<Deployment> {
        self.post(&format!("/v1/deployments/{name}/promote"), &())
    }

    /// Lists running functions.
    pub fn deployments(&self) -> Result<Vec<Deployment>> {
        self.get("/v1/deployments")
    }

    /// The status of a function.
    pub fn status(&self, name: &str) -> Result<FunctionStatus> {
        self.get(&format!("/v1/deployments/{name}"))
    }

    /// Up to `max` guest log lines of `name` after sequence number `after`.
    pub fn logs(&self, name: &str, after: u64, max: usize) -> Result<Vec<LogEntry>> {
        self.get(&format!(
            "/v1/deployments/{name}/logs?after={after}&max={max}"
        ))
    }

    /// Reads what `query` asks of `name`'s committed state.
    pub fn state(&self, name: &str, query: &StateQuery) -> Result<StateAnswer> {
        let request = self
            .agent
            .get(self.url(&format!("/v1/deployments/{name}/state")))
            .query_pairs(query.params());
        self.answer(self.auth(request).call())
    }

    /// Every version of a function.
    pub fn versions(&self, name: &str) -> Result<Vec<VersionInfo>> {
        self.get(&format!("/v1/deployments/{name}/versions"))
    }

    /// Deploys version `to` of a function again (the one before the running one when
    /// none).
    pub fn rollback(&self, name: &str, to: Option<u32>) -> Result<Deployment> {
        self.post(
            &format!("/v1/deployments/{name}/rollback"),
            &RollbackRequest { to },
        )
    }

    /// Replays a function's inputs.
    pub fn replay(&self, name: &str, replay: &Replay) -> Result<Deployment> {
        self.post(&format!("/v1/deployments/{name}/replay"), replay)
    }

    /// Stops a function.
    pub fn undeploy(&self, name: &str) -> Result<Deployment> {
        self.answer(
            self.auth(
                self.agent
                    .delete(self.url(&format!("/v1/deployments/{name}"))),
            )
            .call(),
        )
    }
}
