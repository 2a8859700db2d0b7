//! A small HTTP backend that answers with who it is and what it received, as JSON. It serves
//! the demo (`ferry demo`), the end-to-end tests and the benchmarks: HTTP/1.1 and h2c, and
//! WebSocket echo on any path.
//!
//! `GET /...?status=N` answers with status N (an easy way to see ferry pass statuses through).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// What the backend reports about a request.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Echo {
    /// The backend's name.
    pub backend: String,
    pub method: String,
    /// The request target as received (path and query).
    pub uri: String,
    pub version: String,
    /// Header values by lowercase name; repeated headers joined by ", ".
    pub headers: BTreeMap<String, String>,
    pub body_bytes: usize,
    /// The client address the backend saw (`ip:port`).
    #[serde(default)]
    pub client: String,
}

/// An echo backend: a name to answer as, and an optional delay before each answer (to
/// play a slow endpoint).
#[derive(Debug, Clone)]
pub struct Backend {
    pub name: Arc<str>,
    pub delay: Duration,
}

impl Backend {
    pub fn new(name: &str) -> Self {
        Backend {
            name: name.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Answers every UDP datagram on `socket` with `<name> <client ip:port>`, forever.
    pub async fn serve_udp(self, socket: tokio::net::UdpSocket) {
        let mut buf = [0u8; 2048];
        loop {
            let Ok((_, client)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let reply = format!("{} {client}", self.name);
            let _ = socket.send_to(reply.as_bytes(), client).await;
        }
    }

    /// Serves requests on `listener` forever.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        serve(listener, self).await
    }
}

async fn serve(listener: tokio::net::TcpListener, backend: Backend) {
    let name = backend.name.clone();
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(backend = %name, error = %e, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let backend = backend.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| respond(backend.clone(), client, req));
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().keep_alive(true);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "backend connection ended with an error");
            }
        });
    }
}

async fn respond(
    backend: Backend,
    client: std::net::SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let name = backend.name;
    if !backend.delay.is_zero() {
        tokio::time::sleep(backend.delay).await;
    }
    if is_websocket(&req) {
        return Ok(websocket_echo(name, &mut req));
    }
    let mut headers = BTreeMap::<String, String>::new();
    for (k, v) in req.headers() {
        let v = String::from_utf8_lossy(v.as_bytes());
        headers
            .entry(k.as_str().to_owned())
            .and_modify(|prior| {
                prior.push_str(", ");
                prior.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }
    let status = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("status=")))
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let (parts, body) = req.into_parts();
    let body_bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    let echo = Echo {
        backend: name.to_string(),
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        version: format!("{:?}", parts.version),
        headers,
        body_bytes,
        client: client.to_string(),
    };
    let mut json = serde_json::to_vec_pretty(&echo).expect("echo serialises");
    json.push(b'\n');
    let mut resp = Response::new(Full::new(Bytes::from(json)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("valid"),
    );
    resp.headers_mut().insert(
        "x-backend",
        name.parse()
            .unwrap_or_else(|_| "invalid".parse().expect("valid")),
    );
    Ok(resp)
}

fn is_websocket(req: &Request<Incoming>) -> bool {
    let has = |name, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

/// Accepts the upgrade and echoes every text and binary message, prefixed by the backend
/// name for text so a client can tell who answered.
fn websocket_echo(name: Arc<str>, req: &mut Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        let mut resp = Response::new(Full::new(Bytes::from_static(
            b"missing Sec-WebSocket-Key\n",
        )));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        use tokio_tungstenite::tungstenite::Message;
        while let Some(Ok(msg)) = ws.next().await {
            let reply = match msg {
                Message::Text(t) => Message::text(format!("{name}: {t}")),
                Message::Binary(b) => Message::Binary(b),
                Message::Close(_) => break,
                _ => continue,
            };
            if ws.send(reply).await.is_err() {
                break;
            }
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, "upgrade".parse().expect("valid"));
    h.insert(header::UPGRADE, "websocket".parse().expect("valid"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        accept.parse().expect("base64 is a valid header"),
    );
    resp
}
