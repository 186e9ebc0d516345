//! The built-in UI driven like a user would, in headless Chromium through chromedriver
//! (WebDriver is plain HTTP, spoken here with reqwest): with the keyboard only (`/` focuses
//! the search, typing and Enter filter the sessions, ArrowDown moves into the table, Enter
//! opens a session), and the log viewer of a live session following a growing file.

mod support;
mod ui_common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use ray_history_storage::layout::{ClusterRef, MetaRef, NodeId, SessionName};
use ray_history_storage::metadata::{NodeMetadata, NodeType};
use ray_history_storage::{Storage, StorageConfig};
use ray_history_testkit::free_port;
use serde_json::{Value, json};

const ENTER: &str = "\u{E007}";
const ARROW_DOWN: &str = "\u{E015}";

/// A chromedriver process, killed on drop.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// One WebDriver session.
struct Session {
    http: reqwest::Client,
    url: String,
}

impl Session {
    async fn start(port: u16, profile: &std::path::Path) -> Self {
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let profile = format!("--user-data-dir={}", profile.display());
        let args: Vec<&str> = ui_common::CHROMIUM_ARGS
            .into_iter()
            .chain([profile.as_str()])
            .collect();
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": args}}}});
        let deadline = Instant::now() + Duration::from_secs(30);
        let created = loop {
            match http
                .post(format!("{base}/session"))
                .json(&caps)
                .send()
                .await
            {
                Ok(resp) => break resp.json::<Value>().await.unwrap(),
                Err(e) if Instant::now() > deadline => panic!("chromedriver did not answer: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let id = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"));
        Self {
            http,
            url: format!("{base}/session/{id}"),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let req = self.http.request(method, format!("{}{path}", self.url));
        let req = if body.is_null() { req } else { req.json(&body) };
        let value: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(
            value["value"]["error"].is_null(),
            "WebDriver {path}: {value}"
        );
        value["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn current_url(&self) -> String {
        let url = self.call(reqwest::Method::GET, "/url", Value::Null).await;
        url.as_str().unwrap().to_owned()
    }

    /// Presses keys on whatever has the focus, as a user would.
    async fn keys(&self, text: &str) {
        let mut actions = Vec::new();
        for key in text.chars() {
            actions.push(json!({"type": "keyDown", "value": key.to_string()}));
            actions.push(json!({"type": "keyUp", "value": key.to_string()}));
        }
        let body = json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]});
        self.call(reqwest::Method::POST, "/actions", body).await;
    }

    /// Runs `script` in the page and returns its result.
    async fn eval(&self, script: &str) -> Value {
        let body = json!({"script": script, "args": []});
        self.call(reqwest::Method::POST, "/execute/sync", body)
            .await
    }

    /// Waits until `script` returns true.
    async fn wait_for(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.eval(script).await != Value::Bool(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn end(self) {
        self.call(reqwest::Method::DELETE, "", Value::Null).await;
    }
}

const LIVE_NODE: &str = "1234567890abcdef1234567890abcdef1234567890abcdef12345678";

/// A running session (fresh heartbeat) whose head node has a `raylet.out` with `log`.
async fn add_live_session(storage: &Storage, log: &str) -> String {
    let cluster = ClusterRef::new("live-cluster", "local").unwrap();
    let meta_ref = MetaRef::new("live", "live-cluster").unwrap();
    let session = SessionName::new("session_2099-01-01_00-00-00_000000_1").unwrap();
    let node = NodeId::new(LIVE_NODE).unwrap();
    let now = Utc::now();
    let meta = support::session_metadata(&meta_ref, &cluster, &session, Some(&node), now, None);
    let node_doc = NodeMetadata {
        node_id: node.clone(),
        node_type: NodeType::Head,
        pod_name: Some("live-cluster-head".into()),
        node_ip: Some("10.0.0.1".into()),
        start_time: now,
        last_heartbeat: now,
        end_time: None,
    };
    let meta_doc = serde_json::to_vec(&meta).unwrap();
    storage
        .put(&meta_ref.metadata(&session), meta_doc.into())
        .await
        .unwrap();
    let node_json = serde_json::to_vec(&node_doc).unwrap();
    storage
        .put(&meta_ref.node(&session, &node), node_json.into())
        .await
        .unwrap();
    write_raylet_log(storage, log).await;
    format!("#/s/live/live-cluster/{session}")
}

async fn write_raylet_log(storage: &Storage, log: &str) {
    let cluster = ClusterRef::new("live-cluster", "local").unwrap();
    let session = SessionName::new("session_2099-01-01_00-00-00_000000_1").unwrap();
    let key = cluster
        .log_file(&session, &NodeId::new(LIVE_NODE).unwrap(), "raylet.out")
        .unwrap();
    storage
        .put(&key, log.as_bytes().to_vec().into())
        .await
        .unwrap();
}

const ROWS: &str = "document.querySelectorAll('tbody tr[data-href]').length";

#[test]
fn keyboard_navigation_and_live_log_following() {
    let chromedriver = ui_common::which("chromedriver")
        .expect("no chromedriver: run `apt-get update && apt-get install -y chromium-driver`");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = rt
        .block_on(Storage::open(&StorageConfig::local(dir.path())))
        .unwrap();
    ui_common::add_old_sessions(&rt, &storage, 20);
    let live = rt.block_on(add_live_session(&storage, "first line\n"));
    let base = ui_common::start_server(&rt, storage.clone());
    let port = free_port();
    let _driver = Driver(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start chromedriver"),
    );
    let profile = tempfile::tempdir().unwrap();

    rt.block_on(async {
        let browser = Session::start(port, profile.path()).await;
        browser.goto(&format!("{base}/")).await;
        browser.wait_for("21 sessions", &format!("return {ROWS} === 21")).await;
        let badge = browser.eval("return document.querySelector('tbody tr .badge').textContent").await;
        assert_eq!(badge, "live", "the running session is not first with a live badge");

        // Every ES module loaded from below the one version segment the page's entry names.
        let entry = browser
            .eval("return new URL(document.querySelector('script[type=module]').src).pathname")
            .await;
        let dir = entry.as_str().and_then(|e| e.strip_suffix("app.js")).expect("no app.js module");
        let modules = browser
            .eval("return performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname).filter((p) => p.endsWith('.js'))")
            .await;
        let modules: Vec<&str> = modules.as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(modules.iter().all(|m| m.starts_with(dir)), "{modules:?} outside {dir}");
        assert!(modules.contains(&format!("{dir}views/logs.js").as_str()), "{modules:?}");

        browser.keys("/").await;
        let focused = browser.eval("return document.activeElement.id").await;
        assert_eq!(focused, "search", "`/` does not focus the search box");

        browser.keys(&format!("bulk-3{ENTER}")).await;
        browser.wait_for("4 sessions of bulk-3", &format!("return {ROWS} === 4")).await;
        assert!(browser.current_url().await.contains("q=bulk-3"), "the search is not in the URL");

        browser.keys(ARROW_DOWN).await;
        browser.keys(ARROW_DOWN).await;
        let row = browser
            .eval("return document.activeElement.matches('tbody tr[data-href]') && document.activeElement.dataset.href")
            .await;
        let href = row.as_str().expect("ArrowDown does not move into the table").to_owned();
        let second = browser
            .eval("return document.querySelectorAll('tbody tr[data-href]')[1].dataset.href")
            .await;
        assert_eq!(row, second, "ArrowDown twice is not on the second row");

        browser.keys(ENTER).await;
        browser
            .wait_for("the session page", "return !!document.querySelector('.tabs')")
            .await;
        let url = browser.current_url().await;
        assert!(url.ends_with(&href), "Enter opened {url}, not {href}");
        assert!(href.starts_with("#/s/bulk/bulk-3/session_"), "{href}");

        // A live session's log follows the file as it grows.
        let logs = format!("{base}/{live}/logs?node={LIVE_NODE}&file=raylet.out");
        browser.goto(&logs).await;
        let log_has = |text: &str| {
            format!("const pre = document.querySelector('pre.log'); return !!pre && pre.textContent.includes({text:?})")
        };
        browser.wait_for("the log", &log_has("first line")).await;
        let follow = browser
            .eval("const box = document.querySelector('.viewer-bar input[type=checkbox]'); return !!box && box.checked")
            .await;
        assert_eq!(follow, Value::Bool(true), "follow is not on for a live session");
        write_raylet_log(&storage, "first line\nappended while watching\n").await;
        browser.wait_for("the appended line", &log_has("appended while watching")).await;
        let numbers = browser.eval("return document.querySelectorAll('pre.log span').length").await;
        assert_eq!(numbers, 2, "one numbered line per log line");
        browser.end().await;
    });
}
