//! A client of a Confluent-compatible schema registry's REST API (Confluent Schema
//! Registry, Apicurio's `/apis/ccompat/v7`, Redpanda's): schemas by id, each fetched once
//! and kept, since a registered id never changes its schema, and subjects' latest
//! schemas, asked again every so often, since a subject moves on.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use serde::Deserialize;

use super::avro::AvroSchema;

/// Longest one request to the registry may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer read from the registry.
const MAX_ANSWER: u64 = 16 << 20;

/// How long a subject's latest schema is taken as still the latest.
const LATEST_FOR: Duration = Duration::from_secs(30);

/// A schema registry and the schemas fetched from it.
pub struct SchemaRegistry {
    base: String,
    agent: ureq::Agent,
    authorization: Option<String>,
    by_id: RwLock<HashMap<u32, Arc<Registered>>>,
    latest: RwLock<HashMap<String, (Instant, Arc<Registered>)>>,
}

/// The Avro schema of a registered `text` of `kind`.
fn avro_of(id: u32, kind: Option<&str>, text: &str) -> Result<AvroSchema, Lookup> {
    let kind = kind.unwrap_or("AVRO");
    if kind != "AVRO" {
        return Err(Lookup::Refused(format!(
            "schema {id} is {kind}, and the topic's format is Avro"
        )));
    }
    AvroSchema::parse(text).map_err(|e| Lookup::Refused(format!("schema {id}: {e}")))
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("url", &self.base)
            .finish_non_exhaustive()
    }
}

/// A schema as registered.
#[derive(Debug)]
pub struct Registered {
    /// Its id.
    pub id: u32,
    /// The subject it is registered under: the topic's value subject when it is one of
    /// them, else the first.
    pub subject: String,
    /// The parsed schema.
    pub avro: AvroSchema,
}

/// Why a schema could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Lookup {
    /// The registry answered that it has no such schema, or one this host cannot read:
    /// a fault of the record that names it.
    #[error("{0}")]
    Refused(String),
    /// The registry could not be asked: nothing is wrong with the record, try again.
    #[error("{0}")]
    Unreachable(anyhow::Error),
}

#[derive(Deserialize)]
struct SchemaAnswer {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
}

#[derive(Deserialize)]
struct LatestAnswer {
    id: u32,
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
}

#[derive(Deserialize)]
struct SubjectVersion {
    subject: String,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    message: String,
}

impl SchemaRegistry {
    /// A client of the registry at `url` (e.g. `http://registry:8081`), with `options` as
    /// Confluent clients take them; `basic.auth.user.info=USER:PASSWORD` is the one known.
    pub fn new(url: &str, options: &[(String, String)]) -> Result<SchemaRegistry> {
        anyhow::ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "the schema registry URL {url:?} must start with http:// or https://"
        );
        let mut authorization = None;
        for (key, value) in options {
            match key.as_str() {
                "basic.auth.user.info" => {
                    let token = base64::engine::general_purpose::STANDARD.encode(value);
                    authorization = Some(format!("Basic {token}"));
                }
                other => {
                    bail!("unknown schema registry option {other:?} (known: basic.auth.user.info)")
                }
            }
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Ok(SchemaRegistry {
            base: url.trim_end_matches('/').to_owned(),
            agent,
            authorization,
            by_id: RwLock::new(HashMap::new()),
            latest: RwLock::new(HashMap::new()),
        })
    }

    /// The registry's address.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The schema registered as `id`, with `topic`'s value subject preferred.
    pub fn schema(&self, id: u32, topic: &str) -> Result<Arc<Registered>, Lookup> {
        if let Some(found) = self.by_id.read().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(found);
        }
        let answer: SchemaAnswer = self.get(&format!("/schemas/ids/{id}"))?;
        let avro = avro_of(id, answer.schema_type.as_deref(), &answer.schema)?;
        let subjects: Vec<SubjectVersion> = self.get(&format!("/schemas/ids/{id}/versions"))?;
        let wanted = format!("{topic}-value");
        let subject = subjects
            .iter()
            .find(|s| s.subject == wanted)
            .or(subjects.first())
            .map_or(wanted.clone(), |s| s.subject.clone());
        let registered = Arc::new(Registered { id, subject, avro });
        if let Ok(mut cache) = self.by_id.write() {
            cache.insert(id, registered.clone());
        }
        Ok(registered)
    }

    /// The latest schema of `subject` as last asked, asking only when it never was.
    pub fn known_latest(&self, subject: &str) -> Result<Arc<Registered>, Lookup> {
        let cached = self
            .latest
            .read()
            .ok()
            .and_then(|m| m.get(subject).cloned());
        match cached {
            Some((_, registered)) => Ok(registered),
            None => self.latest(subject),
        }
    }

    /// The latest schema of `subject`, asked again at most every [`LATEST_FOR`].
    pub fn latest(&self, subject: &str) -> Result<Arc<Registered>, Lookup> {
        let cached = self
            .latest
            .read()
            .ok()
            .and_then(|m| m.get(subject).cloned());
        if let Some((at, registered)) = cached
            && at.elapsed() < LATEST_FOR
        {
            return Ok(registered);
        }
        let answer: LatestAnswer = self.get(&format!("/subjects/{subject}/versions/latest"))?;
        let avro = avro_of(answer.id, answer.schema_type.as_deref(), &answer.schema)?;
        let registered = Arc::new(Registered {
            id: answer.id,
            subject: subject.to_owned(),
            avro,
        });
        if let Ok(mut cache) = self.latest.write() {
            cache.insert(subject.to_owned(), (Instant::now(), registered.clone()));
        }
        Ok(registered)
    }

    fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, Lookup> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .agent
            .get(&url)
            .header("Accept", "application/vnd.schemaregistry.v1+json");
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        let unreachable = |e: anyhow::Error| Lookup::Unreachable(e.context(format!("GET {url}")));
        let mut response = request
            .call()
            .map_err(|e| unreachable(anyhow!("cannot reach the schema registry: {e}")))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .context("reading the schema registry's answer")
            .map_err(unreachable)?;
        if status.is_success() {
            return serde_json::from_str(&body)
                .map_err(|e| unreachable(anyhow!("the schema registry's answer {body:?}: {e}")));
        }
        let message = serde_json::from_str::<ErrorAnswer>(&body)
            .map(|e| e.message)
            .unwrap_or(body);
        if status.as_u16() == 404 {
            return Err(Lookup::Refused(format!(
                "the schema registry says: {message}"
            )));
        }
        Err(unreachable(anyhow!(
            "the schema registry answered {status}: {message}"
        )))
    }
}
