//! The install path on a real control plane (`scripts/kube/up.sh`: etcd, kube-apiserver with
//! RBAC, PodSecurity and admission webhooks, the controller manager's garbage collector, the
//! scheduler, kwok's fake node, KubeRay's own operator):
//! - the chart installs with Helm v4 (`--wait`), upgrades as a no-op and uninstalls cleanly,
//!   binding its server-auth ClusterRole to exactly the history servers that need it;
//! - the operator runs out of cluster with a token of the chart's own ServiceAccount, which is
//!   enough for everything and no more;
//! - `HistoryStorage` reaches Ready against Azurite, and says why when it cannot;
//! - KubeRay's pods get the collector from our webhook, called by the real API server;
//! - `HistoryServer` objects are owned and garbage-collected; auth mode kubernetes reaches the
//!   Deployment, and the status says whether the server's account may review tokens;
//! - with the operator stopped, KubeRay's pods are still created, without the collector.
//!
//! Over 600 lines: one suite, whose tests share one started control plane and chart install.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use ray_history_testkit::kube::assert_success;
use ray_history_testkit::{Azurite, ControlPlane, Group, Signal, free_port, workspace_root};
use serde_json::Value;

/// Namespace of the chart release the operator runs with.
const SYSTEM_NS: &str = "ray-history";
/// Release name (the chart's fullname is the release name).
const RELEASE: &str = "ray-history";
/// The main Ray namespace of the real-API-server test.
const RAY_NS: &str = "rh-ray";
/// Where the chart lets the operator read Secrets in that test (not `rh-bystander`).
const SECRET_NAMESPACES: [&str; 3] = [RAY_NS, "rh-restricted", "rh-plain"];

/// Held by the tests that must not overlap: the real-API-server test's operator reconciles
/// every namespace, so it would mark the full-values chart's HistoryStorage not ready (it may
/// not read that Secret) in the middle of that test's `helm upgrade --wait`.
static CLUSTER_WIDE_OPERATOR: Mutex<()> = Mutex::new(());

/// Takes [`CLUSTER_WIDE_OPERATOR`] (a test that failed holding it does not fail the others).
fn alone_with_the_cluster() -> std::sync::MutexGuard<'static, ()> {
    CLUSTER_WIDE_OPERATOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn cp() -> &'static ControlPlane {
    ControlPlane::shared()
}

fn get_json(args: &[&str]) -> Value {
    let mut all = vec!["get", "-o", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&cp().kubectl_ok(&all)).expect("kubectl JSON")
}

fn try_get_json(args: &[&str]) -> Option<Value> {
    let mut all = vec!["get", "-o", "json"];
    all.extend_from_slice(args);
    let out = cp().kubectl().args(&all).output().expect("kubectl");
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("kubectl JSON"))
}

/// Runs tests/support/helm.py (helm-sdkpy, the real Helm v4 library) as admin.
fn helm(namespace: &str, release: &str, action: &str, values: Option<&Path>) -> Value {
    let mut command = support::python_command();
    command
        .arg(support::support_file("helm.py"))
        .arg(cp().kubeconfig())
        .args([namespace, release, action]);
    if action != "uninstall" {
        command.arg(support::chart_dir());
    }
    if let Some(values) = values {
        command.arg(values);
    }
    let out = command.output().expect("run helm.py");
    assert_success(&out, &format!("helm {action} {release}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap_or(Value::Null)
}

/// Every namespaced and cluster-scoped object carrying the release's instance label, as
/// `kind/namespace/name resourceVersion` lines.
fn release_objects(release: &str) -> Vec<String> {
    install_cert_manager_crds();
    let kinds = "deployments,services,serviceaccounts,configmaps,secrets,roles,rolebindings,\
                 clusterroles,clusterrolebindings,mutatingwebhookconfigurations,\
                 historystorages.rayhistory.io,historyservers.rayhistory.io,\
                 issuers.cert-manager.io,certificates.cert-manager.io,networkpolicies";
    let list = get_json(&[
        kinds,
        "-A",
        "-l",
        &format!("app.kubernetes.io/instance={release}"),
    ]);
    let mut out: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}/{}/{} {}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["namespace"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap(),
                o["metadata"]["resourceVersion"].as_str().unwrap()
            )
        })
        .collect();
    out.sort();
    out
}

/// The chart's `ray-history.fullname` for a release.
fn fullname(release: &str) -> String {
    if release.contains("ray-history") {
        release.to_string()
    } else {
        format!("{release}-ray-history")
    }
}

fn install_cert_manager_crds() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let dir = ray_history_testkit::tool("kube/cert-manager-crds");
        cp().kubectl_ok(&["apply", "--server-side", "-f", dir.to_str().unwrap()]);
        cp().kubectl_ok(&[
            "wait",
            "--for",
            "condition=Established",
            "crd/certificates.cert-manager.io",
            "crd/issuers.cert-manager.io",
        ]);
    });
}

fn check_install_upgrade_uninstall(
    release: &str,
    namespace: &str,
    values: Option<&Path>,
    check_installed: impl Fn(),
) {
    helm(namespace, release, "install", values);
    check_installed();
    let installed = release_objects(release);
    assert!(
        installed
            .iter()
            .any(|o| o.starts_with("Deployment/") && o.contains(release)),
        "{installed:#?}"
    );
    // --wait returned, so kwok made the operator's pods Ready; the API server agrees.
    let deployment = get_json(&["deployment", &fullname(release), "-n", namespace]);
    assert_eq!(
        deployment["status"]["readyReplicas"], deployment["spec"]["replicas"],
        "{deployment}"
    );

    helm(namespace, release, "upgrade", values);
    assert_eq!(
        release_objects(release),
        installed,
        "an upgrade to the same chart changes nothing"
    );

    helm(namespace, release, "uninstall", None);
    assert_eq!(
        release_objects(release),
        Vec::<String>::new(),
        "uninstall leaves nothing of ours but the CRDs"
    );
    cp().kubectl_ok(&["get", "crd", "historystorages.rayhistory.io"]);
}

#[test]
fn chart_installs_upgrades_and_uninstalls_with_default_values() {
    check_install_upgrade_uninstall("rh-defaults", "rh-defaults", None, || {
        assert!(
            !can_i_as("system:serviceaccount:rh-defaults:history", "tokenreviews"),
            "no server account is bound by default"
        );
    });
}

#[test]
fn chart_installs_upgrades_and_uninstalls_with_every_option() {
    let _alone = alone_with_the_cluster();
    install_cert_manager_crds();
    // ci/full-values.yaml with its Ray namespace moved to one of this test's own.
    let path = support::chart_dir().join("ci/full-values.yaml");
    let mut values: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for part in ["historyStorage", "historyServer"] {
        values[part]["namespace"] = "rh-full-ray".into();
    }
    values["rbac"]["secretNamespaces"] = serde_yaml_ng::Value::Sequence(vec!["rh-full-ray".into()]);
    cp().kubectl_ok(&["create", "namespace", "rh-full-ray"]);
    let file = cp().scratch().join("full-values.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&values).unwrap()).unwrap();
    check_install_upgrade_uninstall("rh-full", "rh-full", Some(&file), || {
        // The chart's HistoryServer (auth mode kubernetes) and the listed account may review
        // tokens and access; others may not.
        for user in [
            "system:serviceaccount:rh-full-ray:history",
            "system:serviceaccount:team-a:history",
        ] {
            for resource in ["tokenreviews", "subjectaccessreviews"] {
                assert!(can_i_as(user, resource), "{user} may create {resource}");
            }
        }
        assert!(!can_i_as(
            "system:serviceaccount:rh-full-ray:other",
            "tokenreviews"
        ));
    });
}

/// Whether `user` may create `resource` (cluster-wide), by the API server's own RBAC.
fn can_i_as(user: &str, resource: &str) -> bool {
    let out = cp()
        .kubectl()
        .args(["auth", "can-i", "create", resource, "--as", user])
        .output()
        .expect("kubectl auth can-i");
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

/// The chart installed as `ray-history` and our operator running out of cluster with the
/// chart's ServiceAccount token, serving the webhook at a loopback URL.
struct Installed {
    token: String,
    kubeconfig: PathBuf,
}

fn installed() -> &'static Installed {
    static INSTALLED: OnceLock<Installed> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // The chart's operator Deployment runs on kwok (no real process); the real operator is
        // ours, out of cluster, with the Deployment's own identity.
        // The operator reads Secrets only in the Ray namespaces the test uses.
        for ns in SECRET_NAMESPACES {
            namespace(ns, &[]);
        }
        let values = cp().scratch().join("install-values.yaml");
        let listed = SECRET_NAMESPACES.join(", ");
        std::fs::write(&values, format!("rbac:\n  secretNamespaces: [{listed}]\n")).unwrap();
        helm(SYSTEM_NS, RELEASE, "install", Some(&values));
        let token = cp().service_account_token(SYSTEM_NS, RELEASE);
        let kubeconfig = cp().token_kubeconfig("operator", &token);
        Installed { token, kubeconfig }
    })
}

/// Our operator, out of cluster; stopped when dropped.
struct Operator {
    process: Group,
    metrics_port: u16,
    webhook_url: String,
}

impl Operator {
    fn start(name: &str) -> Self {
        let installed = installed();
        let metrics_port = free_port();
        let webhook_port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_ray-history-operator"));
        command
            .arg("run")
            .env("KUBECONFIG", &installed.kubeconfig)
            .env("POD_NAMESPACE", SYSTEM_NS)
            .env("POD_NAME", name)
            .env("WEBHOOK_CONFIGURATION", RELEASE)
            .env("WEBHOOK_SECRET", format!("{RELEASE}-webhook-tls"))
            .env("LEASE_NAME", RELEASE)
            .env("LEASE_DURATION", "6s")
            .env("METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
            .env("WEBHOOK_URL", format!("https://127.0.0.1:{webhook_port}"))
            .env("PROBE_TIMEOUT", "5s")
            .env("ALLOWED_ENDPOINTS", "127.0.0.1")
            .env("RETRY_INTERVAL", "2s")
            .env("RUST_LOG", "info,ray_history_operator=debug");
        let log = cp().scratch().join(format!("operator-{name}.log"));
        let process = Group::spawn(
            command,
            &log,
            Signal::SIGTERM,
            Duration::from_secs(5),
            &cp().scratch().join("nothing-to-clean"),
        );
        let mut operator = Self {
            process,
            metrics_port,
            webhook_url: format!("https://127.0.0.1:{webhook_port}/mutate"),
        };
        operator.wait_ready();
        operator
    }

    fn wait_ready(&mut self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.metrics_port);
        for _ in 0..300 {
            assert!(
                self.process.running(),
                "operator exited:\n{}",
                self.process.log_tail(4000)
            );
            let ready = Command::new("curl")
                .args(["-sf", "-o", "/dev/null", &url])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("operator not ready:\n{}", self.process.log_tail(4000));
    }

    fn stop(mut self) {
        self.process.signal_leader(Signal::SIGTERM);
        if !self.process.wait_for_exit(Duration::from_secs(10)) {
            self.process.kill();
        }
        std::mem::forget(self);
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.process.kill();
    }
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<(&'a str, &'a str)> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or(""),
                c["reason"].as_str().unwrap_or(""),
            )
        })
}

fn wait_condition(namespace: &str, name: &str, type_: &str, status: &str) -> Value {
    cp().eventually(
        &format!("HistoryStorage {namespace}/{name} {type_}={status}"),
        Duration::from_secs(60),
        || {
            let hs = try_get_json(&["historystorage", name, "-n", namespace])?;
            (condition(&hs["status"], type_).map(|c| c.0) == Some(status)).then_some(hs)
        },
    )
}

fn history_storage(namespace: &str, name: &str, secret: &str, inject: bool) -> String {
    format!(
        r#"apiVersion: rayhistory.io/v1alpha1
kind: HistoryStorage
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  storage: azureblob
  azureblob: {{container: {namespace}, createContainer: true}}
  credentialsSecretRef:
    name: {secret}
    keys: {{connectionString: connectionString}}
  collector: {{inject: {inject}, events: files, flushInterval: 1s, terminationGracePeriodSeconds: 45}}
"#
    )
}

fn azure_secret(namespace: &str, name: &str, azurite: &Azurite) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         stringData:\n  connectionString: \"{}\"\n",
        azurite.connection_string()
    )
}

fn namespace(name: &str, labels: &[(&str, &str)]) {
    let labels: String = labels
        .iter()
        .map(|(k, v)| format!("\n    {k}: \"{v}\""))
        .collect();
    cp().apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:{}\n",
        if labels.is_empty() {
            " {}".to_string()
        } else {
            labels
        }
    ));
}

/// `can-i` as the operator's ServiceAccount token.
fn operator_can(verb: &str, resource: &str, namespace: &str) -> bool {
    let out = cp()
        .kubectl_as(&installed().kubeconfig)
        .args(["auth", "can-i", verb, resource, "-n", namespace])
        .output()
        .expect("kubectl auth can-i");
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

fn pods(namespace: &str, selector: &str) -> Vec<Value> {
    get_json(&["pods", "-n", namespace, "-l", selector])["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn collector_of(pod: &Value) -> Option<&Value> {
    pod["spec"]["initContainers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "ray-history-collector")
}

fn env_of<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

/// `config/raycluster.yaml` in `namespace` under `name`.
fn sample_raycluster(namespace: &str, name: &str) -> String {
    let text = std::fs::read_to_string(workspace_root().join("config/raycluster.yaml")).unwrap();
    let mut cluster: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    cluster["metadata"]["namespace"] = namespace.into();
    cluster["metadata"]["name"] = name.into();
    serde_yaml_ng::to_string(&cluster).unwrap()
}

fn wait_ray_pods(namespace: &str, cluster: &str, count: usize) -> Vec<Value> {
    cp().eventually(
        &format!("{count} pods of RayCluster {namespace}/{cluster}"),
        Duration::from_secs(90),
        || {
            let found = pods(namespace, &format!("ray.io/cluster={cluster}"));
            (found.len() >= count).then_some(found)
        },
    )
}

#[test]
fn operator_reconciles_and_injects_on_a_real_api_server() {
    let _alone = alone_with_the_cluster();
    let azurite = Azurite::shared();
    let installed = installed();
    let operator = Operator::start("operator-a");

    // Least privilege: the chart's ServiceAccount reads Secrets only in the namespaces the
    // chart names, may not delete pods, nor touch what it does not manage.
    namespace("rh-bystander", &[]);
    assert!(!operator_can("get", "secrets", "rh-bystander"));
    assert!(!operator_can("list", "secrets", "rh-bystander"));
    assert!(operator_can("get", "secrets", RAY_NS));
    assert!(!operator_can("list", "secrets", RAY_NS));
    assert!(!operator_can("delete", "pods", "rh-bystander"));
    assert!(!operator_can("create", "pods", "rh-bystander"));
    assert!(!operator_can(
        "delete",
        "historystorages.rayhistory.io",
        "rh-bystander"
    ));
    assert!(operator_can(
        "list",
        "historystorages.rayhistory.io",
        "rh-bystander"
    ));
    assert!(!installed.token.is_empty());

    // HistoryStorage against Azurite: ConfigMap, conditions, Events, observedGeneration.
    let ns = RAY_NS;
    namespace(
        ns,
        &[
            ("pod-security.kubernetes.io/enforce", "baseline"),
            ("pod-security.kubernetes.io/warn", "restricted"),
        ],
    );
    cp().apply(&azure_secret(ns, "azurite", azurite));
    cp().apply(&history_storage(ns, "history", "azurite", true));
    let hs = wait_condition(ns, "history", "Ready", "True");
    assert_eq!(
        condition(&hs["status"], "SecretResolved").unwrap().0,
        "True"
    );
    assert_eq!(
        condition(&hs["status"], "StorageReachable").unwrap().0,
        "True"
    );
    let generation = hs["metadata"]["generation"].as_i64().unwrap();
    assert_eq!(
        hs["status"]["observedGeneration"].as_i64(),
        Some(generation)
    );
    let config_map = get_json(&["configmap", "history-storage", "-n", ns]);
    assert_eq!(config_map["data"]["STORAGE"], "azureblob", "{config_map}");
    assert_eq!(
        config_map["metadata"]["ownerReferences"][0]["kind"],
        "HistoryStorage"
    );
    assert!(
        !config_map.to_string().contains("AccountKey"),
        "no secret in the ConfigMap"
    );
    let events = get_json(&["events.events.k8s.io", "-n", ns]);
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["regarding"]["name"] == "history"),
        "an Event about the HistoryStorage: {events}"
    );
    cp().kubectl_ok(&[
        "patch",
        "historystorage",
        "history",
        "-n",
        ns,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"prefix":"moved"}}"#,
    ]);
    cp().eventually(
        "observedGeneration follows the spec",
        Duration::from_secs(60),
        || {
            let hs = get_json(&["historystorage", "history", "-n", ns]);
            (hs["status"]["observedGeneration"].as_i64() == Some(generation + 1)).then_some(())
        },
    );

    // A missing Secret and an unreachable Azurite are conditions, not crashes.
    cp().apply(&history_storage(ns, "no-secret", "does-not-exist", false));
    let hs = wait_condition(ns, "no-secret", "SecretResolved", "False");
    assert_eq!(
        condition(&hs["status"], "SecretResolved").unwrap().1,
        "SecretNotFound"
    );
    let mut stopped = Azurite::start();
    cp().apply(&azure_secret(ns, "stopped", &stopped));
    stopped.stop();
    cp().apply(&history_storage(ns, "stopped", "stopped", false));
    let hs = wait_condition(ns, "stopped", "StorageReachable", "False");
    assert_eq!(condition(&hs["status"], "Ready").unwrap().0, "False");
    assert!(
        !hs["status"]
            .to_string()
            .contains("Eby8vdM02xNOcqFlqUwJPLlm"),
        "no secret in the status"
    );

    // Where the operator may not read Secrets, it reads none and probes nothing, but the
    // ConfigMap is written so pods are still injected.
    cp().apply(&azure_secret("rh-bystander", "azurite", azurite));
    cp().apply(&history_storage(
        "rh-bystander",
        "history",
        "azurite",
        false,
    ));
    let hs = wait_condition("rh-bystander", "history", "SecretResolved", "Unknown");
    assert_eq!(
        condition(&hs["status"], "SecretResolved").unwrap().1,
        "NotPermitted"
    );
    assert_eq!(condition(&hs["status"], "Ready").unwrap().0, "Unknown");
    assert_eq!(hs["status"]["configMap"], "history-storage", "{hs}");
    // A tenant cannot aim the operator's probe at an endpoint the admin did not allow.
    cp().apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: elsewhere, namespace: {ns}}}\n\
         stringData:\n  connectionString: \"{}\"\n",
        azurite
            .connection_string()
            .replace("127.0.0.1", "169.254.169.254")
    ));
    cp().apply(&history_storage(ns, "elsewhere", "elsewhere", false));
    let hs = wait_condition(ns, "elsewhere", "StorageReachable", "Unknown");
    assert_eq!(
        condition(&hs["status"], "StorageReachable").unwrap().1,
        "EndpointNotAllowed",
        "{hs}"
    );
    assert!(hs["status"].to_string().contains("169.254.169.254"), "{hs}");

    // KubeRay creates the pods; the real API server calls our webhook at its URL.
    cp().eventually(
        "the leader points the webhook configuration at itself",
        Duration::from_secs(30),
        || {
            let mwc = get_json(&["mutatingwebhookconfiguration", RELEASE]);
            let hook = &mwc["webhooks"][0]["clientConfig"];
            (hook["url"] == operator.webhook_url.as_str() && hook["caBundle"].is_string())
                .then_some(())
        },
    );
    cp().apply(&sample_raycluster(ns, "demo"));
    let cluster = get_json(&["raycluster", "demo", "-n", ns]);
    let cluster_uid = cluster["metadata"]["uid"].as_str().unwrap().to_string();
    let ray_pods = wait_ray_pods(ns, "demo", 2);
    for pod in &ray_pods {
        let name = pod["metadata"]["name"].as_str().unwrap();
        let collector =
            collector_of(pod).unwrap_or_else(|| panic!("{name} has no collector: {pod}"));
        assert_eq!(collector["restartPolicy"], "Always", "native sidecar");
        assert_eq!(
            env_of(collector, "RAY_CLUSTER_ID").unwrap()["value"],
            cluster_uid.as_str(),
            "cluster id is the RayCluster's UID"
        );
        assert_eq!(
            env_of(collector, "RAY_CLUSTER_NAME").unwrap()["value"],
            "demo"
        );
        let shared = collector["volumeMounts"][0]["name"].as_str().unwrap();
        let ray = &pod["spec"]["containers"][0];
        assert!(
            ray["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["name"] == shared && m["mountPath"] == "/tmp/ray"),
            "{name}: /tmp/ray shared with the Ray container"
        );
        assert!(
            pod["spec"]["terminationGracePeriodSeconds"]
                .as_i64()
                .unwrap()
                >= 45,
            "{name}: grace period"
        );
        // The checkpoint and spool volume is the collector's alone.
        let mounts = |c: &Value| -> Vec<String> {
            c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["name"].as_str().map(String::from))
                .collect()
        };
        assert!(
            mounts(collector).contains(&"ray-history-state".to_string()),
            "{name}"
        );
        assert!(
            !mounts(ray).contains(&"ray-history-state".to_string()),
            "{name}"
        );
        assert_eq!(
            pod["metadata"]["annotations"]["rayhistory.io/injected"], "history",
            "{name}"
        );
    }
    // A RayJob's cluster too, with the RayJob as the owner the collector records.
    let job_text = std::fs::read_to_string(workspace_root().join("config/rayjob.yaml")).unwrap();
    let mut job: serde_yaml_ng::Value = serde_yaml_ng::from_str(&job_text).unwrap();
    job["metadata"]["namespace"] = ns.into();
    cp().apply(&serde_yaml_ng::to_string(&job).unwrap());
    let job_cluster = cp().eventually("the RayJob's RayCluster", Duration::from_secs(60), || {
        let job = try_get_json(&["rayjob", "squares", "-n", ns])?;
        job["status"]["rayClusterName"].as_str().map(String::from)
    });
    let job_pods = wait_ray_pods(ns, &job_cluster, 2);
    for pod in &job_pods {
        let collector = collector_of(pod).unwrap_or_else(|| panic!("no collector: {pod}"));
        assert_eq!(env_of(collector, "OWNER_KIND").unwrap()["value"], "RayJob");
        assert_eq!(env_of(collector, "OWNER_NAME").unwrap()["value"], "squares");
    }

    // kwok runs them; an update of a stored pod does not inject again.
    let head = &pods(ns, "ray.io/cluster=demo,ray.io/node-type=head")[0];
    let head_name = head["metadata"]["name"].as_str().unwrap();
    cp().kubectl_ok(&["label", "pod", head_name, "-n", ns, "touched=yes"]);
    let head = get_json(&["pod", head_name, "-n", ns]);
    let collectors = head["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "ray-history-collector")
        .count();
    assert_eq!(collectors, 1, "injected once");

    // Pod Security `restricted` enforced: a RayCluster whose own containers comply is admitted
    // with the collector, which complies too.
    let strict = "rh-restricted";
    namespace(
        strict,
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    );
    cp().apply(&azure_secret(strict, "azurite", azurite));
    cp().apply(&history_storage(strict, "history", "azurite", true));
    wait_condition(strict, "history", "Ready", "True");
    let text = sample_raycluster(strict, "strict");
    let mut cluster: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let restricted: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        "{allowPrivilegeEscalation: false, runAsNonRoot: true, runAsUser: 1000, \
         capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}",
    )
    .unwrap();
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["securityContext"] =
        restricted.clone();
    cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["securityContext"] =
        restricted;
    cp().apply(&serde_yaml_ng::to_string(&cluster).unwrap());
    for pod in wait_ray_pods(strict, "strict", 2) {
        assert!(collector_of(&pod).is_some(), "{pod}");
    }

    // A namespace whose HistoryStorage does not inject: untouched.
    let plain_ns = "rh-plain";
    namespace(plain_ns, &[]);
    cp().apply(&azure_secret(plain_ns, "azurite", azurite));
    cp().apply(&history_storage(plain_ns, "history", "azurite", false));
    wait_condition(plain_ns, "history", "Ready", "True");
    cp().apply(&sample_raycluster(plain_ns, "plain"));
    for pod in wait_ray_pods(plain_ns, "plain", 2) {
        assert!(collector_of(&pod).is_none(), "{pod}");
    }

    // HistoryServer: owned objects, readiness from kwok, garbage collection.
    cp().apply(&format!(
        "apiVersion: rayhistory.io/v1alpha1\nkind: HistoryServer\nmetadata: {{name: browse, namespace: {ns}}}\n\
         spec:\n  storageRef: {{name: history}}\n  replicas: 1\n  auth: {{mode: kubernetes, cacheTTL: 10s}}\n  \
         retention: {{maxAge: 30d, rules: [{{namespace: team-a, maxAge: 7d}}]}}\n"
    ));
    let server = cp().eventually("HistoryServer ready", Duration::from_secs(90), || {
        let hs = try_get_json(&["historyserver", "browse", "-n", ns])?;
        (hs["status"]["readyReplicas"].as_i64() == Some(1)).then_some(hs)
    });
    assert!(
        server["status"]["url"]
            .as_str()
            .is_some_and(|u| u.contains("browse")),
        "{server}"
    );
    let uid = server["metadata"]["uid"].as_str().unwrap().to_string();
    // Auth mode kubernetes: the flags, and the account token the reviews are made with.
    let pod = &get_json(&["deployment", "browse", "-n", ns])["spec"]["template"]["spec"];
    let args = pod["containers"][0]["args"].to_string();
    assert!(
        args.contains(r#""--auth","kubernetes","--auth-cache-ttl","10s""#),
        "{args}"
    );
    assert_eq!(pod["automountServiceAccountToken"], true);
    // Retention: the flags, and a RoleBinding that lets the account hold its sweeper's Lease
    // (the operator may bind that one ClusterRole only).
    assert!(
        args.contains(r#""--retention-max-age","30d""#) && args.contains("browse-retention"),
        "{args}"
    );
    let binding = cp().eventually("the retention RoleBinding", Duration::from_secs(60), || {
        try_get_json(&["rolebinding", "browse-retention", "-n", ns])
    });
    assert_eq!(
        binding["roleRef"]["name"],
        format!("{RELEASE}-server-retention")
    );
    let account = format!("system:serviceaccount:{ns}:browse");
    for (verb, namespace, allowed) in [
        ("create", ns, "yes"),
        ("update", ns, "yes"),
        ("create", "default", "no"),
    ] {
        let out = cp()
            .kubectl()
            .args([
                "auth", "can-i", verb, "leases", "-n", namespace, "--as", &account,
            ])
            .output()
            .expect("kubectl auth can-i");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            allowed,
            "{verb} leases in {namespace}"
        );
    }
    // Its account is not bound to the chart's server-auth ClusterRole: the status says so,
    // until it is.
    let reviews = |wanted: (&str, &str)| {
        cp().eventually(
            &format!("HistoryServer ReviewsAllowed={wanted:?}"),
            Duration::from_secs(60),
            || {
                let hs = try_get_json(&["historyserver", "browse", "-n", ns])?;
                (condition(&hs["status"], "ReviewsAllowed") == Some(wanted)).then_some(hs)
            },
        )
    };
    let unbound = reviews(("False", "NotBound"));
    assert!(
        unbound.to_string().contains("serverAuth.serviceAccounts"),
        "{unbound}"
    );
    assert_eq!(
        condition(&unbound["status"], "Ready").map(|c| c.0),
        Some("False")
    );
    cp().apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n\
         metadata: {{name: browse-server-auth}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, \
         kind: ClusterRole, name: {RELEASE}-server-auth}}\nsubjects: [{{kind: ServiceAccount, \
         name: browse, namespace: {ns}}}]\n"
    ));
    reviews(("True", "Allowed"));
    cp().kubectl_ok(&["delete", "clusterrolebinding", "browse-server-auth"]);
    assert_eq!(
        binding["metadata"]["ownerReferences"][0]["uid"],
        uid.as_str(),
        "the RoleBinding is owned by the HistoryServer"
    );
    for kind in ["deployment", "service", "serviceaccount"] {
        let owned = get_json(&[kind, "browse", "-n", ns]);
        assert_eq!(
            owned["metadata"]["ownerReferences"][0]["uid"],
            uid.as_str(),
            "{kind} owned by the HistoryServer"
        );
    }
    cp().kubectl_ok(&["delete", "historyserver", "browse", "-n", ns, "--wait=true"]);
    cp().eventually(
        "the garbage collector removes what the HistoryServer owned",
        Duration::from_secs(60),
        || {
            let gone = ["deployment", "service", "serviceaccount"]
                .iter()
                .all(|kind| try_get_json(&[kind, "browse", "-n", ns]).is_none())
                && try_get_json(&["rolebinding", "browse-retention", "-n", ns]).is_none();
            gone.then_some(())
        },
    );

    // Two replicas against the real Lease API: one leads, both are ready to serve the webhook;
    // when the leader stops, the other takes over within the lease duration (6 s here) and
    // points the webhook configuration at itself.
    let second = Operator::start("operator-b");
    let holder = || {
        get_json(&["lease", RELEASE, "-n", SYSTEM_NS])["spec"]["holderIdentity"]
            .as_str()
            .map(String::from)
    };
    assert_eq!(holder().as_deref(), Some("operator-a"));
    operator.stop();
    let stopped_at = std::time::Instant::now();
    cp().eventually(
        "operator-b takes the lease",
        Duration::from_secs(20),
        || (holder().as_deref() == Some("operator-b")).then_some(()),
    );
    let takeover = stopped_at.elapsed();
    assert!(
        takeover < Duration::from_secs(12),
        "took over after {takeover:?}"
    );
    cp().eventually(
        "the webhook configuration points at the new leader",
        Duration::from_secs(20),
        || {
            let mwc = get_json(&["mutatingwebhookconfiguration", RELEASE]);
            (mwc["webhooks"][0]["clientConfig"]["url"] == second.webhook_url.as_str()).then_some(())
        },
    );
    cp().apply(&sample_raycluster(ns, "after-failover"));
    for pod in wait_ray_pods(ns, "after-failover", 2) {
        assert!(collector_of(&pod).is_some(), "{pod}");
    }

    // With no operator running, failurePolicy Ignore lets KubeRay's pods through.
    second.stop();
    cp().apply(&sample_raycluster(ns, "unserved"));
    for pod in wait_ray_pods(ns, "unserved", 2) {
        assert!(collector_of(&pod).is_none(), "{pod}");
    }
}
