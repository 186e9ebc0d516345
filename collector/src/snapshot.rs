//! Snapshots of the head's GCS-backed state: the State API lists the live dashboard shows
//! (tasks, actors, nodes, jobs, placement groups, workers) plus the Serve and Data pages,
//! taken from the head's dashboard periodically and whenever a job ends, and stored as JSON
//! Lines under `log/<cluster>/<session>/snapshot/`. The GCS sees every task event, even those of
//! a driver that never had the event settings, and it knows placement groups, which no event
//! file records; the history server merges these rows with the event streams.
//!
//! Each line is `{"kind":…,"ts_ms":…,"row":…}` with the row exactly as Ray answered, so the
//! server needs no other schema. The cost on the head is bounded: every list is capped at
//! `SNAPSHOT_LIMIT` rows (Ray's own cap is 10,000), one list is fetched at a time, and the
//! task list (the only big one) is taken at most once per `SNAPSHOT_INTERVAL` plus at job ends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ray_history_storage::Storage;
use ray_history_storage::layout::{ClusterRef, SessionName, SnapshotKind};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often the job list is polled to notice jobs ending.
const JOB_POLL: Duration = Duration::from_secs(2);
/// Timeout of one request to the dashboard (Ray's own State API timeout is 30 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the snapshot at shutdown may take: Ray may already be gone.
const FINAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the snapshot task.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The head's dashboard, e.g. `http://127.0.0.1:8265`.
    pub dashboard: reqwest::Url,
    /// Time between full snapshots while no job ends.
    pub interval: Duration,
    /// Most rows taken of each list.
    pub limit: usize,
}

/// Takes snapshots until `stop`, then one last time if the dashboard still answers.
pub async fn run(
    settings: Settings,
    storage: Storage,
    cluster: ClusterRef,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let snapshotter = Snapshotter {
        client: reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("a client without custom TLS always builds"),
        settings,
        storage,
        cluster,
        metrics,
    };
    let mut last_full: Option<Instant> = None;
    let mut jobs: BTreeMap<String, String> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(JOB_POLL) => {}
            _ = stop.cancelled() => break,
        }
        let ended = match snapshotter.job_statuses().await {
            Ok(now) => {
                let ended = now
                    .iter()
                    .any(|(id, status)| is_terminal(status) && jobs.get(id) != Some(status));
                jobs = now;
                ended
            }
            // Ray is not up (yet, or any more): nothing to take.
            Err(_) => continue,
        };
        let due = last_full.is_none_or(|t| t.elapsed() >= snapshotter.settings.interval);
        if due || ended {
            snapshotter.take_logged().await;
            last_full = Some(Instant::now());
        }
    }
    let _ = tokio::time::timeout(FINAL_TIMEOUT, snapshotter.take_logged()).await;
}

fn is_terminal(status: &str) -> bool {
    matches!(status, "SUCCEEDED" | "FAILED" | "STOPPED")
}

struct Snapshotter {
    client: reqwest::Client,
    settings: Settings,
    storage: Storage,
    cluster: ClusterRef,
    metrics: Metrics,
}

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
enum SnapshotError {
    #[error("dashboard {path}: {source}")]
    Http {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("dashboard {path}: unexpected answer: {problem}")]
    Answer { path: String, problem: String },
    #[error(transparent)]
    Storage(#[from] ray_history_storage::Error),
}

/// The State API's envelope around a list.
#[derive(Deserialize)]
struct Envelope {
    data: EnvelopeData,
}

#[derive(Deserialize)]
struct EnvelopeData {
    result: ListResult,
}

#[derive(Deserialize)]
struct ListResult {
    result: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct Version {
    session_name: String,
}

#[derive(Deserialize)]
struct JobRow {
    #[serde(default)]
    job_id: Option<String>,
    #[serde(default)]
    submission_id: Option<String>,
    #[serde(default)]
    status: String,
}

impl Snapshotter {
    async fn get(&self, path: &str) -> Result<reqwest::Response, SnapshotError> {
        let http = |source| SnapshotError::Http {
            path: path.to_string(),
            source,
        };
        let url = self
            .settings
            .dashboard
            .join(path)
            .map_err(|e| SnapshotError::Answer {
                path: path.to_string(),
                problem: e.to_string(),
            })?;
        self.client
            .get(url)
            .send()
            .await
            .map_err(http)?
            .error_for_status()
            .map_err(http)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, SnapshotError> {
        let body = self
            .get(path)
            .await?
            .bytes()
            .await
            .map_err(|source| SnapshotError::Http {
                path: path.to_string(),
                source,
            })?;
        serde_json::from_slice(&body).map_err(|e| SnapshotError::Answer {
            path: path.to_string(),
            problem: e.to_string(),
        })
    }

    /// Each job's status, keyed by submission id or job id.
    async fn job_statuses(&self) -> Result<BTreeMap<String, String>, SnapshotError> {
        let jobs: Vec<JobRow> = self.get_json("api/jobs/").await?;
        Ok(jobs
            .into_iter()
            .filter_map(|j| Some((j.submission_id.or(j.job_id)?, j.status)))
            .collect())
    }

    async fn take_logged(&self) {
        let started = Instant::now();
        match self.take().await {
            Ok(rows) => {
                tracing::debug!(
                    rows,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "snapshot stored"
                );
                self.metrics.snapshots.inc();
            }
            Err(e) => {
                tracing::warn!(error = %e, "snapshot of the head's state failed");
                self.metrics.snapshot_errors.inc();
            }
        }
    }

    /// Takes and stores every kind; returns how many rows were stored.
    async fn take(&self) -> Result<usize, SnapshotError> {
        let version: Version = self.get_json("api/version").await?;
        let session =
            SessionName::new(&version.session_name).map_err(|e| SnapshotError::Answer {
                path: "api/version".into(),
                problem: e.to_string(),
            })?;
        let mut job_ids = Vec::new();
        let mut total = 0;
        for kind in SnapshotKind::ALL {
            let ts_ms = chrono::Utc::now().timestamp_millis();
            let rows = match kind {
                SnapshotKind::Jobs => {
                    let rows: Vec<Box<RawValue>> = self.get_json("api/jobs/").await?;
                    for row in &rows {
                        if let Ok(JobRow {
                            job_id: Some(id), ..
                        }) = serde_json::from_str(row.get())
                        {
                            job_ids.push(id);
                        }
                    }
                    rows
                }
                SnapshotKind::Serve => self
                    .optional("api/serve/applications/")
                    .await
                    .into_iter()
                    .collect(),
                SnapshotKind::Datasets => {
                    let mut rows = Vec::new();
                    for id in &job_ids {
                        if let Some(page) = self.optional(&format!("api/data/datasets/{id}")).await
                        {
                            rows.push(with_job_id(id, &page));
                        }
                    }
                    rows
                }
                _ => self.list(kind).await?,
            };
            total += rows.len();
            let key = self.cluster.snapshot(&session, kind);
            self.storage.put(&key, encode(kind, ts_ms, &rows)).await?;
        }
        Ok(total)
    }

    /// One State API list, capped at the limit.
    async fn list(&self, kind: SnapshotKind) -> Result<Vec<Box<RawValue>>, SnapshotError> {
        let path = format!(
            "api/v0/{}?detail=true&limit={}&timeout=30",
            kind.name(),
            self.settings.limit
        );
        let envelope: Envelope = self.get_json(&path).await?;
        Ok(envelope.data.result.result)
    }

    /// A page that exists only when Ray has the library installed (Serve, Data): its JSON, or
    /// nothing.
    async fn optional(&self, path: &str) -> Option<Box<RawValue>> {
        self.get_json::<Box<RawValue>>(path).await.ok()
    }
}

/// A dataset page with the job it belongs to: `{"job_id":…,"page":…}`.
fn with_job_id(job_id: &str, page: &RawValue) -> Box<RawValue> {
    let text = format!(
        r#"{{"job_id":{},"page":{}}}"#,
        serde_json::Value::from(job_id),
        page.get()
    );
    RawValue::from_string(text).expect("two JSON values in an object are JSON")
}

/// The stored form: one line per row.
fn encode(kind: SnapshotKind, ts_ms: i64, rows: &[Box<RawValue>]) -> Bytes {
    let mut out = String::new();
    for row in rows {
        out.push_str(r#"{"kind":""#);
        out.push_str(kind.name());
        out.push_str(r#"","ts_ms":"#);
        out.push_str(&ts_ms.to_string());
        out.push_str(r#","row":"#);
        out.push_str(row.get());
        out.push_str("}\n");
    }
    Bytes::from(out)
}
