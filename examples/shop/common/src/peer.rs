//! Calls from one shop service to another.
//!
//! A [`Peer`] is a named base URL (`orders` → `http://orders-svc.api`) and a
//! shared HTTP client with short timeouts. Every call gives back a
//! [`PeerReply`] (the peer's status and JSON body) or, when the peer cannot
//! be reached or does not answer JSON, a 502 [`ApiError`] whose message
//! starts with the peer's name: `orders service unreachable: ...`. That
//! sentence is what a workshop attendee sees when an intercepted service is
//! not running on their laptop, so it says which one.

use std::{error::Error as _, time::Duration};

use axum::{
    body::Bytes,
    http::{StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
};
use reqwest::{Client, Method, RequestBuilder, Url};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::ApiError;

/// How long to wait for a TCP connection to a peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for a peer's whole answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP client every peer of a service shares: short timeouts, and DNS
/// through hickory (reads `/etc/resolv.conf` itself), so names resolve in a
/// static binary on a `FROM scratch` image where glibc's NSS cannot load.
/// The resolver reads its configuration lazily, at the first lookup.
pub fn http_client() -> Client {
    Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .hickory_dns(true)
        .build()
        // Building only fails when the TLS backend cannot start; rustls with
        // its bundled roots and fixed settings always does.
        .expect("the peer HTTP client's fixed settings are valid")
}

/// Another shop service, reached over HTTP.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Short name for messages: `users`, `products`, `orders`, `payments`.
    name: &'static str,
    /// Where the peer listens, e.g. `http://orders-svc.api/`.
    base: Url,
    /// Shared connection pool.
    http: Client,
}

impl Peer {
    /// A peer called `name` at `base` (an http(s) URL; see
    /// [`crate::Env::peer_url`]).
    pub fn new(name: &'static str, base: Url, http: Client) -> Self {
        Self { name, base, http }
    }

    /// The peer's short name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The peer's URL for a path given as segments; each segment is
    /// percent-encoded, so an id taken from a request cannot add path
    /// components or a query.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `GET` the path.
    pub async fn get(&self, segments: &[&str]) -> Result<PeerReply, ApiError> {
        self.send(self.http.get(self.url(segments))).await
    }

    /// `GET` the path with a query string.
    pub async fn get_query(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<PeerReply, ApiError> {
        self.send(self.http.get(self.url(segments)).query(query))
            .await
    }

    /// `POST` `body` as JSON to the path.
    pub async fn post<B: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<PeerReply, ApiError> {
        self.send(self.http.post(self.url(segments)).json(body))
            .await
    }

    /// `PATCH` the path with a query string and no body.
    pub async fn patch_query(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<PeerReply, ApiError> {
        let request = self
            .http
            .request(Method::PATCH, self.url(segments))
            .query(query);
        self.send(request).await
    }

    async fn send(&self, request: RequestBuilder) -> Result<PeerReply, ApiError> {
        let unreachable = |e: reqwest::Error| {
            ApiError::bad_gateway(format!("{} service unreachable: {}", self.name, chain(&e)))
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        let body = serde_json::from_slice(&bytes).map_err(|_| {
            ApiError::bad_gateway(format!(
                "{} service sent a non-JSON answer (status {status})",
                self.name
            ))
        })?;
        Ok(PeerReply {
            peer: self.name,
            status,
            body,
            raw: bytes,
        })
    }
}

/// A peer's answer: its status and its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerReply {
    /// Which peer answered, for messages.
    peer: &'static str,
    /// The peer's status code.
    pub status: StatusCode,
    /// The peer's body, parsed as JSON.
    pub body: Value,
    /// The body as received, passed on verbatim (keeps the peer's key order).
    raw: Bytes,
}

impl PeerReply {
    /// The body as a `T` when the peer succeeded; otherwise the peer's error
    /// as this service's error: a 4xx keeps its status and message (an
    /// unknown order stays a 404), a 5xx becomes a 502 naming the peer.
    pub fn json<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        if self.status.is_success() {
            return serde_json::from_value(self.body).map_err(|e| {
                ApiError::bad_gateway(format!(
                    "{} service sent an unexpected answer: {e}",
                    self.peer
                ))
            });
        }
        let message = match self.body.get("error").and_then(Value::as_str) {
            Some(message) => message.to_owned(),
            None => format!("{} service answered {}", self.peer, self.status),
        };
        if self.status.is_server_error() {
            Err(ApiError::bad_gateway(format!(
                "{} service failed: {message}",
                self.peer
            )))
        } else {
            Err(ApiError::new(self.status, message))
        }
    }
}

impl IntoResponse for PeerReply {
    /// The peer's status and body, byte for byte (the gateway's
    /// pass-through).
    fn into_response(self) -> Response {
        (self.status, [(CONTENT_TYPE, "application/json")], self.raw).into_response()
    }
}

/// An error and its sources on one line, e.g. `error sending request for url
/// (...): client error (Connect): tcp connect error: Connection refused`.
fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(base: &str) -> Peer {
        let base = Url::parse(base).unwrap();
        Peer::new("orders", base, Client::new())
    }

    #[test]
    fn segments_are_encoded() {
        let peer = peer("http://orders-svc.api");
        assert_eq!(
            peer.url(&["orders", "a/../b?c"]).as_str(),
            "http://orders-svc.api/orders/a%2F..%2Fb%3Fc"
        );
        let prefixed = self::peer("http://host:81/base/");
        assert_eq!(
            prefixed.url(&["orders", "1"]).as_str(),
            "http://host:81/base/orders/1"
        );
    }

    #[test]
    fn peer_errors_keep_4xx_and_turn_5xx_into_502() {
        let reply = |status: StatusCode, body: Value| PeerReply {
            peer: "orders",
            status,
            raw: Bytes::from(body.to_string()),
            body,
        };
        let not_found = reply(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "order x not found"}),
        );
        assert_eq!(
            not_found.json::<Value>(),
            Err(ApiError::not_found("order x not found"))
        );
        let failed = reply(StatusCode::INTERNAL_SERVER_ERROR, serde_json::json!({}));
        assert_eq!(
            failed.json::<Value>(),
            Err(ApiError::bad_gateway(
                "orders service failed: orders service answered 500 Internal Server Error"
            ))
        );
    }

    #[tokio::test]
    async fn closed_port_is_a_502_naming_the_peer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let peer = peer(&format!("http://{addr}"));
        let err = peer.get(&["orders", "1"]).await.unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        assert!(
            err.message().starts_with("orders service unreachable: "),
            "{}",
            err.message()
        );
    }
}
