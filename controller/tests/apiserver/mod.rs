//! A Kubernetes API server for tests: no kube-apiserver binary can be installed here, so this
//! implements, over real HTTP, the part of the API ferry uses, with the real server's rules:
//!
//! - list with `resourceVersion`, label and field selectors; watch streams of
//!   ADDED/MODIFIED/DELETED/BOOKMARK from a resourceVersion, and `410 Gone` (an ERROR event with
//!   an `Expired` Status) for one older than the last compaction;
//! - get, create (409 AlreadyExists), update (409 Conflict on a stale resourceVersion), merge
//!   patch (the `/status` subresource only changes status), for Leases, Events and Ingress status;
//! - every request is authorized against ferry's declared RBAC rules (`cluster::rbac`): a
//!   call ferry did not declare is answered 403, as a cluster with the chart's roles would.
//!
//! Tests drive it directly: apply and delete objects, compact history, cut watch streams, take
//! the server down and bring it back on the same ports. It can listen on several ports sharing
//! one state, so each replica of a test has its own port and requests say who sent them.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ferry_controller::cluster::rbac;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::watch;

/// A resource the server knows.
#[derive(Debug, Clone, Copy)]
struct Resource {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
}

const RESOURCES: [Resource; 9] = [
    Resource {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingresses",
        kind: "Ingress",
        namespaced: true,
    },
    Resource {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingressclasses",
        kind: "IngressClass",
        namespaced: false,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "services",
        kind: "Service",
        namespaced: true,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "endpoints",
        kind: "Endpoints",
        namespaced: true,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "nodes",
        kind: "Node",
        namespaced: false,
    },
    Resource {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        kind: "EndpointSlice",
        namespaced: true,
    },
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        kind: "Lease",
        namespaced: true,
    },
    Resource {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
    },
];

impl Resource {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn of_kind(kind: &str) -> Resource {
        *RESOURCES
            .iter()
            .find(|r| r.kind == kind)
            .unwrap_or_else(|| panic!("unknown kind {kind}"))
    }
}

type Key = (&'static str, String, String);

/// One request the server answered: which port (replica) sent it, and what.
#[derive(Debug, Clone)]
pub struct Logged {
    pub port: usize,
    pub method: String,
    pub path: String,
    pub status: u16,
}

#[derive(Default)]
struct State {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    /// Every change: resourceVersion, resource, event type, object.
    history: Vec<(u64, &'static str, &'static str, Value)>,
    /// Watches from before this resourceVersion get 410 Gone.
    compacted: u64,
    uid: u64,
    log: Vec<Logged>,
}

struct Inner {
    state: Mutex<State>,
    /// Bumped on every change: wakes watch streams.
    changes: watch::Sender<u64>,
    /// Bumped to end every watch stream.
    cuts: watch::Sender<u64>,
    down: watch::Sender<bool>,
    election_namespace: String,
}

/// The server; stops when dropped.
pub struct ApiServer {
    inner: Arc<Inner>,
    pub addrs: Vec<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

type Body = BoxBody<Bytes, Infallible>;

fn reply(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .expect("valid response")
}

/// Percent-decodes a query component (`+` is a space).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `k=v`, `k==v`, `k!=v` and `k` terms, comma-separated.
fn labels_match(selector: &str, object: &Value) -> bool {
    let labels = &object["metadata"]["labels"];
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k].as_str() != Some(v)
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            labels[k].as_str() == Some(v)
        } else {
            !labels[term].is_null()
        }
    })
}

/// The field selectors real servers support for the kinds here; others are a 400.
fn fields_match(selector: &str, object: &Value) -> Result<bool, String> {
    let mut all = true;
    for term in selector.split(',').filter(|t| !t.is_empty()) {
        let (field, value, equal) = match term.split_once("!=") {
            Some((f, v)) => (f, v, false),
            None => match term.split_once("==").or_else(|| term.split_once('=')) {
                Some((f, v)) => (f, v, true),
                None => return Err(format!("invalid field selector {term:?}")),
            },
        };
        let actual = match field {
            "metadata.name" => object["metadata"]["name"].as_str(),
            "metadata.namespace" => object["metadata"]["namespace"].as_str(),
            "type" => object["type"].as_str(),
            other => return Err(format!("field label not supported: {other}")),
        };
        all &= (actual == Some(value)) == equal;
    }
    Ok(all)
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

impl State {
    fn record(&mut self, res: &'static str, kind: &'static str, object: Value) {
        self.history.push((self.rv, res, kind, object));
    }

    fn stamp(&mut self, object: &mut Value, existing: Option<&Value>) {
        self.rv += 1;
        let meta = object["metadata"].as_object_mut().expect("metadata");
        meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        match existing {
            Some(old) => {
                for k in ["uid", "creationTimestamp"] {
                    if !old["metadata"][k].is_null() {
                        meta.insert(k.into(), old["metadata"][k].clone());
                    }
                }
            }
            None => {
                self.uid += 1;
                meta.insert(
                    "uid".into(),
                    json!(format!("00000000-0000-4000-8000-{:012}", self.uid)),
                );
                if !meta.contains_key("creationTimestamp") {
                    // Ordered like real timestamps: one second per object.
                    let t = 1_700_000_000 + self.uid;
                    let ts = k8s_openapi::jiff::Timestamp::from_second(t as i64).expect("valid");
                    meta.insert("creationTimestamp".into(), json!(ts.to_string()));
                }
            }
        }
    }
}

impl ApiServer {
    /// Starts the server on `ports` loopback ports sharing one state; Leases may only be used
    /// in `election_namespace` (as the chart's Role allows).
    pub async fn start(ports: usize, election_namespace: &str) -> ApiServer {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            changes: watch::channel(0).0,
            cuts: watch::channel(0).0,
            down: watch::channel(false).0,
            election_namespace: election_namespace.to_owned(),
        });
        let mut addrs = Vec::new();
        let mut tasks = Vec::new();
        for port in 0..ports {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            addrs.push(addr);
            tasks.push(tokio::spawn(serve(
                inner.clone(),
                port,
                addr,
                Some(listener),
            )));
        }
        ApiServer {
            inner,
            addrs,
            tasks,
        }
    }

    /// A kube client talking to port `port`.
    pub fn client(&self, port: usize) -> kube::Client {
        let url = format!("http://{}", self.addrs[port]).parse().unwrap();
        let mut config = kube::Config::new(url);
        config.read_timeout = Some(Duration::from_secs(30));
        kube::Client::try_from(config).unwrap()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap()
    }

    /// Creates or replaces an object given as JSON (with apiVersion, kind and metadata).
    pub fn apply(&self, mut object: Value) {
        let res = Resource::of_kind(object["kind"].as_str().expect("kind"));
        let ns = if res.namespaced {
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned()
        } else {
            String::new()
        };
        if res.namespaced {
            object["metadata"]["namespace"] = json!(ns);
        }
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_owned();
        let mut state = self.state();
        let key = (res.plural, ns, name);
        let existing = state.objects.get(&key).cloned();
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
        }
        state.stamp(&mut object, existing.as_ref());
        state.objects.insert(key, object.clone());
        state.record(
            res.plural,
            if existing.is_some() {
                "MODIFIED"
            } else {
                "ADDED"
            },
            object,
        );
        let rv = state.rv;
        drop(state);
        self.inner.changes.send_replace(rv);
    }

    /// Applies every document of a YAML text.
    pub fn apply_yaml(&self, yaml: &str) {
        for doc in serde_norway::Deserializer::from_str(yaml) {
            let value: Value = serde::Deserialize::deserialize(doc).expect("valid YAML");
            if value.is_null() {
                continue;
            }
            if value["kind"] == "List" {
                for item in value["items"].as_array().into_iter().flatten() {
                    self.apply(item.clone());
                }
            } else {
                self.apply(value);
            }
        }
    }

    pub fn delete(&self, kind: &str, namespace: Option<&str>, name: &str) {
        let res = Resource::of_kind(kind);
        let mut state = self.state();
        let key = (
            res.plural,
            namespace.unwrap_or("").to_owned(),
            name.to_owned(),
        );
        let Some(mut object) = state.objects.remove(&key) else {
            return;
        };
        state.rv += 1;
        object["metadata"]["resourceVersion"] = json!(state.rv.to_string());
        state.record(res.plural, "DELETED", object);
        let rv = state.rv;
        drop(state);
        self.inner.changes.send_replace(rv);
    }

    pub fn get(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let res = Resource::of_kind(kind);
        let key = (
            res.plural,
            namespace.unwrap_or("").to_owned(),
            name.to_owned(),
        );
        self.state().objects.get(&key).cloned()
    }

    pub fn list(&self, kind: &str) -> Vec<Value> {
        let res = Resource::of_kind(kind);
        self.state()
            .objects
            .iter()
            .filter(|(k, _)| k.0 == res.plural)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// `status.loadBalancer.ingress` of an Ingress, as IPs or hostnames.
    pub fn ingress_status(&self, namespace: &str, name: &str) -> Vec<String> {
        let Some(ing) = self.get("Ingress", Some(namespace), name) else {
            return Vec::new();
        };
        ing["status"]["loadBalancer"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                e["ip"]
                    .as_str()
                    .or(e["hostname"].as_str())
                    .map(str::to_owned)
            })
            .collect()
    }

    /// Forgets history: watches resuming from before now get 410 Gone and must relist.
    pub fn compact(&self) {
        let mut state = self.state();
        state.compacted = state.rv + 1;
        state.history.clear();
    }

    /// Ends every open watch stream (as an API server restart or a load balancer does).
    pub fn cut_watches(&self) {
        self.inner.cuts.send_modify(|c| *c += 1);
    }

    /// Stops answering (connections refused, open ones closed), or comes back on the same ports.
    pub fn set_down(&self, down: bool) {
        self.inner.down.send_replace(down);
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.state().log.clone()
    }
}

/// Accepts connections on `addr` while the server is up; rebinds when it comes back.
async fn serve(
    inner: Arc<Inner>,
    port: usize,
    addr: SocketAddr,
    mut listener: Option<tokio::net::TcpListener>,
) {
    let mut down = inner.down.subscribe();
    loop {
        until(&mut down, false).await;
        let l = match listener.take() {
            Some(l) => l,
            None => loop {
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            },
        };
        loop {
            tokio::select! {
                accepted = l.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let inner = inner.clone();
                    let mut down = inner.down.subscribe();
                    tokio::spawn(async move {
                        let service = service_fn(|req| {
                            let inner = inner.clone();
                            async move { Ok::<_, Infallible>(handle(&inner, port, req).await) }
                        });
                        let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                        tokio::select! {
                            _ = conn => {}
                            () = until(&mut down, true) => {}
                        }
                    });
                }
                () = until(&mut down, true) => break,
            }
        }
        // `l` is dropped here: the port refuses connections while down.
    }
}

/// Waits until the server's down flag is `down` (releasing the watch guard at once).
async fn until(rx: &mut watch::Receiver<bool>, down: bool) {
    let _ = rx.wait_for(|d| *d == down).await.map(|_| ());
}

struct Path {
    res: Resource,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Path> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    let res = *RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)?;
    Some(Path {
        res,
        namespace,
        name,
        subresource,
    })
}

async fn handle(inner: &Arc<Inner>, port: usize, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (decode(k), decode(v))))
        .collect();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let response = route(inner, &method, &path, &query, &content_type, &body);
    inner.state.lock().unwrap().log.push(Logged {
        port,
        method: method.to_string(),
        path: path.clone(),
        status: response.status().as_u16(),
    });
    response
}

fn route(
    inner: &Arc<Inner>,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    content_type: &str,
    body: &[u8],
) -> Response<Body> {
    let Some(p) = parse_path(path) else {
        return reply(
            404,
            &status(
                404,
                "NotFound",
                &format!("the server could not find the requested resource ({path})"),
            ),
        );
    };
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (method, &p.name) {
        (&Method::GET, Some(_)) => "get",
        (&Method::GET, None) if watching => "watch",
        (&Method::GET, None) => "list",
        (&Method::POST, None) => "create",
        (&Method::PUT, Some(_)) => "update",
        (&Method::PATCH, Some(_)) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        _ => return reply(405, &status(405, "MethodNotAllowed", "method not allowed")),
    };
    let resource = match &p.subresource {
        Some(sub) => format!("{}/{sub}", p.res.plural),
        None => p.res.plural.to_owned(),
    };
    let allowed = rbac::allows(rbac::CLUSTER_RULES, p.res.group, &resource, verb)
        || (p.namespace.as_deref() == Some(inner.election_namespace.as_str())
            && rbac::allows(rbac::ELECTION_RULES, p.res.group, &resource, verb));
    if !allowed {
        let message = format!(
            "ferry's RBAC rules do not allow {verb} on {resource} in group {:?}",
            p.res.group
        );
        return reply(403, &status(403, "Forbidden", &message));
    }
    let ns = if p.res.namespaced {
        p.namespace.clone()
    } else {
        None
    };
    match verb {
        "list" => list(inner, &p, query),
        "watch" => watch_stream(inner, &p, query),
        _ => {
            let name = p.name.clone().unwrap_or_default();
            let key: Key = (p.res.plural, ns.clone().unwrap_or_default(), name.clone());
            let mut state = inner.state.lock().unwrap();
            let result = write(&mut state, &p, verb, key, ns, content_type, body);
            let rv = state.rv;
            drop(state);
            if verb != "get" {
                inner.changes.send_replace(rv);
            }
            result
        }
    }
}

fn list(inner: &Arc<Inner>, p: &Path, query: &BTreeMap<String, String>) -> Response<Body> {
    let state = inner.state.lock().unwrap();
    let mut items = Vec::new();
    for ((plural, ns, _), object) in &state.objects {
        if *plural != p.res.plural || p.namespace.as_ref().is_some_and(|want| want != ns) {
            continue;
        }
        match matches(query, object) {
            Ok(true) => {
                let mut item = object.clone();
                // Items of a real list carry no apiVersion and kind.
                if let Some(o) = item.as_object_mut() {
                    o.remove("apiVersion");
                    o.remove("kind");
                }
                items.push(item);
            }
            Ok(false) => {}
            Err(message) => return reply(400, &status(400, "BadRequest", &message)),
        }
    }
    let list = json!({
        "apiVersion": p.res.api_version(),
        "kind": format!("{}List", p.res.kind),
        "metadata": {"resourceVersion": state.rv.to_string()},
        "items": items,
    });
    reply(200, &list)
}

fn matches(query: &BTreeMap<String, String>, object: &Value) -> Result<bool, String> {
    let labels = query
        .get("labelSelector")
        .is_none_or(|s| labels_match(s, object));
    let fields = match query.get("fieldSelector") {
        Some(s) => fields_match(s, object)?,
        None => true,
    };
    Ok(labels && fields)
}

fn watch_stream(inner: &Arc<Inner>, p: &Path, query: &BTreeMap<String, String>) -> Response<Body> {
    if let Some(Err(message)) = query
        .get("fieldSelector")
        .map(|s| fields_match(s, &json!({})))
    {
        return reply(400, &status(400, "BadRequest", &message));
    }
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(290u64);
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    let inner = inner.clone();
    let res = p.res;
    let namespace = p.namespace.clone();
    let query = query.clone();
    tokio::spawn(async move {
        let line = |v: Value| Ok(Frame::data(Bytes::from(format!("{v}\n"))));
        let mut changes = inner.changes.subscribe();
        let mut cuts = inner.cuts.subscribe();
        let mut down = inner.down.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let mut sent = from;
        {
            let state = inner.state.lock().unwrap();
            if from != 0 && from < state.compacted {
                let gone = status(
                    410,
                    "Expired",
                    &format!("too old resource version: {from} ({})", state.compacted),
                );
                let _ = tx.try_send(line(json!({"type": "ERROR", "object": gone})));
                return;
            }
            if from == 0 {
                // Without a resourceVersion a watch starts with every current object.
                for ((plural, ns, _), object) in &state.objects {
                    if *plural == res.plural
                        && namespace.as_ref().is_none_or(|n| n == ns)
                        && matches(&query, object) == Ok(true)
                    {
                        let _ = tx.try_send(line(json!({"type": "ADDED", "object": object})));
                    }
                }
                sent = state.rv;
            }
        }
        loop {
            let events: Vec<Value> = {
                let state = inner.state.lock().unwrap();
                let new: Vec<Value> = state
                    .history
                    .iter()
                    .filter(|(rv, plural, _, object)| {
                        *rv > sent
                            && *plural == res.plural
                            && namespace
                                .as_ref()
                                .is_none_or(|n| object["metadata"]["namespace"].as_str() == Some(n))
                            && matches(&query, object) == Ok(true)
                    })
                    .map(|(_, _, kind, object)| json!({"type": kind, "object": object}))
                    .collect();
                sent = state.rv;
                new
            };
            for e in events {
                if tx.send(line(e)).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(300)), if bookmarks => {
                    let bookmark = json!({"type": "BOOKMARK", "object": {
                        "apiVersion": res.api_version(), "kind": res.kind,
                        "metadata": {"resourceVersion": sent.to_string()}}});
                    if tx.send(line(bookmark)).await.is_err() {
                        return;
                    }
                }
                _ = cuts.changed() => return,
                () = until(&mut down, true) => return,
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    });
    let body = StreamBody::new(tokio_stream_from(rx)).boxed();
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body)
        .expect("valid response")
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn write(
    state: &mut State,
    p: &Path,
    verb: &str,
    key: Key,
    ns: Option<String>,
    content_type: &str,
    body: &[u8],
) -> Response<Body> {
    let existing = state.objects.get(&key).cloned();
    let not_found = || {
        reply(
            404,
            &status(
                404,
                "NotFound",
                &format!("{} \"{}\" not found", p.res.plural, key.2),
            ),
        )
    };
    match verb {
        "get" => existing.map_or_else(not_found, |o| reply(200, &o)),
        "create" => {
            let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
                return reply(400, &status(400, "BadRequest", "body is not JSON"));
            };
            let name = object["metadata"]["name"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    let prefix = object["metadata"]["generateName"]
                        .as_str()
                        .unwrap_or("obj-")
                        .to_owned();
                    format!("{prefix}{}", state.rv + 1)
                });
            let key: Key = (p.res.plural, ns.clone().unwrap_or_default(), name.clone());
            if state.objects.contains_key(&key) {
                return reply(
                    409,
                    &status(
                        409,
                        "AlreadyExists",
                        &format!("{} \"{name}\" already exists", p.res.plural),
                    ),
                );
            }
            object["metadata"]["name"] = json!(name);
            if let Some(ns) = &ns {
                object["metadata"]["namespace"] = json!(ns);
            }
            object["apiVersion"] = json!(p.res.api_version());
            object["kind"] = json!(p.res.kind);
            state.stamp(&mut object, None);
            state.objects.insert(key, object.clone());
            state.record(p.res.plural, "ADDED", object.clone());
            reply(201, &object)
        }
        "update" | "patch" => {
            let Some(old) = existing else {
                return not_found();
            };
            let Ok(input) = serde_json::from_slice::<Value>(body) else {
                return reply(400, &status(400, "BadRequest", "body is not JSON"));
            };
            let mut object = old.clone();
            if verb == "update" {
                let sent_rv = input["metadata"]["resourceVersion"].as_str().unwrap_or("");
                let current = old["metadata"]["resourceVersion"].as_str().unwrap_or("");
                if !sent_rv.is_empty() && sent_rv != current {
                    let message = format!(
                        "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                        p.res.plural, key.2
                    );
                    return reply(409, &status(409, "Conflict", &message));
                }
                match p.subresource.as_deref() {
                    Some("status") => object["status"] = input["status"].clone(),
                    _ => {
                        object = input;
                        object["metadata"]["name"] = json!(key.2);
                    }
                }
            } else {
                if !content_type.contains("merge-patch") {
                    return reply(415, &status(415, "UnsupportedMediaType", content_type));
                }
                match p.subresource.as_deref() {
                    // The status subresource ignores everything but status.
                    Some("status") => merge(&mut object["status"], &input["status"]),
                    _ => merge(&mut object, &input),
                }
            }
            state.stamp(&mut object, Some(&old));
            state.objects.insert(key, object.clone());
            state.record(p.res.plural, "MODIFIED", object.clone());
            reply(200, &object)
        }
        _ => reply(405, &status(405, "MethodNotAllowed", verb)),
    }
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("addrs", &self.addrs)
            .finish()
    }
}

/// Every status code other than 2xx the server answered, for diagnosis in assertions.
pub fn failures(log: &[Logged]) -> Vec<&Logged> {
    log.iter()
        .filter(|l| !(200..300).contains(&l.status))
        .collect()
}
