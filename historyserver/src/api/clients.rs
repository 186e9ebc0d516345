//! A cap on the requests one client has in flight, so that one client (a script in a loop, a
//! browser tab gone wild) cannot take every slot of `--max-concurrent-requests` from the
//! others. A request holds its slot until its body is sent, downloads included. A client is
//! its address; behind a proxy in `AUTH_TRUSTED_PROXIES`, the first `X-Forwarded-For` entry.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use ipnet::IpNet;

use super::ApiError;

/// Requests in flight per client.
#[derive(Debug)]
pub struct ClientLimit {
    max: usize,
    trusted_proxies: Vec<IpNet>,
    active: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientLimit {
    /// At most `max` requests in flight per client.
    pub fn new(max: usize, trusted_proxies: Vec<IpNet>) -> Self {
        Self {
            max,
            trusted_proxies,
            active: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, request: &Request) -> Option<IpAddr> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()?
            .0
            .ip();
        if !self.trusted_proxies.iter().any(|n| n.contains(&peer)) {
            return Some(peer);
        }
        let forwarded = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
        Some(forwarded.unwrap_or(peer))
    }

    fn acquire(self: &Arc<Self>, client: IpAddr) -> Option<Slot> {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let count = active.entry(client).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            limit: Arc::clone(self),
            client,
        })
    }
}

/// One request's place in its client's count, given back when dropped.
struct Slot {
    limit: Arc<ClientLimit>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut active = self.limit.active.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = active.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                active.remove(&self.client);
            }
        }
    }
}

/// Refuses a request with 429 when its client has `max` in flight.
pub async fn limit(
    State(limit): State<Arc<ClientLimit>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(client) = limit.client(&request) else {
        return next.run(request).await;
    };
    let Some(slot) = limit.acquire(client) else {
        tracing::warn!(%client, max = limit.max, "too many requests in flight from one client");
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "more than {} requests in flight from this client; retry when one is done",
                limit.max
            ),
        )
        .into_response();
    };
    next.run(request)
        .await
        .map(|body| Body::new(Holding { body, _slot: slot }))
}

/// A response body that keeps its request's slot until it is sent or dropped.
struct Holding {
    body: Body,
    _slot: Slot,
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
