//! Azure against real Azurite: every auth mode Azurite can serve, container creation and
//! refusal, and `check` succeeding and failing.

mod common;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path;
use ray_history_cli::{CheckCommand, StorageArgs};
use ray_history_storage::check::{self, PROBE_DIR};
use ray_history_storage::config::{EMULATOR_ACCOUNT, EMULATOR_KEY};
use ray_history_storage::retry::{Backoff, retry};
use ray_history_storage::{Error, Storage};
use ray_history_testkit::Azurite;

/// Settings for Azurite's container `container`, filled in by each test.
fn args(container: &str) -> StorageArgs {
    StorageArgs {
        storage: Some("azureblob".into()),
        azure_container: Some(container.into()),
        ..Default::default()
    }
}

async fn open(args: &StorageArgs) -> Storage {
    let config = args.resolve().expect("valid configuration");
    Storage::open(&config).await.expect("storage opens")
}

#[tokio::test]
async fn connection_string_with_account_key() {
    let azurite = Azurite::shared();
    let storage = open(&StorageArgs {
        azure_connection_string: Some(azurite.connection_string()),
        ..args("auth-cs-key")
    })
    .await;
    assert!(
        storage.describe().contains("(connection_string)"),
        "{}",
        storage.describe()
    );
    common::backend_suite(&storage).await;
}

#[tokio::test]
async fn account_name_key_and_endpoint() {
    let azurite = Azurite::shared();
    let storage = open(&StorageArgs {
        azure_account_name: Some(EMULATOR_ACCOUNT.into()),
        azure_account_key: Some(EMULATOR_KEY.into()),
        azure_endpoint: Some(azurite.endpoint()),
        ..args("auth-key")
    })
    .await;
    assert!(!storage.describe().contains(EMULATOR_KEY));
    common::backend_suite(&storage).await;
}

#[tokio::test]
async fn use_development_storage_with_the_emulator_port() {
    let azurite = Azurite::shared();
    // Azurite runs on a free port, so the endpoint replaces the implied 127.0.0.1:10000;
    // account and key come from UseDevelopmentStorage=true.
    let storage = open(&StorageArgs {
        azure_connection_string: Some("UseDevelopmentStorage=true".into()),
        azure_endpoint: Some(azurite.endpoint()),
        ..args("auth-devstorage")
    })
    .await;
    common::backend_suite(&storage).await;
}

#[tokio::test]
async fn sas_token_generated_in_the_test() {
    let azurite = Azurite::shared();
    let token = azurite.container_sas("auth-sas").await;
    assert!(token.contains("sig="));
    // No account name: it is taken from the (path-style) endpoint.
    let storage = open(&StorageArgs {
        azure_sas_token: Some(format!("?{token}")),
        azure_endpoint: Some(azurite.endpoint()),
        ..args("auth-sas")
    })
    .await;
    assert!(storage.describe().contains("(sas)"));
    common::backend_suite(&storage).await;

    // The same token in a connection string.
    let cs = format!(
        "BlobEndpoint={};SharedAccessSignature={token}",
        azurite.endpoint()
    );
    let storage = open(&StorageArgs {
        azure_connection_string: Some(cs),
        ..args("auth-sas")
    })
    .await;
    let key = Path::from("cs-sas/probe.txt");
    storage
        .put(&key, Bytes::from_static(b"via sas"))
        .await
        .unwrap();
    assert_eq!(&storage.get(&key).await.unwrap()[..], b"via sas");
    assert_eq!(
        storage
            .append(&Path::from("cs-sas/a.log"), 0, "x".into())
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn a_sas_without_write_permission_is_refused_with_a_reason() {
    let azurite = Azurite::shared();
    let token = azurite.container_sas_with("auth-sas-ro", "rl").await;
    let config = StorageArgs {
        azure_sas_token: Some(token.clone()),
        azure_endpoint: Some(azurite.endpoint()),
        ..args("auth-sas-ro")
    }
    .resolve()
    .unwrap();
    let err = check::run(&config).await.unwrap_err();
    assert!(!err.is_transient(), "403 is permanent: {err}");
    let err = err.to_string();
    assert!(err.starts_with("put .ray-history-check/"), "{err}");
    let sig = token.split('&').find(|p| p.starts_with("sig=")).unwrap();
    assert!(!err.contains(&sig[4..]), "signature leaked: {err}");
}

#[tokio::test]
async fn container_is_created_on_first_use() {
    let azurite = Azurite::shared();
    let name = format!("fresh-{:08x}", rand::random::<u32>());
    assert!(!azurite.container_exists(&name).await);
    let storage = Storage::open(&azurite.storage_config(&name)).await.unwrap();
    assert!(azurite.container_exists(&name).await);
    storage
        .put(&Path::from("a"), Bytes::from_static(b"1"))
        .await
        .unwrap();
    // Opening again finds it (no error on an existing container).
    let again = Storage::open(&azurite.storage_config(&name)).await.unwrap();
    assert_eq!(&again.get(&Path::from("a")).await.unwrap()[..], b"1");
}

#[tokio::test]
async fn missing_container_is_refused_when_creation_is_off() {
    let azurite = Azurite::shared();
    let name = format!("absent-{:08x}", rand::random::<u32>());
    let config = StorageArgs {
        azure_connection_string: Some(azurite.connection_string()),
        create_container: Some(false),
        ..args(&name)
    }
    .resolve()
    .unwrap();
    let err = Storage::open(&config).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("open: container {name} does not exist and STORAGE_CREATE_CONTAINER is false")
    );
    assert!(!err.is_transient());
    assert!(!azurite.container_exists(&name).await);
}

#[tokio::test]
async fn check_passes_against_azurite() {
    let azurite = Azurite::shared();
    let mut config = azurite.storage_config("check-ok");
    config.prefix = Some("team-a".into());
    let report = check::run(&config).await.unwrap();
    let names: Vec<_> = report.steps.iter().map(|s| s.name).collect();
    assert_eq!(names, ["open", "write", "read", "list", "delete"]);
    assert!(report.storage.contains("check-ok"));
    // The probe is gone afterwards.
    let storage = Storage::open(&config).await.unwrap();
    let left: Vec<_> =
        futures::TryStreamExt::try_collect::<Vec<_>>(storage.list(Some(&Path::from(PROBE_DIR))))
            .await
            .unwrap();
    assert!(left.is_empty(), "{left:?}");

    let command = CheckCommand {
        storage: StorageArgs {
            azure_connection_string: Some(azurite.connection_string()),
            ..args("check-cli")
        },
    };
    assert_eq!(command.execute().await, ExitCode::SUCCESS);
}

#[tokio::test]
async fn a_wrong_key_in_a_connection_string_fails_at_open() {
    let azurite = Azurite::shared();
    let cs = azurite.connection_string().replace(
        EMULATOR_KEY,
        "V3JvbmdXcm9uZ1dyb25nV3JvbmdXcm9uZ1dyb25nV3Jvbmc=",
    );
    let config = StorageArgs {
        azure_connection_string: Some(cs),
        ..args("check-wrong-key")
    }
    .resolve()
    .unwrap();
    let err = Storage::open(&config).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "open: HTTP 403 AuthorizationFailure (the credentials were refused)"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn check_fails_with_a_wrong_key() {
    let azurite = Azurite::shared();
    let wrong = "V3JvbmdXcm9uZ1dyb25nV3JvbmdXcm9uZ1dyb25nV3Jvbmc=";
    let command = CheckCommand {
        storage: StorageArgs {
            azure_account_name: Some(EMULATOR_ACCOUNT.into()),
            azure_account_key: Some(wrong.into()),
            azure_endpoint: Some(azurite.endpoint()),
            ..args("check-wrong-key")
        },
    };
    let config = command.storage.resolve().unwrap();
    let err = check::run(&config).await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("open: "), "{text}");
    assert!(text.contains("403"), "{text}");

    assert!(
        !text.contains(wrong) && !text.contains("V3Jvbmc"),
        "key leaked: {text}"
    );
    assert!(!text.contains('\n'));
    assert_eq!(command.execute().await, ExitCode::FAILURE);
}

#[tokio::test]
async fn check_fails_against_a_stopped_azurite_and_recovers() {
    let mut azurite = Azurite::start_on_disk();
    let config = azurite.storage_config("outage");
    let storage = Storage::open(&config).await.unwrap();
    let key = Path::from("kept.txt");
    storage
        .put(&key, Bytes::from_static(b"kept"))
        .await
        .unwrap();

    azurite.stop();
    let started = Instant::now();
    let err = check::run(&config).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().starts_with("open: "), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(
        storage.get(&key).await,
        Err(Error::Backend {
            transient: true,
            ..
        })
    ));
    let command = CheckCommand {
        storage: StorageArgs {
            azure_connection_string: Some(azurite.connection_string()),
            ..args("outage")
        },
    };
    assert_eq!(command.execute().await, ExitCode::FAILURE);

    azurite.start_again();
    check::run(&config).await.unwrap();
    assert_eq!(&storage.get(&key).await.unwrap()[..], b"kept");
}

#[tokio::test]
async fn retry_rides_out_an_azurite_outage() {
    let mut azurite = Azurite::start_on_disk();
    let storage = Storage::open(&azurite.storage_config("ride-out"))
        .await
        .unwrap();
    azurite.stop();
    // Storage comes back only once the first attempt has failed: the client's own short
    // retries may not decide the test, only `retry` can.
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = std::sync::Arc::clone(&attempts);
    let restart = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while seen.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "retry never tried again"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        azurite.start_again();
        azurite
    });
    let policy = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(1),
        max_elapsed: Some(Duration::from_secs(90)),
        ..Backoff::default()
    };
    let key = Path::from("log/appended.log");
    let size = retry(&policy, "append", || {
        attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        storage.append(&key, 0, Bytes::from_static(b"survived\n"))
    })
    .await
    .unwrap();
    assert_eq!(size, 9);
    assert_eq!(&storage.get(&key).await.unwrap()[..], b"survived\n");
    drop(restart.join().unwrap());
}
