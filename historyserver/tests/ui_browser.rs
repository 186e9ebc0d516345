//! The UI in a real browser: a real Ray 2.60 head runs the demo workload (tasks, a failing
//! task, an actor, a submitted job), the session is uploaded to storage and Ray is stopped;
//! then headless Chromium loads the built-in UI and Ray's own dashboard build from the history
//! server and the rendered DOM is checked. A screenshot of every page is saved under
//! `tests/artifacts/ui/` in the workspace.

mod support;
mod ui_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use ray_history_storage::{Storage, StorageConfig};
use ray_history_testkit::{RayHead, RayHeadOptions, tool, workspace_root};
use serde_json::Value;

const FAILURE: &str = "demo failure: boom() raised on purpose";
const JOB: &str = "ui-job";

/// Headless Chromium, one process per page: load, run the page for a while of virtual time
/// (which stands still while requests are in flight), then dump the DOM and a screenshot.
struct Browser {
    binary: PathBuf,
    profile: tempfile::TempDir,
    artifacts: PathBuf,
}

impl Browser {
    fn new() -> Self {
        let binary = ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|name| ui_common::which(name))
            .expect("no chromium found: run `apt-get update && apt-get install -y chromium`");
        let artifacts = workspace_root().join("tests/artifacts/ui");
        std::fs::create_dir_all(&artifacts).unwrap();
        Self {
            binary,
            profile: tempfile::tempdir().unwrap(),
            artifacts,
        }
    }

    /// The DOM of `url` once it has settled; the page is also saved as `<name>.png`.
    fn visit(&self, url: &str, name: &str, budget_ms: u32) -> String {
        let screenshot = self.artifacts.join(format!("{name}.png"));
        std::fs::remove_file(&screenshot).ok();
        let output = Command::new("timeout")
            .arg("120")
            .arg(&self.binary)
            .args(ui_common::CHROMIUM_ARGS)
            .arg("--hide-scrollbars")
            .arg(format!("--user-data-dir={}", self.profile.path().display()))
            .arg(format!("--virtual-time-budget={budget_ms}"))
            .arg(format!("--screenshot={}", screenshot.display()))
            .arg("--dump-dom")
            .arg(url)
            .output()
            .expect("cannot run chromium");
        assert!(
            output.status.success(),
            "chromium failed on {url}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(screenshot.is_file(), "no screenshot of {url}");
        String::from_utf8(output.stdout).unwrap()
    }
}

/// What the checks need from the Ray run.
struct Stored {
    session: String,
    node: String,
    /// A worker's stdout file and a line the workload printed into it.
    worker_out: (String, String),
}

/// Runs the demo workload on a real head, stops it and uploads the session dir.
fn run_ray_and_upload(rt: &tokio::runtime::Runtime, storage: &Storage) -> Stored {
    let workload = workspace_root().join("scripts/demo_workload.py");
    let mut head = RayHead::start(RayHeadOptions {
        // Export event files carry full task, actor and job records.
        env: vec![("RAY_enable_export_api_write".into(), "1".into())],
        ..Default::default()
    });
    let out = head.run_python(&std::fs::read_to_string(&workload).unwrap());
    assert!(
        out.status.success(),
        "workload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = tool("venv/bin/python");
    let job = head.submit_job(
        &format!("{} {} job", python.display(), workload.display()),
        JOB,
    );
    assert!(
        job.status.success(),
        "job failed: {}",
        String::from_utf8_lossy(&job.stderr)
    );
    let session_dir = head.session_dir();
    head.stop();

    let session = session_dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let node = support::head_node_id(&session_dir);
    let worker_out = find_worker_output(&session_dir.join("logs"));
    rt.block_on(support::upload_session(
        storage,
        &session_dir,
        &session,
        &node,
    ));
    Stored {
        session,
        node,
        worker_out,
    }
}

/// A `worker-*.out` file in which a `square` task printed, and that line.
fn find_worker_output(logs: &Path) -> (String, String) {
    std::fs::read_dir(logs)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            if !(name.starts_with("worker-") && name.ends_with(".out")) {
                return None;
            }
            let text = std::fs::read_to_string(e.path()).ok()?;
            let line = text.lines().find(|l| l.starts_with("square("))?.to_owned();
            Some((name, line))
        })
        .next()
        .expect("no worker stdout with the workload's output")
}

/// Strings Ray's dashboard shows when it failed to load something it reports (it stays
/// silent about many failures, so every page is also checked for the expected ids).
const RAY_ERRORS: &[&str] = &[
    "MuiAlert-standardError",
    "MuiAlert-filledError",
    "Request failed with status code",
    "Query Error",
    "Failed to load",
];

/// The text of a DOM dump without its tags (Ray's log viewer highlights numbers in spans).
fn text_of(dom: &str) -> String {
    let mut text = String::with_capacity(dom.len());
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

fn assert_no_ray_error(page: &str, dom: &str) {
    for marker in RAY_ERRORS {
        assert!(
            !dom.contains(marker),
            "{page}: Ray's dashboard shows {marker:?}"
        );
    }
}

#[test]
fn the_ui_and_rays_dashboard_show_a_stored_session() {
    let browser = Browser::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = rt
        .block_on(Storage::open(&StorageConfig::local(dir.path())))
        .unwrap();
    let stored = run_ray_and_upload(&rt, &storage);
    ui_common::add_old_sessions(&rt, &storage, 55);
    let base = ui_common::start_server(&rt, storage);
    let (ns, cluster, session) = (support::NAMESPACE, support::CLUSTER, &stored.session);
    let page = format!("{base}/#/s/{ns}/{cluster}/{session}");

    let dom = browser.visit(&format!("{base}/"), "sessions", 5000);
    assert!(
        dom.contains(session),
        "the sessions page does not list {session}"
    );
    assert!(dom.contains(cluster));
    assert!(dom.contains(">finished<"), "no finished badge");
    assert!(
        dom.contains("Sessions 1–50 of 56, newest first."),
        "no first page of 56"
    );
    let first: Value = rt
        .block_on(async {
            reqwest::get(format!("{base}/api/sessions?limit=50"))
                .await?
                .json()
                .await
        })
        .unwrap();
    let cursor = first["nextCursor"].as_str().expect("no next page");
    let dom = browser.visit(
        &format!("{base}/#/?cursor={cursor}&page=2"),
        "sessions-page-2",
        5000,
    );
    assert!(dom.contains("Sessions 51–56 of 56"), "no second page");
    assert!(
        !dom.contains(session),
        "the newest session is on page 2 too"
    );
    let dom = browser.visit(&format!("{base}/#/?q={session}"), "sessions-search", 5000);
    assert!(
        dom.contains("Sessions 1–1 of 1,") && dom.contains(session),
        "search failed"
    );
    let dom = browser.visit(
        &format!("{base}/#/?namespace=bulk&cluster=bulk-1"),
        "sessions-filtered",
        5000,
    );
    assert!(
        dom.contains("Sessions 1–11 of 11,"),
        "namespace and cluster filters failed"
    );

    let dom = browser.visit(&page, "session", 5000);
    assert!(
        dom.contains(FAILURE),
        "the session page does not show the failed task's error"
    );
    assert!(dom.contains("TASK_EXECUTION_EXCEPTION"));
    assert!(
        dom.contains(&stored.node),
        "the nodes table lacks the head node"
    );

    let dom = browser.visit(&format!("{page}/tasks"), "tasks", 5000);
    assert!(dom.contains(FAILURE));
    assert!(dom.contains("square") && dom.contains("Counter.incr"));

    let dom = browser.visit(&format!("{page}/jobs"), "jobs", 5000);
    assert!(dom.contains(JOB), "the jobs tab lacks the submitted job");
    assert!(
        dom.contains("demo_workload.py job"),
        "the jobs tab lacks the entrypoint"
    );

    let dom = browser.visit(&format!("{page}/events"), "events", 5000);
    assert!(
        dom.contains(&format!("Started a ray job {JOB}.")),
        "the events tab lacks the job's events"
    );

    let dom = browser.visit(&format!("{page}/actors"), "actors", 5000);
    assert!(dom.contains("demo_counter") && dom.contains("Counter"));

    let (file, line) = &stored.worker_out;
    let logs = format!("{page}/logs?node={}&file={file}", stored.node);
    let dom = browser.visit(&logs, "logs", 5000);
    assert!(
        dom.contains(line),
        "the log viewer does not show {line:?} of {file}"
    );
    assert!(
        dom.contains("Worker stdout"),
        "the file list has no worker stdout group"
    );

    // Ray's own dashboard, built for live clusters, on the stored session.
    let actors: Value = rt
        .block_on(async {
            reqwest::get(format!(
                "{base}/sessions/{ns}/{cluster}/{session}/logical/actors"
            ))
            .await?
            .json()
            .await
        })
        .unwrap();
    let counter = actors["data"]["actors"]
        .as_object()
        .unwrap()
        .values()
        .find(|a| a["className"] == "Counter")
        .expect("no Counter actor in logical/actors");
    let counter_id = counter["actorId"].as_str().unwrap();
    let ray = format!("{base}/sessions/{ns}/{cluster}/{session}/");
    let dom = browser.visit(&format!("{ray}#/overview"), "ray-overview", 10000);
    assert_no_ray_error("overview", &dom);
    assert!(dom.contains(JOB), "Ray's overview lacks the recent job");
    let dom = browser.visit(&format!("{ray}#/jobs"), "ray-jobs", 10000);
    assert_no_ray_error("jobs", &dom);
    // Ray shows no banner when its API calls fail: the page just keeps "Loading the job list".
    assert!(
        dom.contains("Request Status: Fetched jobs"),
        "Ray's jobs page did not load"
    );
    assert!(
        dom.contains(JOB) && dom.contains("01000000"),
        "Ray's jobs page lacks the jobs"
    );
    let dom = browser.visit(&format!("{ray}#/actors"), "ray-actors", 10000);
    assert_no_ray_error("actors", &dom);
    assert!(
        dom.contains(counter_id),
        "Ray's actors page lacks actor {counter_id}"
    );
    // The Cluster page does arithmetic on node samples: it renders blank on a wrong shape.
    let dom = browser.visit(&format!("{ray}#/cluster"), "ray-cluster", 10000);
    assert_no_ray_error("cluster", &dom);
    assert!(
        dom.contains(&stored.node),
        "Ray's cluster page lacks node {}",
        stored.node
    );
    let dom = browser.visit(
        &format!("{ray}#/cluster/nodes/{}", stored.node),
        "ray-node",
        10000,
    );
    assert_no_ray_error("node", &dom);
    assert!(
        dom.contains("Node Detail") && dom.contains(&stored.node),
        "Ray's node page did not render"
    );
    // The Logs page lists only ALIVE nodes; a stopped node with stored logs is shown to it.
    let dom = browser.visit(&format!("{ray}#/logs"), "ray-logs", 10000);
    assert_no_ray_error("logs", &dom);
    assert!(
        dom.contains(&format!("Node ID: {}", stored.node)),
        "Ray's logs page does not list node {}",
        stored.node
    );
    let node = &stored.node;
    let dom = browser.visit(
        &format!("{ray}#/logs?nodeId={node}&folder=events"),
        "ray-logs-folder",
        10000,
    );
    assert!(
        dom.contains("event_GCS.log"),
        "Ray's logs page does not browse the events folder"
    );
    let dom = browser.visit(
        &format!("{ray}#/logs/viewer?nodeId={node}&fileName={file}"),
        "ray-logs-viewer",
        10000,
    );
    assert_no_ray_error("log viewer", &dom);
    assert!(
        text_of(&dom).contains(line.as_str()),
        "Ray's log viewer does not show {line:?} of {file}"
    );
}
