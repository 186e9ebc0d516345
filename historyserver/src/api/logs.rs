//! `api/v0/logs` (the file list of a node, by category) and `api/v0/logs/{file,stream}`
//! (one file, found by name, task, actor, pid or submission id): tails with `lines`, byte
//! ranges with the `Range` header, downloads with `download_filename`, gzip files decompressed.
//! Bad names get 400 and missing files 404, with Ray's JSON error envelope.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use globset::GlobBuilder;

use super::query::{query_get, query_pairs, truthy};
use super::{AppState, Loaded};
use crate::ids::{ActorId, NodeId, TaskId};
use crate::loader::{LoadedSession, LogFile};
use crate::log_reader;
use crate::response::{self, ApiError, Wrapped, rows_unreadable};

/// Ray's default number of lines.
const DEFAULT_LINES: i64 = 1000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v0/logs", get(list))
        .route("/api/v0/logs/{media_type}", get(file))
        .route("/api/jobs/{job_id}/logs", get(job_logs))
        .route("/api/jobs/{job_id}/logs/tail", get(job_logs_tail))
}

/// Ray's log categories, decided by the file name as its log manager does.
fn category(name: &str) -> &'static str {
    if name.contains("worker") && name.ends_with(".out") {
        "worker_out"
    } else if name.contains("worker") && name.ends_with(".err") {
        "worker_err"
    } else if name.contains("core-worker") && name.ends_with(".log") {
        "core_worker"
    } else if name.contains("core-driver") && name.ends_with(".log") {
        "driver"
    } else if name.contains("raylet.") {
        "raylet"
    } else if name.contains("gcs_server.") {
        "gcs_server"
    } else if name.contains("log_monitor") {
        "internal"
    } else if name.contains("monitor") {
        "autoscaler"
    } else if name.contains("agent.") {
        "agent"
    } else if name.contains("dashboard.") {
        "dashboard"
    } else {
        "internal"
    }
}

/// Resolves `node_id` or `node_ip` to a node with stored logs.
fn resolve_node(
    session: &LoadedSession,
    pairs: &[(String, String)],
) -> Result<Option<NodeId>, ApiError> {
    if let Some(text) = query_get(pairs, "node_id") {
        let id = NodeId::from_hex(text)
            .ok_or_else(|| ApiError::bad_request(format!("invalid node_id {text:?}")))?;
        return Ok(Some(id));
    }
    if let Some(ip) = query_get(pairs, "node_ip") {
        let from_events = session
            .state
            .nodes
            .iter()
            .find(|n| &*n.ip == ip)
            .map(|n| n.node_id);
        let from_meta = || {
            session
                .nodes
                .iter()
                .find(|n| n.node_ip.as_deref() == Some(ip))
                .and_then(|n| NodeId::from_hex(n.node_id.as_str()))
        };
        return from_events
            .or_else(from_meta)
            .map(Some)
            .ok_or_else(|| ApiError::not_found(format!("Node with IP {ip} not found")));
    }
    Ok(None)
}

/// The storage key of a node's log file.
fn log_key(
    session: &LoadedSession,
    node: NodeId,
    relative: &str,
) -> Result<object_store::path::Path, ApiError> {
    let node = ray_history_storage::layout::NodeId::new(&node.hex())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    session
        .cluster
        .log_file(session.name(), &node, relative)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

fn node_files(session: &LoadedSession, node: NodeId) -> Result<&[LogFile], ApiError> {
    session
        .node_logs(node)
        .ok_or_else(|| ApiError::not_found(format!("Node {node} has no stored logs")))
}

async fn list(Loaded(session): Loaded, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let pairs = query_pairs(query.as_deref());
    let node = resolve_node(&session, &pairs)?.ok_or_else(|| {
        ApiError::bad_request(
            "Both node id and node ip are not provided. Please provide at least one of them.",
        )
    })?;
    let files = node_files(&session, node)?;
    let glob = query_get(&pairs, "glob").unwrap_or("*");
    let names = list_glob(files, glob)?;
    let mut grouped: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for name in names {
        grouped.entry(category(&name)).or_default().push(name);
    }
    Ok(response::ok("", Wrapped { result: grouped }))
}

/// The files and folders (with a trailing slash) matching `glob`, as Python's `Path.glob` in
/// Ray's log agent finds them: `*` stays within one folder level, `**` crosses levels, so
/// `*` lists the top level and `events/*` the `events/` folder.
fn list_glob(files: &[LogFile], glob: &str) -> Result<BTreeSet<String>, ApiError> {
    let matcher = GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(|e| ApiError::bad_request(format!("invalid glob {glob:?}: {e}")))?
        .compile_matcher();
    let mut names = BTreeSet::new();
    for f in files {
        for (end, _) in f.relative.match_indices('/') {
            let folder = &f.relative[..end];
            if matcher.is_match(folder) {
                names.insert(format!("{folder}/"));
            }
        }
        if matcher.is_match(&f.relative) {
            names.insert(f.relative.clone());
        }
    }
    Ok(names)
}

fn pid_file(files: &[LogFile], pid: u32, suffix: &str) -> Option<String> {
    let ending = format!("-{pid}.{suffix}");
    files
        .iter()
        .find(|f| f.relative.starts_with("worker-") && f.relative.ends_with(&ending))
        .map(|f| f.relative.clone())
}

/// What to read: node, file and, for tasks, the byte window of the task's output.
struct Target {
    node: NodeId,
    relative: String,
    window: Option<(u64, u64)>,
    /// The window's start is unknown (export events): start after Ray's task marker line.
    after_marker: bool,
}

fn resolve_target(session: &LoadedSession, pairs: &[(String, String)]) -> Result<Target, ApiError> {
    let suffix = query_get(pairs, "suffix").unwrap_or("out");
    if suffix != "out" && suffix != "err" {
        return Err(ApiError::bad_request(format!(
            "invalid suffix {suffix:?}: must be out or err"
        )));
    }
    let node = resolve_node(session, pairs)?;
    if let Some(filename) = query_get(pairs, "filename") {
        log_reader::check_relative(filename)?;
        let node = node.ok_or_else(|| {
            ApiError::bad_request("node_id or node_ip must be given with filename")
        })?;
        return Ok(Target {
            node,
            relative: filename.to_string(),
            window: None,
            after_marker: false,
        });
    }
    if let Some(text) = query_get(pairs, "task_id") {
        let id = TaskId::from_hex(text)
            .ok_or_else(|| ApiError::bad_request(format!("invalid task_id {text:?}")))?;
        let attempt: u32 = query_get(pairs, "attempt_number")
            .unwrap_or("0")
            .parse()
            .map_err(|_| ApiError::bad_request("invalid attempt_number"))?;
        let table = &session.state.tasks;
        let attempts = table.fetch(&table.rows_of(&id)).map_err(rows_unreadable)?;
        let task = attempts
            .iter()
            .find(|t| t.attempt == attempt)
            .ok_or_else(|| ApiError::not_found(format!("Task {text} not found")))?;
        let node = task
            .node_id
            .ok_or_else(|| ApiError::not_found(format!("Task {text} has no node: it never ran")))?;
        let relative = session.task_log_file(task, suffix).ok_or_else(|| {
            ApiError::not_found(format!(
                "No stored {suffix} log for the worker of task {text}"
            ))
        })?;
        let window = task.log_info.as_ref().map(|l| {
            let (start, end) = if suffix == "out" {
                (l.stdout_start, l.stdout_end)
            } else {
                (l.stderr_start, l.stderr_end)
            };
            (start.max(0) as u64, end.max(0) as u64)
        });
        let after_marker = window.is_some_and(|(start, end)| start == 0 && end > 0);
        return Ok(Target {
            node,
            relative,
            window,
            after_marker,
        });
    }
    if let Some(text) = query_get(pairs, "actor_id") {
        let id = ActorId::from_hex(text)
            .ok_or_else(|| ApiError::bad_request(format!("invalid actor_id {text:?}")))?;
        let actor = session
            .state
            .actor(&id)
            .ok_or_else(|| ApiError::not_found(format!("Actor {text} not found")))?;
        let placement = actor
            .placement()
            .ok_or_else(|| ApiError::not_found(format!("Actor {text} was never placed")))?;
        let node = placement
            .node_id
            .ok_or_else(|| ApiError::not_found(format!("Actor {text} has no node")))?;
        let files = node_files(session, node)?;
        let relative = placement
            .worker_id
            .and_then(|w| {
                crate::loader::worker_file(files, &format!("worker-{}-", w.hex()), suffix)
            })
            .or_else(|| pid_file(files, placement.pid, suffix))
            .ok_or_else(|| ApiError::not_found(format!("No stored log for actor {text}")))?;
        return Ok(Target {
            node,
            relative,
            window: None,
            after_marker: false,
        });
    }
    if let Some(text) = query_get(pairs, "pid") {
        let pid: u32 = text
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid pid {text:?}")))?;
        let node =
            node.ok_or_else(|| ApiError::bad_request("node_id or node_ip must be given with pid"))?;
        let relative = pid_file(node_files(session, node)?, pid, suffix)
            .ok_or_else(|| ApiError::not_found(format!("No stored log for pid {pid}")))?;
        return Ok(Target {
            node,
            relative,
            window: None,
            after_marker: false,
        });
    }
    if let Some(submission) = query_get(pairs, "submission_id") {
        let relative = format!("job-driver-{submission}.log");
        log_reader::check_relative(&relative)?;
        let node = match node {
            Some(n) => n,
            None => head_node(session)?,
        };
        return Ok(Target {
            node,
            relative,
            window: None,
            after_marker: false,
        });
    }
    Err(ApiError::bad_request(
        "give filename (with node_id or node_ip), task_id, actor_id, pid or submission_id",
    ))
}

fn head_node(session: &LoadedSession) -> Result<NodeId, ApiError> {
    session
        .state
        .nodes
        .iter()
        .find(|n| n.is_head)
        .map(|n| n.node_id)
        .or_else(|| {
            session
                .meta
                .head_node_id
                .as_ref()
                .and_then(|id| NodeId::from_hex(id.as_str()))
        })
        .ok_or_else(|| ApiError::not_found("the session's head node is unknown"))
}

async fn file(
    Loaded(session): Loaded,
    RawQuery(query): RawQuery,
    request_headers: HeaderMap,
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(query.as_deref());
    let target = resolve_target(&session, &pairs)?;
    let files = node_files(&session, target.node)?;
    let size = files
        .iter()
        .find(|f| f.relative == target.relative)
        .map(|f| f.size)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "A file is not found at: {} on node {}",
                target.relative, target.node
            ))
        })?;
    let key = log_key(&session, target.node, &target.relative)?;
    let lines: i64 = match query_get(&pairs, "lines") {
        Some(t) => t
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid lines {t:?}")))?,
        None => DEFAULT_LINES,
    };
    let download = query_get(&pairs, "download_filename")
        .map(str::to_string)
        .or_else(|| {
            truthy(query_get(&pairs, "download"), false).then(|| {
                target
                    .relative
                    .rsplit('/')
                    .next()
                    .unwrap_or("file.txt")
                    .to_string()
            })
        })
        .unwrap_or_else(|| "file.txt".to_string());
    let filter_ansi = truthy(query_get(&pairs, "filter_ansi_code"), false);
    let storage = &state.storage;
    // Ranges apply to stored bytes; a gzip log is served inflated, so ranges are ignored.
    let gz = target.relative.ends_with(".gz");
    let range = match request_headers.get(header::RANGE) {
        Some(h) if !gz => log_reader::parse_range(h.as_bytes(), size),
        _ => log_reader::RangeRequest::Ignore,
    };
    let range_len = match &range {
        log_reader::RangeRequest::Bytes(r) => Some(r.end - r.start),
        _ => None,
    };
    let (status, body, content_range): (StatusCode, Body, Option<String>) = match range {
        log_reader::RangeRequest::Unsatisfiable => {
            let mut refused = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("Range must be one byte range (bytes=a-b, a- or -n) within the {size} bytes of the file"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                refused.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(refused);
        }
        log_reader::RangeRequest::Bytes(range) => {
            let content_range = format!("bytes {}-{}/{size}", range.start, range.end - 1);
            let stream = stream_range(storage, &key, range).await?;
            (
                StatusCode::PARTIAL_CONTENT,
                filtered(stream, filter_ansi),
                Some(content_range),
            )
        }
        log_reader::RangeRequest::Ignore if gz => match usize::try_from(lines) {
            Ok(n) => {
                let data = log_reader::gunzip_tail(storage, &key, n).await?;
                (StatusCode::OK, bounded(data, filter_ansi), None)
            }
            Err(_) => {
                let stream = log_reader::gunzip_stream(storage.clone(), key);
                (StatusCode::OK, filtered(stream, filter_ansi), None)
            }
        },
        log_reader::RangeRequest::Ignore => {
            let (lo, hi) = target.window.unwrap_or((0, size));
            let window = lo.min(size)..hi.min(size);
            if target.after_marker {
                let data =
                    log_reader::after_last_marker(storage, &key, window, log_reader::TASK_MARKER)
                        .await?;
                let data = match usize::try_from(lines) {
                    Ok(n) => log_reader::keep_tail(data, n),
                    Err(_) => data,
                };
                (StatusCode::OK, bounded(data, filter_ansi), None)
            } else if let Ok(n) = usize::try_from(lines) {
                let data = log_reader::tail(storage, &key, window, n).await?;
                (StatusCode::OK, bounded(data, filter_ansi), None)
            } else if window.is_empty() {
                (StatusCode::OK, Body::empty(), None)
            } else {
                let stream = stream_range(storage, &key, window).await?;
                (StatusCode::OK, filtered(stream, filter_ansi), None)
            }
        }
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{download}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(cr) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::CONTENT_RANGE, cr);
    }
    // A streamed range has a known length (unless filtering changes it): clients can show
    // progress and tell a complete transfer from a cut one.
    if let (Some(len), false) = (range_len, filter_ansi) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Ok(response)
}

/// A byte range of a log, streamed from storage.
async fn stream_range(
    storage: &ray_history_storage::Storage,
    key: &object_store::path::Path,
    range: std::ops::Range<u64>,
) -> Result<BoxStream<'static, std::io::Result<Bytes>>, ApiError> {
    let (_, stream) = storage
        .get_stream(key, Some(range))
        .await
        .map_err(crate::Error::from)?;
    Ok(stream.map(|c| c.map_err(std::io::Error::other)).boxed())
}

/// A streamed body, without ANSI codes when asked.
fn filtered(stream: BoxStream<'static, std::io::Result<Bytes>>, filter_ansi: bool) -> Body {
    if !filter_ansi {
        return Body::from_stream(stream);
    }
    let state = (stream, Some(log_reader::AnsiFilter::default()));
    let body = futures::stream::unfold(state, |(mut stream, filter)| async move {
        let mut filter = filter?;
        match stream.next().await {
            Some(chunk) => {
                let out = chunk.map(|c| filter.feed(&c));
                Some((out, (stream, Some(filter))))
            }
            None => Some((Ok(filter.finish()), (stream, None))),
        }
    });
    Body::from_stream(body)
}

/// A buffered (bounded) body, without ANSI codes when asked.
fn bounded(data: Bytes, filter_ansi: bool) -> Body {
    if filter_ansi {
        Body::from(log_reader::AnsiFilter::filter(&data))
    } else {
        Body::from(data)
    }
}

/// `api/jobs/<id>/logs` (`ray job logs`): the whole driver log of a submitted job,
/// `job-driver-<submission id>.log` on the head node, as `{"logs": …}`; `<id>` is the
/// submission id or the job id. At most [`log_reader::MAX_TAIL_BYTES`] bytes, the end of the log
/// when it is longer.
async fn job_logs(
    Loaded(session): Loaded,
    axum::extract::Path(path): axum::extract::Path<BTreeMap<String, String>>,
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Response, ApiError> {
    let text = job_log_text(&session, &state, &path).await?;
    Ok(response::json(
        StatusCode::OK,
        &serde_json::json!({ "logs": text }),
    ))
}

/// `api/jobs/<id>/logs/tail` (`ray job logs --follow`): the websocket Ray's client reads until
/// it closes. A stored job has finished, so it gets the whole log in one message, then close.
async fn job_logs_tail(
    Loaded(session): Loaded,
    axum::extract::Path(path): axum::extract::Path<BTreeMap<String, String>>,
    axum::extract::State(state): axum::extract::State<AppState>,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let text = job_log_text(&session, &state, &path).await?;
    Ok(upgrade.on_upgrade(|mut socket| async move {
        use axum::extract::ws::{CloseFrame, Message, close_code};
        if !text.is_empty() {
            let _ = socket.send(Message::Text(text.into())).await;
        }
        // A normal close, answered by the client before the connection goes: Ray's client
        // treats anything else as a failure (close code 1006).
        let close = CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        };
        let _ = socket.send(Message::Close(Some(close))).await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while let Some(Ok(_)) = socket.recv().await {}
        })
        .await;
    }))
}

/// The last [`log_reader::MAX_TAIL_BYTES`] of a submitted job's driver log (empty when none).
async fn job_log_text(
    session: &LoadedSession,
    state: &AppState,
    path: &BTreeMap<String, String>,
) -> Result<String, ApiError> {
    let wanted = path.get("job_id").map(String::as_str).unwrap_or_default();
    let submission = super::views::all_jobs(session)
        .into_iter()
        .find(|(job_id, submission, _)| {
            submission == wanted || job_id.is_some_and(|id| id.hex() == wanted)
        })
        .map(|(_, submission, _)| submission)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::not_found(format!("Job {wanted} does not exist.")))?;
    let head = super::views::all_nodes(session)
        .into_iter()
        .find(|n| n.is_head)
        .ok_or_else(|| ApiError::not_found("the session has no head node"))?;
    let relative = format!("job-driver-{submission}.log");
    let text = match node_files(session, head.node_id)?
        .iter()
        .find(|f| f.relative == relative)
    {
        None => String::new(),
        Some(file) => {
            let key = log_key(session, head.node_id, &relative)?;
            let start = file.size.saturating_sub(log_reader::MAX_TAIL_BYTES);
            let bytes = state
                .storage
                .get_range(&key, start..file.size)
                .await
                .map_err(crate::Error::from)?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
    };
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(glob: &str) -> Vec<String> {
        let files: Vec<LogFile> = [
            "raylet.out",
            "worker-ab-01000000-7.out",
            "events/event_GCS.log",
            "events/event_RAYLET.log",
            "old/deep/gcs_server.out.1.gz",
        ]
        .iter()
        .map(|name| LogFile {
            relative: name.to_string(),
            size: 1,
        })
        .collect();
        list_glob(&files, glob).unwrap().into_iter().collect()
    }

    #[test]
    fn globs_select_one_folder_level_like_python_path_glob() {
        assert_eq!(
            listed("*"),
            ["events/", "old/", "raylet.out", "worker-ab-01000000-7.out"]
        );
        assert_eq!(
            listed("events/*"),
            ["events/event_GCS.log", "events/event_RAYLET.log"]
        );
        assert_eq!(listed("old/*"), ["old/deep/"]);
        assert_eq!(listed("*raylet*"), ["raylet.out"]);
        assert_eq!(listed("events/*GCS*"), ["events/event_GCS.log"]);
        assert_eq!(listed("**/*.gz"), ["old/deep/gcs_server.out.1.gz"]);
        assert!(listed("nothing/*").is_empty());
        assert!(list_glob(&[], "[").is_err());
    }
}
