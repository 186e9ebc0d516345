//! The collector's crash test, run on every backend with appends (Azurite) and without
//! (S3): files written, rotated and renamed while the collector is SIGKILLed at random moments.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rand::Rng;

use super::*;

/// Appends unique lines to `files` files under `logs` until stopped, rotating `raylet.out`
/// like Ray does (backup count 2) every `rotate_every` lines when set.
pub struct Writer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    /// (when, length of `stream-0.log`) after each write.
    history: Arc<Mutex<Vec<(Instant, u64)>>>,
}

impl Writer {
    pub fn start(
        logs: PathBuf,
        files: usize,
        pause: Duration,
        rotate_every: Option<u64>,
    ) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let history = Arc::new(Mutex::new(Vec::new()));
        let (flag, hist) = (Arc::clone(&stop), Arc::clone(&history));
        let handle = std::thread::spawn(move || {
            let mut rng = rand::rng();
            let mut line = 0u64;
            let mut len0 = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let file = rng.random_range(0..files);
                let sub = if file % 3 == 1 { "events/" } else { "" };
                let text = format!("{line:08} {}\n", "x".repeat(rng.random_range(0..200)));
                append(
                    &logs.join(format!("{sub}stream-{file}.log")),
                    text.as_bytes(),
                );
                if file == 0 {
                    len0 += text.len() as u64;
                    hist.lock().unwrap().push((Instant::now(), len0));
                }
                append(
                    &logs.join("raylet.out"),
                    format!("raylet {line}\n").as_bytes(),
                );
                if rotate_every.is_some_and(|every| line % every == every - 1) {
                    let _ = std::fs::remove_file(logs.join("raylet.out.2"));
                    let _ = std::fs::rename(logs.join("raylet.out.1"), logs.join("raylet.out.2"));
                    std::fs::rename(logs.join("raylet.out"), logs.join("raylet.out.1")).unwrap();
                }
                line += 1;
                std::thread::sleep(pause);
            }
        });
        Writer {
            stop,
            handle: Some(handle),
            history,
        }
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap();
    }

    /// Length of `stream-0.log` at `when`.
    pub fn len_at(&self, when: Instant) -> u64 {
        let history = self.history.lock().unwrap();
        history
            .iter()
            .take_while(|(t, _)| *t <= when)
            .last()
            .map_or(0, |(_, len)| *len)
    }
}

/// Six collector runs killed at random moments while a writer writes and rotates, then one
/// that catches up: every file byte-identical, and no raylet line in two objects.
pub async fn sigkill_at_random_moments(target: &Target) {
    let ray = FakeRay::new();
    let writer = Writer::start(ray.logs(), 12, Duration::from_millis(3), Some(400));
    let mut rng = rand::rng();
    for round in 0..6 {
        let collector = Collector::start(ray.root.path(), target, &[]);
        let alive = Duration::from_millis(rng.random_range(300..2500));
        tokio::time::sleep(alive).await;
        collector.kill();
        eprintln!("round {round}: killed after {alive:?}");
    }
    writer.stop();
    let mut collector = Collector::start(ray.root.path(), target, &[]);
    collector.wait_ready().await;
    wait_mirrored(&target.storage, &ray.logs(), Duration::from_secs(60)).await;
    collector.terminate(Duration::from_secs(20));
    // Byte-identical: lines are unique, so a duplicated range would show as a difference.
    assert_eq!(
        differences(&target.storage, &ray.logs(), log_key).await,
        Vec::<String>::new()
    );
    // Generations Ray deleted are kept under spare names, each once: no raylet line is in two
    // objects (one may be missing, if Ray deleted its generation while no collector ran).
    let prefix = cluster().node_logs_prefix(&session(), &node());
    let objects: Vec<_> = target
        .storage
        .list(Some(&prefix))
        .try_collect()
        .await
        .unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for object in objects {
        let name = object.location.filename().unwrap().to_string();
        if !name.starts_with("raylet.out") {
            continue;
        }
        let bytes = target.storage.get(&object.location).await.unwrap();
        for line in String::from_utf8_lossy(&bytes).lines() {
            if let Some(first) = seen.insert(line.to_string(), name.clone()) {
                panic!("{line:?} is in {first} and in {name}");
            }
        }
    }
}
