//! Every manifest we ship is valid Kubernetes: the CRDs, what the Helm chart renders (default
//! and full values, through the real Helm library), and the samples in `config/` — checked
//! with `kubernetes-validate --strict` for Kubernetes 1.33 to 1.37, custom resources against
//! our CRD schemas.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use ray_history_testkit::workspace_root;
use serde::Deserialize;
use serde_json::{Value, json};
use support::{
    K8S_VERSIONS, chart_dir, crd_validate, kubernetes_validate, python_command, support_file,
};

fn crd_file() -> PathBuf {
    chart_dir().join("crds/rayhistory.io.yaml")
}

#[test]
fn chart_crds_equal_the_crd_subcommand_output() {
    let out = Command::new(env!("CARGO_BIN_EXE_ray-history-operator"))
        .arg("crd")
        .output()
        .expect("run crd");
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        generated,
        ray_history_operator::crd::to_yaml().expect("yaml")
    );
    let committed = std::fs::read_to_string(crd_file()).expect("chart crds");
    assert!(
        committed == generated,
        "charts/ray-history/crds/rayhistory.io.yaml is stale: run `cargo run -p ray-history-operator -- crd > charts/ray-history/crds/rayhistory.io.yaml`"
    );
}

#[test]
fn crds_pass_strict_validation_for_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crds.yaml");
    std::fs::write(&file, ray_history_operator::crd::to_yaml().unwrap()).unwrap();
    let result = kubernetes_validate(&[file]);
    assert_eq!(result.passed, 2 * K8S_VERSIONS.len(), "{}", result.output);
    assert!(
        result.unknown_kinds.is_empty(),
        "{:?}",
        result.unknown_kinds
    );
}

/// Lints and renders the chart with helm-sdkpy; returns the lint result and the files.
fn render(values: Option<&Path>) -> (Value, Vec<PathBuf>, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let mut command = python_command();
    command
        .arg(support_file("helm_render.py"))
        .arg(chart_dir())
        .arg(out.path());
    if let Some(values) = values {
        command.arg(values);
    }
    let output = command.output().expect("run helm_render.py");
    assert!(
        output.status.success(),
        "helm render failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("summary json");
    let mut files: Vec<PathBuf> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(summary["objects"].as_u64().unwrap() as usize, files.len());
    (summary["lint"].clone(), files, out)
}

fn kind_of(file: &Path) -> (String, String) {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    (
        v["apiVersion"].as_str().unwrap().to_string(),
        v["kind"].as_str().unwrap().to_string(),
    )
}

/// Lint has no errors or warnings; every rendered object validates; custom resources match
/// our CRDs. Returns the rendered kinds.
fn check_chart(values: Option<&Path>) -> Vec<String> {
    let (lint, files, _dir) = render(values);
    assert!(lint["Errors"].is_null(), "helm lint errors: {lint}");
    for message in lint["Messages"].as_array().unwrap() {
        // 1 is Info ("icon is recommended"); 2 Warning, 3 Error.
        assert!(
            message["Severity"].as_u64().unwrap() < 2,
            "helm lint: {lint}"
        );
    }
    let result = kubernetes_validate(&files);
    let ours: Vec<PathBuf> = files
        .iter()
        .filter(|f| kind_of(f).0 == "rayhistory.io/v1alpha1")
        .cloned()
        .collect();
    let builtin = files.len()
        - files
            .iter()
            .filter(|f| kind_of(f).0.contains('.') && !kind_of(f).0.contains("k8s.io"))
            .count();
    assert_eq!(
        result.passed,
        builtin * K8S_VERSIONS.len(),
        "{}",
        result.output
    );
    for kind in &result.unknown_kinds {
        assert!(
            kind.starts_with("rayhistory.io/") || kind.starts_with("cert-manager.io/"),
            "unvalidated kind {kind}"
        );
    }
    if !ours.is_empty() {
        let checked = crd_validate(&crd_file(), &ours)
            .unwrap_or_else(|e| panic!("custom resources invalid:\n{e}"));
        assert_eq!(checked.len(), ours.len());
    }
    files.iter().map(|f| kind_of(f).1).collect()
}

#[test]
fn chart_with_default_values_lints_and_renders_valid_manifests() {
    let kinds = check_chart(None);
    for kind in [
        "CustomResourceDefinition",
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "Role",
        "Service",
        "MutatingWebhookConfiguration",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing from {kinds:?}"
        );
    }
    assert!(
        !kinds
            .iter()
            .any(|k| k == "HistoryStorage" || k == "Certificate"),
        "{kinds:?}"
    );
}

#[test]
fn chart_with_every_option_renders_valid_manifests() {
    let kinds = check_chart(Some(&chart_dir().join("ci/full-values.yaml")));
    for kind in [
        "HistoryStorage",
        "HistoryServer",
        "Certificate",
        "Issuer",
        "Secret",
        "NetworkPolicy",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing from {kinds:?}"
        );
    }
}

#[test]
fn values_schema_rejects_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "replicaCount: 0\nwebhook:\n  failurePolicy: Sometimes\n",
    )
    .unwrap();
    let output = python_command()
        .arg(support_file("helm_render.py"))
        .arg(chart_dir())
        .arg(dir.path().join("out"))
        .arg(&bad)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "bad values accepted");
    assert!(
        text.contains("values don't meet the specifications of the schema"),
        "{text}"
    );
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn samples_in_config_are_valid() {
    let config = workspace_root().join("config");
    let samples: Vec<PathBuf> = std::fs::read_dir(config.join("samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let ours: Vec<PathBuf> = samples
        .iter()
        .filter(|p| yaml_docs(p)[0]["apiVersion"] == "rayhistory.io/v1alpha1")
        .cloned()
        .collect();
    assert!(ours.len() >= 3, "{ours:?}");
    let checked = crd_validate(&crd_file(), &ours).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checked.len(), ours.len());

    // Built-in kinds, including Azurite for kind.
    let builtins: Vec<PathBuf> = samples
        .iter()
        .filter(|p| !ours.contains(p))
        .cloned()
        .chain([config.join("azurite.yaml")])
        .collect();
    let result = kubernetes_validate(&builtins);
    assert!(
        result.unknown_kinds.is_empty(),
        "{:?}",
        result.unknown_kinds
    );
    assert_eq!(result.passed, 3 * K8S_VERSIONS.len(), "{}", result.output);

    // KubeRay objects have no schema here: their pod templates must be valid pods.
    let dir = tempfile::tempdir().unwrap();
    let mut pods = Vec::new();
    for (file, cluster) in [
        ("raycluster.yaml", "/spec"),
        ("rayjob.yaml", "/spec/rayClusterSpec"),
    ] {
        let doc = &yaml_docs(&config.join(file))[0];
        assert_eq!(doc["apiVersion"], "ray.io/v1");
        let spec = doc.pointer(cluster).unwrap();
        let templates = std::iter::once(&spec["headGroupSpec"]["template"]).chain(
            spec["workerGroupSpecs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| &g["template"]),
        );
        for (i, template) in templates.enumerate() {
            assert_eq!(
                template["metadata"]["labels"]["rayhistory.io/enabled"], "true",
                "{file} opts in by label"
            );
            let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p{i}")}, "spec": template["spec"]});
            let path = dir.path().join(format!("{file}-{i}.json"));
            std::fs::write(&path, serde_json::to_vec(&pod).unwrap()).unwrap();
            pods.push(path);
        }
    }
    let result = kubernetes_validate(&pods);
    assert_eq!(
        result.passed,
        pods.len() * K8S_VERSIONS.len(),
        "{}",
        result.output
    );
}

#[test]
fn crd_schema_check_rejects_bad_resources() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: rayhistory.io/v1alpha1\nkind: HistoryStorage\nmetadata:\n  name: x\nspec:\n  storage: ftp\n  colector:\n    inject: true\n",
    )
    .unwrap();
    let err = crd_validate(&crd_file(), &[bad]).expect_err("invalid resource accepted");
    assert!(
        err.contains("'ftp' is not one of") && err.contains("colector"),
        "{err}"
    );
}

/// The CEL rules of our CRDs, evaluated client-side with `kube-cel` (the API server runs the
/// same rules): samples pass, and each rule rejects what it is there for.
#[test]
fn crd_cel_rules_accept_samples_and_reject_mistakes() {
    let crds: Vec<Value> = ray_history_operator::crd::all()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    let schema = |kind: &str| {
        let crd = crds
            .iter()
            .find(|c| c["spec"]["names"]["kind"] == kind)
            .unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    };
    let validator = kube_cel::Validator::new();
    let storage_schema = schema("HistoryStorage");
    let samples = workspace_root().join("config/samples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&samples).unwrap() {
        for doc in yaml_docs(&entry.unwrap().path()) {
            if doc["apiVersion"] != "rayhistory.io/v1alpha1" {
                continue;
            }
            let kind = doc["kind"].as_str().unwrap();
            if let Err(errors) = validator.validate(&schema(kind), &doc, None) {
                panic!("{kind} sample fails CEL: {:?}", errors.as_slice());
            }
            checked += 1;
        }
    }
    assert!(checked >= 3);

    let base = yaml_docs(&samples.join("historystorage.yaml")).remove(0);
    let cases: [(&str, Value, &str); 5] = [
        ("/spec/storage", json!("s3"), "spec.s3 is required"),
        (
            "/spec/collector/flushInterval",
            json!("2 seconds"),
            "flushInterval is a duration",
        ),
        (
            "/spec/azureblob/endpoint",
            json!("ftp://azurite"),
            "endpoint must be an http(s) URL",
        ),
        ("/spec/prefix", json!("../escape"), "prefix must not"),
        (
            "/spec/credentialsSecretRef/keys",
            json!({}),
            "name at least one secret key",
        ),
    ];
    for (pointer, value, message) in cases {
        let mut bad = base.clone();
        *bad.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer} not in sample")) = value;
        let errors = validator
            .validate(&storage_schema, &bad, None)
            .expect_err(message);
        assert!(
            errors
                .as_slice()
                .iter()
                .any(|e| e.message.contains(message)),
            "{pointer}: {:?}",
            errors.as_slice()
        );
    }

    let server_schema = schema("HistoryServer");
    let server = yaml_docs(&samples.join("historyserver.yaml")).remove(0);
    let with_auth = |auth: Value| {
        let mut doc = server.clone();
        doc["spec"]["auth"] = auth;
        validator.validate(&server_schema, &doc, None)
    };
    assert!(with_auth(json!({"mode": "kubernetes", "cacheTTL": "30s"})).is_ok());
    assert!(
        with_auth(json!({"mode": "header", "trustedProxies": ["10.0.0.0/8"],
                         "aclConfigMap": {"name": "acl"}}))
        .is_ok()
    );
    for (auth, message) in [
        (json!({"mode": "header"}), "header mode needs"),
        (
            json!({"mode": "header", "trustedProxies": ["10.0.0.0/8"]}),
            "header mode needs",
        ),
        (
            json!({"mode": "kubernetes", "cacheTTL": "half a minute"}),
            "cacheTTL is a duration",
        ),
        (
            json!({"mode": "kubernetes", "cacheTTL": "61m"}),
            "cacheTTL is at most 1h",
        ),
    ] {
        let errors = with_auth(auth.clone()).expect_err(message);
        assert!(
            errors
                .as_slice()
                .iter()
                .any(|e| e.message.contains(message)),
            "{auth}: {:?}",
            errors.as_slice()
        );
    }
}
