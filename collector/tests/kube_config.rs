//! The ConfigMap as users write it (`kubectl create configmap collector-config
//! --from-literal=storage=azureblob …`), handed to the collector in each form Kubernetes has:
//! `envFrom` (lowercase variables) and a mounted volume (one file per key). The pods are stored
//! by a real API server; the collector then runs `check` against Azurite with exactly the
//! environment and files a kubelet would give it for those stored pods.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use ray_history_testkit::kube::assert_success;
use ray_history_testkit::{Azurite, ControlPlane};
use serde_json::Value;

const NS: &str = "collector-config";

fn get_json(cp: &ControlPlane, args: &[&str]) -> Value {
    let mut all = vec!["get", "-o", "json", "-n", NS];
    all.extend_from_slice(args);
    serde_json::from_str(&cp.kubectl_ok(&all)).unwrap()
}

/// The data of a ConfigMap or (decoded) Secret as the kubelet reads it.
fn data_of(cp: &ControlPlane, kind: &str, name: &str) -> BTreeMap<String, String> {
    let object = get_json(cp, &[kind, name]);
    let decode = kind == "secret";
    object["data"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = v.as_str().unwrap();
                    let v = if decode {
                        String::from_utf8(
                            base64::engine::general_purpose::STANDARD.decode(v).unwrap(),
                        )
                        .unwrap()
                    } else {
                        v.to_string()
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What the kubelet does for a stored container: its `env` (plain values only) and `envFrom`
/// (ConfigMaps and Secrets read from the API server), and each ConfigMap volume laid out like a
/// kubelet mount (timestamped dir, `..data` link, one link per key) under `mounts`.
fn kubelet_env(
    cp: &ControlPlane,
    pod: &Value,
    mounts: &Path,
) -> (
    BTreeMap<String, String>,
    BTreeMap<String, std::path::PathBuf>,
) {
    let container = &pod["spec"]["containers"][0];
    let mut env = BTreeMap::new();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        if let Some(name) = from["configMapRef"]["name"].as_str() {
            env.extend(data_of(cp, "configmap", name));
        }
        if let Some(name) = from["secretRef"]["name"].as_str() {
            env.extend(data_of(cp, "secret", name));
        }
    }
    for var in container["env"].as_array().into_iter().flatten() {
        if let Some(value) = var["value"].as_str() {
            env.insert(var["name"].as_str().unwrap().to_string(), value.to_string());
        }
    }
    let mut mounted = BTreeMap::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let volume = pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        let Some(config_map) = volume["configMap"]["name"].as_str() else {
            continue;
        };
        let dir = mounts.join(volume["name"].as_str().unwrap());
        let data = dir.join("..2026_12_01_00_00_00.000000001");
        std::fs::create_dir_all(&data).unwrap();
        let keys = data_of(cp, "configmap", config_map);
        for (key, value) in &keys {
            std::fs::write(data.join(key), value).unwrap();
        }
        std::os::unix::fs::symlink(data.file_name().unwrap(), dir.join("..data")).unwrap();
        for key in keys.keys() {
            std::os::unix::fs::symlink(format!("..data/{key}"), dir.join(key)).unwrap();
        }
        mounted.insert(mount["mountPath"].as_str().unwrap().to_string(), dir);
    }
    (env, mounted)
}

fn collector_check(env: &BTreeMap<String, String>, config: Option<&Path>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ray-history-collector"));
    command.arg("check").env_clear().envs(env);
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    if let Some(dir) = config {
        command.env("RAY_HISTORY_CONFIG", dir);
    }
    command.output().expect("run the collector")
}

#[test]
fn every_form_of_the_users_configmap_reaches_the_collector() {
    let cp = ControlPlane::shared();
    let azurite = Azurite::shared();
    cp.kubectl_ok(&["create", "namespace", NS]);
    // As the Azure backend README tells users to create them.
    cp.kubectl_ok(&[
        "create",
        "configmap",
        "collector-config",
        "-n",
        NS,
        "--from-literal=storage=azureblob",
        "--from-literal=azure_storage_container=from-configmap",
    ]);
    cp.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "azure-credentials",
        "-n",
        NS,
        &format!(
            "--from-literal=AZURE_STORAGE_CONNECTION_STRING={}",
            azurite.connection_string()
        ),
    ]);
    let pod = |name: &str, spec: &str| {
        cp.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n{spec}"
        ))
    };
    pod(
        "env-from",
        "  containers:\n  - name: collector\n    image: ray-history-collector\n    envFrom:\n    \
         - configMapRef: {name: collector-config}\n    - secretRef: {name: azure-credentials}\n",
    );
    pod(
        "volume",
        "  containers:\n  - name: collector\n    image: ray-history-collector\n    envFrom:\n    \
         - secretRef: {name: azure-credentials}\n    volumeMounts:\n    \
         - {name: config, mountPath: /etc/ray-history, readOnly: true}\n  volumes:\n  \
         - name: config\n    configMap: {name: collector-config}\n",
    );

    let mounts = cp.scratch().join("collector-config-mounts");
    // envFrom: the variables arrive lowercase (`storage`, `azure_storage_container`).
    let stored = get_json(cp, &["pod", "env-from"]);
    let (env, _) = kubelet_env(cp, &stored, &mounts.join("env-from"));
    assert_eq!(env.get("storage").map(String::as_str), Some("azureblob"));
    let out = collector_check(&env, None);
    assert_success(&out, "collector check with envFrom");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("from-configmap")
            || String::from_utf8_lossy(&out.stderr).contains("from-configmap"),
        "the container came from the ConfigMap: {out:?}"
    );

    // Volume: a directory with one file per key at /etc/ray-history.
    let stored = get_json(cp, &["pod", "volume"]);
    let (env, mounted) = kubelet_env(cp, &stored, &mounts.join("volume"));
    let dir = &mounted["/etc/ray-history"];
    let out = collector_check(&env, Some(dir));
    assert_success(&out, "collector check with a mounted ConfigMap");

    // The stored objects are what the collector reads: a wrong key is named.
    cp.kubectl_ok(&[
        "create",
        "configmap",
        "typo",
        "-n",
        NS,
        "--from-literal=storag=azureblob",
    ]);
    let typo_dir = mounts.join("typo");
    std::fs::create_dir_all(&typo_dir).unwrap();
    std::fs::write(typo_dir.join("storag"), "azureblob").unwrap();
    let out = collector_check(&env, Some(&typo_dir));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("storag: unknown setting"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("Eby8vdM02xNOcqFlqUwJPLlm"), "{stderr}");
}
