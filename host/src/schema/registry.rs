//! A client of a Confluent-compatible schema registry's REST API (Confluent Schema
//! Registry, Apicurio's `/apis/ccompat/v7`, Redpanda's): schemas by id, each fetched once
//! and kept, since a registered id never changes its schema; subjects' latest schemas,
//! asked again every so often, since a subject moves on; the id a given schema has under
//! a subject; and registering a schema, checked first against the subject's
//! compatibility rules.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Schema, value_subject};
use crate::model::format::Format;

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
    subjects: RwLock<HashMap<(u32, String), String>>,
    latest: RwLock<HashMap<String, (Instant, Arc<Registered>)>>,
    /// Schemas of a deployment's outputs by (subject, text): the ids they have there.
    pinned: RwLock<HashMap<(String, String), Arc<Registered>>>,
    /// Lookups the registry refused, with when and why.
    refused: RwLock<HashMap<String, (Instant, String)>>,
}

/// The schema of a registered `text` of `kind` (the registry leaves AVRO unsaid).
fn parse(id: u32, kind: Option<&str>, text: &str) -> Result<Schema, Lookup> {
    Schema::parse(kind.unwrap_or("AVRO"), text)
        .map_err(|e| Lookup::Refused(format!("schema {id}: {e:#}")))
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
    /// The parsed schema.
    pub schema: Schema,
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
struct IdAnswer {
    id: u32,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    error_code: u32,
    #[serde(default)]
    message: String,
}

/// The registry's error codes for a subject, version or schema it does not have.
const NOT_FOUND: [u32; 3] = [40401, 40402, 40403];

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
            subjects: RwLock::new(HashMap::new()),
            latest: RwLock::new(HashMap::new()),
            pinned: RwLock::new(HashMap::new()),
            refused: RwLock::new(HashMap::new()),
        })
    }

    /// The registry's address.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The schema registered as `id`.
    pub fn schema(&self, id: u32) -> Result<Arc<Registered>, Lookup> {
        if let Some(found) = self.by_id.read().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(found);
        }
        let registered = self.remembering(&format!("schema {id}"), || {
            let answer = self.get::<SchemaAnswer>(&format!("/schemas/ids/{id}"))?;
            let schema = parse(id, answer.schema_type.as_deref(), &answer.schema)?;
            Ok(Arc::new(Registered { id, schema }))
        })?;
        if let Ok(mut cache) = self.by_id.write() {
            cache.insert(id, registered.clone());
        }
        Ok(registered)
    }

    /// The subject schema `id` is registered under, `topic`'s value subject when it is one
    /// of them, else the first; the value subject when the registry does not say. An
    /// error means the registry could not be asked.
    pub fn subject(&self, id: u32, topic: &str) -> anyhow::Result<String> {
        let key = (id, topic.to_owned());
        if let Some(found) = self.subjects.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(found);
        }
        let wanted = value_subject(topic);
        let subject = match self.get::<Vec<SubjectVersion>>(&format!("/schemas/ids/{id}/versions"))
        {
            Ok(subjects) => subjects
                .iter()
                .find(|s| s.subject == wanted)
                .or(subjects.first())
                .map_or(wanted.clone(), |s| s.subject.clone()),
            Err(Lookup::Refused(_)) => wanted,
            Err(Lookup::Unreachable(e)) => return Err(e),
        };
        if let Ok(mut cache) = self.subjects.write() {
            cache.insert(key, subject.clone());
        }
        Ok(subject)
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
        let registered = self.remembering(&format!("subject {subject}"), || {
            let answer =
                self.get::<LatestAnswer>(&format!("/subjects/{subject}/versions/latest"))?;
            let schema = parse(answer.id, answer.schema_type.as_deref(), &answer.schema)?;
            Ok(Arc::new(Registered {
                id: answer.id,
                schema,
            }))
        })?;
        if let Ok(mut cache) = self.latest.write() {
            cache.insert(subject.to_owned(), (Instant::now(), registered.clone()));
        }
        Ok(registered)
    }

    /// The schema `text` of `format` as registered under `subject`: the id it has there,
    /// asked once. A deployment's outputs are written with the schema it was deployed with.
    pub fn pinned(
        &self,
        subject: &str,
        format: Format,
        text: &str,
    ) -> Result<Arc<Registered>, Lookup> {
        let key = (subject.to_owned(), text.to_owned());
        if let Some(found) = self.pinned.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(found);
        }
        let kind = format.schema_type().unwrap_or("AVRO");
        let registered =
            self.remembering(&format!("{kind} schema under {subject}: {text}"), || {
                let body = json!({"schemaType": kind, "schema": text});
                let answer = self.post::<IdAnswer>(&format!("/subjects/{subject}"), &body)?;
                let schema = parse(answer.id, Some(kind), text)?;
                Ok(Arc::new(Registered {
                    id: answer.id,
                    schema,
                }))
            })?;
        if let Ok(mut cache) = self.pinned.write() {
            cache.insert(key, registered.clone());
        }
        Ok(registered)
    }

    /// Registers the schema `text` of `format` under `subject`, unless the subject's
    /// compatibility rules refuse it: then the error says why, in the registry's words,
    /// and nothing changed (a registry registers a schema whole or not at all). Returns
    /// its id; a schema the subject has already keeps its id.
    pub fn register(&self, subject: &str, format: Format, text: &str) -> Result<u32> {
        let kind = format
            .schema_type()
            .with_context(|| format!("{format} has no schemas"))?;
        Schema::parse(kind, text).with_context(|| format!("the {kind} schema for {subject}"))?;
        let body = json!({"schemaType": kind, "schema": text});
        match self.post::<IdAnswer>(&format!("/subjects/{subject}/versions"), &body) {
            Ok(answer) => Ok(answer.id),
            Err(Lookup::Refused(why)) => bail!(
                "the schema registry refuses the {kind} schema for {subject} (is it compatible with the subject's latest?): {why}"
            ),
            Err(Lookup::Unreachable(e)) => {
                Err(e.context(format!("registering the schema for {subject}")))
            }
        }
    }

    /// What `fetch` finds, unless the registry refused `key` less than [`LATEST_FOR`]
    /// ago: a record naming an unknown schema must not cost a request each. A refusal is
    /// remembered.
    fn remembering<T>(
        &self,
        key: &str,
        fetch: impl FnOnce() -> Result<T, Lookup>,
    ) -> Result<T, Lookup> {
        let refused = self.refused.read().ok().and_then(|m| m.get(key).cloned());
        if let Some((at, why)) = refused
            && at.elapsed() < LATEST_FOR
        {
            return Err(Lookup::Refused(why));
        }
        let found = fetch();
        if let (Err(Lookup::Refused(why)), Ok(mut refused)) = (&found, self.refused.write()) {
            refused.insert(key.to_owned(), (Instant::now(), why.clone()));
        }
        found
    }

    fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, Lookup> {
        self.ask("GET", path, None)
    }

    fn post<T: for<'de> Deserialize<'de>>(&self, path: &str, body: &Value) -> Result<T, Lookup> {
        self.ask("POST", path, Some(body))
    }

    /// Sends a request; the registry's answer as `T`, its refusal of what was asked, or
    /// why it could not be asked.
    fn ask<T: for<'de> Deserialize<'de>>(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, Lookup> {
        const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";
        let url = format!("{}{path}", self.base);
        let unreachable =
            |e: anyhow::Error| Lookup::Unreachable(e.context(format!("{method} {url}")));
        let called = match body {
            None => {
                let mut request = self.agent.get(&url).header("Accept", MEDIA_TYPE);
                if let Some(authorization) = &self.authorization {
                    request = request.header("Authorization", authorization);
                }
                request.call()
            }
            Some(body) => {
                let mut request = self
                    .agent
                    .post(&url)
                    .header("Accept", MEDIA_TYPE)
                    .header("Content-Type", MEDIA_TYPE);
                if let Some(authorization) = &self.authorization {
                    request = request.header("Authorization", authorization);
                }
                request.send(body.to_string())
            }
        };
        let mut response =
            called.map_err(|e| unreachable(anyhow!("cannot reach the schema registry: {e}")))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .context("reading the schema registry's answer")
            .map_err(unreachable)?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .map_err(|e| unreachable(anyhow!("the schema registry's answer {text:?}: {e}")));
        }
        let answer = serde_json::from_str::<ErrorAnswer>(&text).ok();
        let code = answer.as_ref().map_or(0, |e| e.error_code);
        let message = answer.map_or(text, |e| e.message);
        // Only the registry's own "no such schema, subject or version" blames what was
        // asked for, and its refusal of a schema it was given; a 404 of anything else (a
        // wrong URL, a proxy) is the setup's.
        let refused = (status.as_u16() == 404 && NOT_FOUND.contains(&code))
            || (body.is_some() && matches!(status.as_u16(), 409 | 422));
        if refused {
            return Err(Lookup::Refused(format!(
                "the schema registry says: {message}"
            )));
        }
        Err(unreachable(anyhow!(
            "the schema registry answered {status}: {message}"
        )))
    }
}
