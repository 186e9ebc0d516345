//! The test harness itself: a real Ray head started from the project's venv answers its
//! dashboard, runs drivers and jobs, writes its session dir, and stops by PID.

use std::time::{Duration, Instant};

use ray_history_testkit::{RayHead, RayHeadOptions, tools_dir};

#[test]
fn ray_head_runs_drivers_and_jobs_and_stops() {
    let mut head = RayHead::start(RayHeadOptions {
        env: vec![("RAY_enable_export_api_write".into(), "1".into())],
        ..Default::default()
    });
    assert!(head.temp_dir().starts_with("/tmp"));
    let session = head.session_dir();
    let name = session.file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.starts_with("session_"), "{name}");
    assert!(session.join("logs").is_dir());
    let node_id_files = std::fs::read_dir(&session)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("gcs_server_port_")
        })
        .count();
    assert_eq!(
        node_id_files, 1,
        "the head writes gcs_server_port_<node-id>"
    );

    let output = head.run_python(
        "import ray\nray.init()\n@ray.remote\ndef f(x):\n    return x * 2\nprint('RESULT', ray.get(f.remote(21)))\n",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("RESULT 42"), "{stdout}");

    let job = head.submit_job("python -c \"print('job says hi')\"", "harness-job-1");
    let job_out = String::from_utf8_lossy(&job.stdout);
    assert!(
        job.status.success(),
        "{job_out}\n{}",
        String::from_utf8_lossy(&job.stderr)
    );
    assert!(job_out.contains("job says hi"), "{job_out}");

    // Export events are on (the env reached the head).
    let export = session.join("logs/export_events");
    assert!(export.is_dir(), "{} missing", export.display());

    let started = Instant::now();
    head.stop();
    assert!(started.elapsed() < Duration::from_secs(70));
    let gcs = head.gcs_address();
    let port: u16 = gcs.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "GCS still answers after stop"
    );
}

#[test]
fn tools_dir_points_at_the_workspace_tools() {
    let dir = tools_dir();
    assert!(
        dir.join("azurite/node_modules/.bin/azurite-blob").exists(),
        "{} has no Azurite: run `make tools`",
        dir.display()
    );
}
