//! A scripted Kubernetes API server (`tower-test`) for unit tests of Kubernetes clients:
//! tests read the requests a client makes, in order, and choose the answers.

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

/// A scripted API server.
pub struct ApiServerVerifier(Handle<Request<Body>, Response<Body>>);

/// One request the client made, waiting for its answer.
pub struct Exchange {
    /// HTTP method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// JSON body (Null when empty).
    pub body: Value,
    send: SendResponse<Response<Body>>,
}

impl Exchange {
    /// Asserts the method and that the path (without query) equals `path`.
    pub fn expect(self, method: Method, path: &str) -> Self {
        let actual = self.uri.split('?').next().unwrap_or_default();
        assert_eq!(
            (&self.method, actual),
            (&method, path),
            "unexpected request {} {}",
            self.method,
            self.uri
        );
        self
    }

    /// Answers with `status` and a JSON body.
    pub fn reply(self, status: StatusCode, body: &Value) {
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).expect("json")))
            .expect("response");
        self.send.send_response(response);
    }

    /// Answers 200 with the request's own body (what an apply or create returns).
    pub fn echo(self) {
        let body = self.body.clone();
        self.reply(StatusCode::OK, &body);
    }

    /// Answers 404 like the API server does.
    pub fn not_found(self) {
        self.reply(
            StatusCode::NOT_FOUND,
            &json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"not found"}),
        );
    }
}

impl ApiServerVerifier {
    /// A client (default namespace `namespace`) whose requests this verifier answers.
    pub fn client(namespace: &str) -> (Client, Self) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        (Client::new(service, namespace), Self(handle))
    }

    /// The next request; panics if the client makes none.
    pub async fn next(&mut self) -> Exchange {
        let (request, send) =
            tokio::time::timeout(std::time::Duration::from_secs(30), self.0.next_request())
                .await
                .expect("timed out waiting for a request")
                .expect("client dropped");
        let method = request.method().clone();
        let uri = request.uri().to_string();
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("json body")
        };
        Exchange {
            method,
            uri,
            body,
            send,
        }
    }
}

impl ApiServerVerifier {
    /// Asserts the client made no further request (call after the reconcile returned).
    pub async fn done(mut self) {
        if let Ok(Some((request, _))) =
            tokio::time::timeout(std::time::Duration::from_secs(5), self.0.next_request()).await
        {
            panic!(
                "unexpected extra request {} {}",
                request.method(),
                request.uri()
            );
        }
    }
}
