//! The browser side: the built-in UI (static files embedded in the binary, served at `/`) and
//! Ray's own dashboard build served under each session's prefix
//! `/sessions/<namespace>/<cluster>/<session>/`. The dashboard routes are a catch-all below the
//! session prefix, so the Ray API's literal routes (matched first) answer everything they know
//! and the build gets the rest; its relative API calls then land on our API.
//!
//! Embedded assets are referenced as `ui/<content hash>/<file>` and cached for a year;
//! `index.html` and Ray's non-hashed files are revalidated on every load.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path as FsPath, PathBuf};
use std::sync::LazyLock;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use tower::ServiceExt;
use tower_http::services::ServeDir;

const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";
/// The built-in UI loads nothing from anywhere else (clusters often have no internet access).
const CSP: &str =
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'";

/// One embedded file.
struct Asset {
    /// Its path below `ui/`, in the source tree and in the URL.
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The embedded file `ui/<name>`.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../ui/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the UI loads: `app.js` and the ES modules it imports (by relative URL, unbundled).
const ASSETS: &[Asset] = &[
    asset!("app.js", JS),
    asset!("router.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("views/sessions.js", JS),
    asset!("views/session.js", JS),
    asset!("views/tabs.js", JS),
    asset!("views/logs.js", JS),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The asset version (a hash of every embedded file) and `index.html` with it filled in.
struct Index {
    version: String,
    html: String,
    etag: String,
    /// The page for a browser signed in with the login cookie: its sign-out link shows.
    signed_in_html: String,
    signed_in_etag: String,
}

/// The sign-out link as the page has it, hidden.
const HIDDEN_SIGN_OUT: &str = "<a class=\"signout\" href=\"logout\" hidden>";

static INDEX: LazyLock<Index> = LazyLock::new(|| {
    let mut hasher = DefaultHasher::new();
    for asset in ASSETS {
        asset.body.hash(&mut hasher);
    }
    let version = format!("{:016x}", hasher.finish());
    let html = include_str!("../ui/index.html").replace("{{VERSION}}", &version);
    let etag = format!("\"{version}-index\"");
    let signed_in_html = html.replace(HIDDEN_SIGN_OUT, &HIDDEN_SIGN_OUT.replace(" hidden", ""));
    let signed_in_etag = format!("\"{version}-index-signed-in\"");
    Index {
        version,
        html,
        etag,
        signed_in_html,
        signed_in_etag,
    }
});

/// Routes of the built-in UI (`/`, `/ui/<file>`) and of Ray's dashboard build (the
/// `ray/dashboard/client/build` folder of a `ray[default]` wheel) under every session prefix.
/// Without a build, the session root answers a page naming `--ray-dashboard-dir`. Path
/// parameters are named like the API's (`{namespace}/{cluster}/{session}`) so both merge.
pub fn router<S: Clone + Send + Sync + 'static>(ray_dashboard_dir: Option<PathBuf>) -> Router<S> {
    // Directory requests would redirect to a path without the session prefix: refuse them.
    let files =
        ray_dashboard_dir.map(|dir| ServeDir::new(dir).append_index_html_on_directories(false));
    let dashboard = Router::new()
        .route("/sessions/{namespace}/{cluster}/{session}", get(add_slash))
        .route(
            "/sessions/{namespace}/{cluster}/{session}/",
            get(dashboard_file),
        )
        .route(
            "/sessions/{namespace}/{cluster}/{session}/{*path}",
            get(dashboard_file),
        )
        .with_state(files);
    Router::new()
        .route("/", get(index))
        // The version is in the path: relative module imports inherit it, so builds never mix.
        .route("/ui/{version}/{*file}", get(asset))
        .merge(dashboard)
}

/// Checks that `dir` is Ray's dashboard build, for a one-line start-up error naming the flag.
pub fn check_ray_dashboard_dir(dir: &FsPath) -> io::Result<()> {
    if dir.join("index.html").is_file() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "--ray-dashboard-dir {}: no index.html there (expected the \
             ray/dashboard/client/build folder of a ray[default] install)",
            dir.display()
        ),
    ))
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag))
}

/// An embedded file's response: validators, cache policy and a CSP.
fn embedded(
    headers: &HeaderMap,
    etag: &str,
    cache_control: &'static str,
    content_type: &'static str,
    body: Body,
) -> Response {
    let mut resp = if not_modified(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

async fn index(headers: HeaderMap) -> Response {
    let index = &*INDEX;
    let (html, etag) = if crate::auth::login::cookie_token(&headers).is_some() {
        (&index.signed_in_html, &index.signed_in_etag)
    } else {
        (&index.html, &index.etag)
    };
    let mut resp = embedded(
        &headers,
        etag,
        REVALIDATE,
        "text/html; charset=utf-8",
        Body::from(html.as_str()),
    );
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("cookie"));
    resp
}

async fn asset(Path((version, file)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == file) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let index = &*INDEX;
    // Only a URL naming the current version may be cached for good; anything else revalidates.
    let cache = if version == index.version {
        CACHE_FOREVER
    } else {
        REVALIDATE
    };
    let etag = format!("\"{}-{}\"", index.version, asset.name);
    embedded(
        &headers,
        &etag,
        cache,
        asset.content_type,
        Body::from(asset.body),
    )
}

/// The path below the session prefix.
#[derive(Deserialize)]
struct DashboardPath {
    namespace: String,
    cluster: String,
    session: String,
    #[serde(default)]
    path: String,
}

/// The build's URLs are relative: they only resolve below `<session>/`.
async fn add_slash(uri: Uri) -> Redirect {
    Redirect::permanent(&format!("{}/", uri.path()))
}

/// Serves one file of Ray's build (`index.html` at the session root).
async fn dashboard_file(
    State(files): State<Option<ServeDir>>,
    Path(at): Path<DashboardPath>,
    req: Request,
) -> Response {
    let Some(files) = files else {
        return if at.path.is_empty() {
            no_dashboard(&at)
        } else {
            (StatusCode::NOT_FOUND, "not found").into_response()
        };
    };
    let file = if at.path.is_empty() {
        "index.html"
    } else {
        at.path.as_str()
    };
    let Ok(uri) = Uri::builder().path_and_query(format!("/{file}")).build() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let (mut parts, body) = req.into_parts();
    parts.uri = uri;
    let resp = match files.oneshot(Request::from_parts(parts, body)).await {
        Ok(resp) => resp.map(Body::new),
        Err(never) => match never {},
    };
    let mut resp = resp.into_response();
    if resp.status().is_success() || resp.status() == StatusCode::NOT_MODIFIED {
        // Ray's build puts content hashes in every file name under static/.
        let cache = if file.starts_with("static/") {
            CACHE_FOREVER
        } else {
            REVALIDATE
        };
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    resp
}

/// The page behind "Open in Ray dashboard" when the server was started without the build.
fn no_dashboard(at: &DashboardPath) -> Response {
    let back = format!(
        "../../../../#/s/{}/{}/{}",
        escape(&at.namespace),
        escape(&at.cluster),
        escape(&at.session)
    );
    let html = format!(
        "<!doctype html><meta charset=utf-8><title>Ray dashboard not configured</title>\
         <body style=\"font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto\">\
         <h1>Ray's dashboard is not configured</h1>\
         <p>Start <code>ray-history-server</code> with <code>--ray-dashboard-dir</code> pointing \
         at the <code>ray/dashboard/client/build</code> folder of a <code>ray[default]</code> \
         install to browse this session in Ray's own dashboard.</p>\
         <p><a href=\"{back}\">Back to the session</a></p>"
    );
    (StatusCode::NOT_FOUND, Html(html)).into_response()
}

/// Minimal HTML escaping for the names echoed into the page above.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn fetch(
        app: &Router,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::builder().uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let body = to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    fn dashboard_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.html"),
            "<title>Ray Dashboard</title>",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("static/js")).unwrap();
        std::fs::write(dir.path().join("static/js/main.abc.js"), "console.log(1)").unwrap();
        dir
    }

    /// The server's shape: the Ray API nested under the session prefix, the UI merged in.
    fn app(dir: Option<PathBuf>) -> Router {
        let ray = Router::new().route("/api/jobs/", get(|| async { "jobs" }));
        Router::new()
            .route("/api/sessions", get(|| async { "sessions" }))
            .nest("/sessions/{namespace}/{cluster}/{session}", ray)
            .merge(router(dir))
    }

    #[tokio::test]
    async fn a_browser_signed_in_with_the_cookie_sees_a_sign_out_link() {
        let app = app(None);
        let (_, headers, html) = fetch(&app, "/", &[]).await;
        assert!(html.contains(HIDDEN_SIGN_OUT), "{html}");
        assert_eq!(headers[header::VARY], "cookie");
        let anonymous = headers[header::ETAG].clone();

        let cookie = [("cookie", "other=1; ray-history-token=abc")];
        let (status, headers, html) = fetch(&app, "/", &cookie).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!html.contains(HIDDEN_SIGN_OUT), "{html}");
        assert!(html.contains("<a class=\"signout\" href=\"logout\">Sign out</a>"));
        assert_ne!(headers[header::ETAG], anonymous);

        // The anonymous page's validator does not revalidate the signed-in one.
        let stale = [cookie[0], ("if-none-match", anonymous.to_str().unwrap())];
        let (status, _, _) = fetch(&app, "/", &stale).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn index_links_versioned_assets_that_are_cached_for_good() {
        let app = app(None);
        let (status, headers, html) = fetch(&app, "/", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], REVALIDATE);
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert!(!html.contains("{{VERSION}}"));
        let v = &INDEX.version;
        let js = format!("<script type=\"module\" src=\"ui/{v}/app.js\">");
        assert!(html.contains(&js), "{html}");
        assert!(html.contains(&format!("\"ui/{v}/app.css\"")), "{html}");

        let (status, headers, body) = fetch(&app, &format!("/ui/{v}/app.js"), &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(headers[header::CACHE_CONTROL], CACHE_FOREVER);
        assert!(body.contains("from \"./router.js\""), "{body}");

        let (_, headers, _) = fetch(&app, "/ui/old/app.css", &[]).await;
        assert_eq!(
            headers[header::CACHE_CONTROL],
            REVALIDATE,
            "a stale version must revalidate"
        );
        assert_eq!(headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
        for missing in [
            format!("/ui/{v}/nope.js"),
            format!("/ui/{v}/views/nope.js"),
            format!("/ui/{v}/views"),
            format!("/ui/{v}/../app.js"),
            "/ui/app.js".to_owned(),
        ] {
            let status = fetch(&app, &missing, &[]).await.0;
            assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        }
        assert_eq!(fetch(&app, "/api/sessions", &[]).await.2, "sessions");
    }

    /// The file a relative import `spec` in the embedded module `from` names.
    fn resolve(from: &str, spec: &str) -> String {
        let mut path: Vec<&str> = from.split('/').collect();
        path.pop();
        for part in spec.split('/') {
            match part {
                "." => {}
                ".." => assert!(path.pop().is_some(), "{from}: {spec} leaves ui/"),
                part => path.push(part),
            }
        }
        path.join("/")
    }

    #[tokio::test]
    async fn every_embedded_file_and_every_module_import_is_served() {
        let app = app(None);
        let v = &INDEX.version;
        for asset in ASSETS {
            let (status, headers, body) =
                fetch(&app, &format!("/ui/{v}/{}", asset.name), &[]).await;
            assert_eq!(status, StatusCode::OK, "{}", asset.name);
            assert_eq!(headers[header::CONTENT_TYPE], asset.content_type);
            assert_eq!(headers[header::CACHE_CONTROL], CACHE_FOREVER);
            assert_eq!(body.as_bytes(), asset.body, "{}", asset.name);
            if asset.content_type != JS {
                continue;
            }
            for line in body.lines().filter(|l| l.starts_with("import ")) {
                let spec = line.rsplit('"').nth(1).unwrap_or_else(|| panic!("{line}"));
                // A relative specifier keeps the version segment of the importing module's URL.
                assert!(
                    spec.starts_with("./") || spec.starts_with("../"),
                    "{}: {line}",
                    asset.name
                );
                let target = resolve(asset.name, spec);
                assert!(
                    ASSETS.iter().any(|a| a.name == target),
                    "{} imports {target}, which is not embedded",
                    asset.name
                );
            }
        }
    }

    #[tokio::test]
    async fn etags_answer_not_modified() {
        let app = app(None);
        let (_, headers, _) = fetch(&app, "/", &[]).await;
        let etag = headers[header::ETAG].to_str().unwrap().to_owned();
        let (status, _, body) = fetch(&app, "/", &[("if-none-match", &etag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        let (status, _, _) = fetch(&app, "/", &[("if-none-match", "\"other\"")]).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn serves_ray_dashboard_where_the_api_does_not_answer() {
        let dir = dashboard_dir();
        let app = app(Some(dir.path().to_owned()));
        let (status, headers, body) = fetch(&app, "/sessions/default/c1/session_1/", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("Ray Dashboard"));
        assert_eq!(headers[header::CACHE_CONTROL], REVALIDATE);
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );

        let (status, headers, body) =
            fetch(&app, "/sessions/ns/c/latest/static/js/main.abc.js", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "console.log(1)");
        assert_eq!(headers[header::CACHE_CONTROL], CACHE_FOREVER);
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .contains("javascript")
        );

        assert_eq!(
            fetch(&app, "/sessions/ns/c/s/api/jobs/", &[]).await.2,
            "jobs"
        );

        let (status, headers, _) = fetch(&app, "/sessions/ns/c/s", &[]).await;
        assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(headers[header::LOCATION], "/sessions/ns/c/s/");

        for missing in [
            "/sessions/ns/c/s/api/unknown",
            "/sessions/ns/c/s/static",
            "/sessions/ns/c/s/../../../../etc/passwd",
            "/sessions/ns/c/s/static/..%2f..%2f..%2fCargo.toml",
        ] {
            let (status, _, body) = fetch(&app, missing, &[]).await;
            assert!(
                status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
                "{missing}: {status} {body}"
            );
        }
    }

    #[tokio::test]
    async fn without_a_dashboard_build_the_session_root_explains_the_flag() {
        let app = app(None);
        let (status, _, body) = fetch(&app, "/sessions/default/c1/session_1/", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("--ray-dashboard-dir"));
        assert!(
            body.contains("../../../../#/s/default/c1/session_1\""),
            "{body}"
        );
        let (status, _, _) = fetch(&app, "/sessions/default/c1/session_1/static/x.js", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_folder_without_index_html_is_refused() {
        let dir = dashboard_dir();
        check_ray_dashboard_dir(dir.path()).unwrap();
        let empty = tempfile::tempdir().unwrap();
        let err = check_ray_dashboard_dir(empty.path()).unwrap_err();
        assert!(err.to_string().starts_with("--ray-dashboard-dir "), "{err}");
    }
}
