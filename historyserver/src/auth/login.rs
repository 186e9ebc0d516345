//! Browser sign-in for `--auth kubernetes`: `/login` takes a token once (a form POST), checks
//! it with a TokenReview and keeps it in an `HttpOnly`, `SameSite=Strict` cookie (`Secure`
//! when the request came over HTTPS, as `X-Forwarded-Proto` says), then returns to the page
//! that sent the browser there (`?next=`, a path on this server only); `/logout` clears it.
//! The cookie covers the whole site, so Ray's dashboard pages under a session prefix send it
//! too.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::Reviews;

/// Where browsers without a token are sent.
pub const LOGIN_PATH: &str = "/login";
/// The cookie holding a signed-in browser's token.
pub const COOKIE: &str = "ray-history-token";

/// The page loads nothing and posts only to itself.
const CSP: &str = "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `/login` and `/logout`.
pub fn routes<S: Clone + Send + Sync + 'static>(reviews: Arc<Reviews>) -> Router<S> {
    Router::new()
        .route(LOGIN_PATH, get(page).post(sign_in))
        .route("/logout", get(sign_out).post(sign_out))
        .with_state(reviews)
}

/// The login cookie's token, if the request carries one.
pub fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|t| !t.is_empty())
}

/// Where to send a browser that opened `path_and_query` without a token.
pub fn login_url(path_and_query: &str) -> String {
    let next: String = url::form_urlencoded::byte_serialize(path_and_query.as_bytes()).collect();
    format!("{LOGIN_PATH}?next={next}")
}

/// `next` if it is a path on this server, else `/` (never another site: `//host` and `/\host`
/// are other sites to browsers).
fn local_path(next: Option<&str>) -> &str {
    next.filter(|n| {
        n.starts_with('/')
            && !n.starts_with("//")
            && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
    })
    .unwrap_or("/")
}

#[derive(Deserialize)]
struct PageQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

async fn page(Query(query): Query<PageQuery>) -> Response {
    login_page(StatusCode::OK, "", local_path(query.next.as_deref()))
}

async fn sign_in(
    State(reviews): State<Arc<Reviews>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let token = form.token.trim();
    let next = local_path(form.next.as_deref());
    // A token is base64url with dots (JWT) or similar: anything else cannot be a cookie value.
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\";,\\".contains(&b))
    {
        return login_page(StatusCode::BAD_REQUEST, "That is not a token.", next);
    }
    match reviews.authenticate(token).await {
        Ok(Some(subject)) => {
            tracing::info!(target: "audit", user = subject.username(), "signed in");
            let cookie = format!(
                "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
                secure(&headers)
            );
            with_cookie(Redirect::to(next).into_response(), &cookie)
        }
        Ok(None) => {
            tracing::warn!(target: "audit", status = 401, path = LOGIN_PATH, "sign-in refused");
            login_page(
                StatusCode::UNAUTHORIZED,
                "The Kubernetes API server did not accept that token.",
                next,
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "TokenReview failed");
            login_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The token cannot be checked now; try again.",
                next,
            )
        }
    }
}

async fn sign_out(headers: HeaderMap) -> Response {
    let cookie = format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure(&headers)
    );
    with_cookie(Redirect::to(LOGIN_PATH).into_response(), &cookie)
}

/// `; Secure` when the browser talks HTTPS (to a TLS-terminating proxy in front of us).
fn secure(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    if https { "; Secure" } else { "" }
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn login_page(status: StatusCode, message: &str, next: &str) -> Response {
    // `next` is printable ASCII without backslashes; these make it safe in an attribute.
    let next = next
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let message = if message.is_empty() {
        String::new()
    } else {
        format!("<p role=\"alert\"><strong>{message}</strong></p>\n")
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Sign in — Ray History</title>\n</head>\n<body>\n<main>\n<h1>Ray History</h1>\n\
         {message}<form method=\"post\" action=\"{LOGIN_PATH}\">\n\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\n\
         <p><label for=\"token\">Kubernetes token</label></p>\n\
         <p><textarea id=\"token\" name=\"token\" rows=\"8\" cols=\"72\" required \
         autocomplete=\"off\" spellcheck=\"false\"></textarea></p>\n\
         <p>For example the output of <code>kubectl create token &lt;service-account&gt;</code>. \
         It is kept in a cookie of this browser until you sign out.</p>\n\
         <p><button type=\"submit\">Sign in</button></p>\n</form>\n</main>\n</body>\n</html>\n"
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "a=1; b=2".parse().unwrap());
        assert_eq!(cookie_token(&headers), None);
        headers.append(
            header::COOKIE,
            "x=y; ray-history-token=t.o.k".parse().unwrap(),
        );
        assert_eq!(cookie_token(&headers), Some("t.o.k"));
    }

    #[test]
    fn sign_in_returns_only_to_pages_of_this_server() {
        assert_eq!(
            local_path(Some("/sessions/a/b/latest/#/jobs")),
            "/sessions/a/b/latest/#/jobs"
        );
        for other_site in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example",
            "x",
        ] {
            assert_eq!(local_path(Some(other_site)), "/", "{other_site}");
        }
        assert_eq!(local_path(Some("/a b")), "/");
        assert_eq!(local_path(None), "/");
        assert_eq!(
            login_url("/sessions/a/b/c/?x=1&y=2"),
            "/login?next=%2Fsessions%2Fa%2Fb%2Fc%2F%3Fx%3D1%26y%3D2"
        );
    }

    #[test]
    fn cookies_are_secure_behind_https() {
        let mut headers = HeaderMap::new();
        assert_eq!(secure(&headers), "");
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(secure(&headers), "; Secure");
    }
}
