//! Translation from Kubernetes YAML to the route table, through the same loading and
//! translation code every source uses. Each test states the objects as YAML and asserts where
//! requests would go.

use std::net::SocketAddr;
use std::path::Path;

use ferry_controller::ControllerConfig;
use ferry_controller::manifests::{ManifestError, load_texts};
use ferry_controller::translate::{Diagnostic, translate};
use ferry_model::{LoadBalance, Snapshot, UpstreamTarget};

fn world_with(config: &ControllerConfig, yaml: &str) -> (Snapshot, Vec<Diagnostic>) {
    let loaded = load_texts([(Path::new("test.yaml"), yaml)])
        .unwrap_or_else(|e| panic!("fixture does not load: {}", messages(&e).join("\n")));
    let t = translate(&loaded.index, config);
    (t.snapshot, t.diagnostics)
}

fn world(yaml: &str) -> (Snapshot, Vec<Diagnostic>) {
    world_with(&ControllerConfig::default(), yaml)
}

fn messages(errors: &[ManifestError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

fn load_errors(yaml: &str) -> Vec<String> {
    match load_texts([(Path::new("bad.yaml"), yaml)]) {
        Ok(_) => panic!("expected errors"),
        Err(e) => messages(&e),
    }
}

/// The Service a request goes to, as `namespace/service:port`.
fn to(s: &Snapshot, host: &str, path: &str) -> Option<String> {
    s.routes
        .lookup(host, path)
        .map(|r| r.upstream.name.to_string())
}

fn endpoints(s: &Snapshot, host: &str, path: &str) -> Vec<SocketAddr> {
    match &s
        .routes
        .lookup(host, path)
        .expect("a route")
        .upstream
        .target
    {
        UpstreamTarget::Endpoints(e) => e.iter().map(|e| e.addr).collect(),
        UpstreamTarget::ExternalName { .. } => panic!("not endpoints"),
    }
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

/// A Service `name` with one port 80 and one ready endpoint, so routes to it resolve.
fn service(name: &str) -> String {
    format!(
        r#"
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-abc
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{port: 8080}}]
endpoints: [{{addresses: [10.0.0.1]}}]
"#
    )
}

#[test]
fn a_real_cluster_dump_routes_by_host_path_and_named_ports() {
    let yaml = std::fs::read_to_string("tests/fixtures/shop.yaml").unwrap();
    let (s, diagnostics) = world(&yaml);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    assert_eq!(
        to(&s, "shop.example.com", "/").as_deref(),
        Some("shop/web:80")
    );
    assert_eq!(
        to(&s, "shop.example.com", "/cart").as_deref(),
        Some("shop/web:80")
    );
    assert_eq!(
        to(&s, "shop.example.com", "/api/orders").as_deref(),
        Some("shop/api:80")
    );
    assert_eq!(
        to(&s, "shop.example.com", "/api/admin").as_deref(),
        Some("shop/api:9000")
    );
    assert_eq!(
        to(&s, "shop.example.com", "/api/admin/x").as_deref(),
        Some("shop/api:80")
    );
    assert_eq!(to(&s, "other.example.com", "/"), None);
    // The not-ready pod is left out; the unnamed port maps to the slice's unnamed port.
    assert_eq!(
        endpoints(&s, "shop.example.com", "/"),
        addrs(&["10.244.1.5:8080", "10.244.2.9:8080"])
    );
    // A named targetPort: each slice says which number its pods use.
    assert_eq!(
        endpoints(&s, "shop.example.com", "/api"),
        addrs(&["10.244.1.20:8080", "10.244.2.21:8081"])
    );
    let web = s.routes.lookup("shop.example.com", "/").unwrap();
    assert_eq!(web.ingress.to_string(), "shop/shop");
}

fn ingress_with_paths(paths: &[(&str, &str, &str)]) -> String {
    let mut yaml = String::from(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: paths}\n\
         spec:\n  ingressClassName: ferry\n  rules:\n  - http:\n      paths:\n",
    );
    let mut services = std::collections::BTreeSet::new();
    for (path, path_type, svc) in paths {
        yaml.push_str(&format!(
            "      - {{path: \"{path}\", pathType: {path_type}, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n"
        ));
        services.insert(*svc);
    }
    for svc in services {
        yaml.push_str(&service(svc));
    }
    yaml
}

/// Every row of the path-matching examples on
/// https://kubernetes.io/docs/concepts/services-networking/ingress/#examples, through YAML.
#[test]
fn kubernetes_path_matching_examples_through_translation() {
    #[rustfmt::skip]
    type Row<'a> = (&'a [(&'a str, &'a str, &'a str)], &'a str, Option<&'a str>);
    let rows: &[Row] = &[
        (&[("/", "Prefix", "root")], "/anything", Some("root")),
        (&[("/foo", "Exact", "foo")], "/foo", Some("foo")),
        (&[("/foo", "Exact", "foo")], "/bar", None),
        (&[("/foo", "Exact", "foo")], "/foo/", None),
        (&[("/foo/", "Exact", "foo")], "/foo", None),
        (&[("/foo", "Prefix", "foo")], "/foo", Some("foo")),
        (&[("/foo", "Prefix", "foo")], "/foo/", Some("foo")),
        (&[("/foo/", "Prefix", "foo")], "/foo", Some("foo")),
        (&[("/foo/", "Prefix", "foo")], "/foo/", Some("foo")),
        (&[("/aaa/bb", "Prefix", "bb")], "/aaa/bbb", None),
        (&[("/aaa/bbb", "Prefix", "bbb")], "/aaa/bbb", Some("bbb")),
        (&[("/aaa/bbb/", "Prefix", "bbb")], "/aaa/bbb", Some("bbb")),
        (&[("/aaa/bbb", "Prefix", "bbb")], "/aaa/bbb/", Some("bbb")),
        (
            &[("/aaa/bbb", "Prefix", "bbb")],
            "/aaa/bbb/ccc",
            Some("bbb"),
        ),
        (&[("/aaa/bbb", "Prefix", "bbb")], "/aaa/bbbxyz", None),
        (
            &[("/", "Prefix", "root"), ("/aaa", "Prefix", "aaa")],
            "/aaa/ccc",
            Some("aaa"),
        ),
        (
            &[
                ("/", "Prefix", "root"),
                ("/aaa", "Prefix", "aaa"),
                ("/aaa/bbb", "Prefix", "bbb"),
            ],
            "/aaa/bbb",
            Some("bbb"),
        ),
        (
            &[
                ("/", "Prefix", "root"),
                ("/aaa", "Prefix", "aaa"),
                ("/aaa/bbb", "Prefix", "bbb"),
            ],
            "/ccc",
            Some("root"),
        ),
        (&[("/aaa", "Prefix", "aaa")], "/ccc", None),
        (
            &[("/foo", "Prefix", "prefix"), ("/foo", "Exact", "exact")],
            "/foo",
            Some("exact"),
        ),
        // ImplementationSpecific is Prefix here.
        (
            &[("/foo", "ImplementationSpecific", "impl")],
            "/foo/bar",
            Some("impl"),
        ),
        (
            &[("/foo", "ImplementationSpecific", "impl")],
            "/foobar",
            None,
        ),
    ];
    for (paths, request, expected) in rows {
        let (s, diagnostics) = world(&ingress_with_paths(paths));
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let got = to(&s, "any.host", request);
        let expected = expected.map(|svc| format!("default/{svc}:80"));
        assert_eq!(got, expected, "paths {paths:?}, request {request}");
    }
}

#[test]
fn hosts_exact_wildcard_and_catch_all() {
    let yaml = format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: hosts}}
spec:
  ingressClassName: ferry
  rules:
  - host: foo.bar.com
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: exact, port: {{number: 80}}}}}}}}]}}
  - host: "*.bar.com"
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: wild, port: {{number: 80}}}}}}}}]}}
  - http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: any, port: {{number: 80}}}}}}}}]}}
{}{}{}"#,
        service("exact"),
        service("wild"),
        service("any")
    );
    let (s, diagnostics) = world(&yaml);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let cases = [
        ("foo.bar.com", "exact"),
        ("FOO.bar.COM", "exact"),
        ("foo.bar.com:8080", "exact"),
        ("foo.bar.com.", "exact"),
        ("baz.bar.com", "wild"),
        ("baz.bar.com:443", "wild"),
        ("baz.foo.bar.com", "any"),
        ("bar.com", "any"),
        ("example.org", "any"),
        ("", "any"),
        ("[::1]:80", "any"),
    ];
    for (host, svc) in cases {
        assert_eq!(
            to(&s, host, "/").as_deref(),
            Some(&*format!("default/{svc}:80")),
            "host {host:?}"
        );
    }
}

fn ingress(name: &str, created: Option<&str>, extra_meta: &str, spec: &str) -> String {
    let created = created
        .map(|c| format!("\n  creationTimestamp: \"{c}\""))
        .unwrap_or_default();
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}{created}{extra_meta}\nspec:\n{spec}\n"
    )
}

fn rule(host: &str, path: &str, svc: &str) -> String {
    format!(
        "  - host: {host}\n    http: {{paths: [{{path: {path}, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}]}}\n"
    )
}

#[test]
fn ingresses_for_one_host_merge_and_the_oldest_wins_conflicts() {
    let yaml = [
        ingress(
            "young",
            Some("2026-03-01T00:00:00Z"),
            "",
            &format!(
                "  ingressClassName: ferry\n  rules:\n{}{}",
                rule("a.com", "/shared", "young"),
                rule("a.com", "/young", "young")
            ),
        ),
        ingress(
            "old",
            Some("2026-01-01T00:00:00Z"),
            "",
            &format!(
                "  ingressClassName: ferry\n  rules:\n{}{}",
                rule("a.com", "/shared", "old"),
                rule("a.com", "/old", "old")
            ),
        ),
        service("young"),
        service("old"),
    ]
    .concat();
    let (s, diagnostics) = world(&yaml);
    assert_eq!(to(&s, "a.com", "/old").as_deref(), Some("default/old:80"));
    assert_eq!(
        to(&s, "a.com", "/young").as_deref(),
        Some("default/young:80")
    );
    assert_eq!(
        to(&s, "a.com", "/shared/x").as_deref(),
        Some("default/old:80"),
        "older wins"
    );
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let message = diagnostics[0].to_string();
    assert!(
        message.starts_with("Ingress default/young: spec.rules[0].http.paths[0]:"),
        "{message}"
    );
    assert!(
        message
            .contains("host a.com path Prefix /shared is already defined by Ingress default/old"),
        "{message}"
    );
}

#[test]
fn conflicts_without_age_are_decided_by_namespace_and_name() {
    let yaml = |first: &str, second: &str| {
        [
            ingress(
                second,
                None,
                "",
                &format!(
                    "  ingressClassName: ferry\n  rules:\n{}",
                    rule("a.com", "/", second)
                ),
            ),
            ingress(
                first,
                None,
                "",
                &format!(
                    "  ingressClassName: ferry\n  rules:\n{}",
                    rule("a.com", "/", first)
                ),
            ),
            service("alpha"),
            service("beta"),
        ]
        .concat()
    };
    // Whatever the order in the file, alpha < beta wins.
    for text in [
        yaml("alpha", "beta"),
        yaml("alpha", "beta")
            .replace("beta", "BETA")
            .replace("BETA", "beta"),
    ] {
        let (s, diagnostics) = world(&text);
        assert_eq!(to(&s, "a.com", "/").as_deref(), Some("default/alpha:80"));
        assert_eq!(diagnostics.len(), 1);
    }
    // Ages beat names.
    let aged = [
        ingress(
            "alpha",
            Some("2026-05-01T00:00:00Z"),
            "",
            &format!(
                "  ingressClassName: ferry\n  rules:\n{}",
                rule("a.com", "/", "alpha")
            ),
        ),
        ingress(
            "beta",
            Some("2026-04-01T00:00:00Z"),
            "",
            &format!(
                "  ingressClassName: ferry\n  rules:\n{}",
                rule("a.com", "/", "beta")
            ),
        ),
        service("alpha"),
        service("beta"),
    ]
    .concat();
    assert_eq!(
        to(&world(&aged).0, "a.com", "/").as_deref(),
        Some("default/beta:80")
    );
}

#[test]
fn default_backends_catch_what_rules_do_not() {
    let yaml = [
        // A rule-less Ingress: the catch-all.
        ingress(
            "fallback",
            None,
            "",
            "  ingressClassName: ferry\n  defaultBackend: {service: {name: catchall, port: {number: 80}}}",
        ),
        // An Ingress with rules and a default backend: the default of its hosts.
        ingress(
            "site",
            None,
            "",
            &format!(
                "  ingressClassName: ferry\n  defaultBackend: {{service: {{name: site-default, port: {{number: 80}}}}}}\n  rules:\n{}",
                rule("site.com", "/app", "app")
            ),
        ),
        // A host without http section still owns its name.
        ingress("bare", None, "", "  ingressClassName: ferry\n  rules:\n  - host: bare.com"),
        service("catchall"),
        service("site-default"),
        service("app"),
    ]
    .concat();
    let (s, diagnostics) = world(&yaml);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    assert_eq!(
        to(&s, "site.com", "/app/x").as_deref(),
        Some("default/app:80")
    );
    assert_eq!(
        to(&s, "site.com", "/other").as_deref(),
        Some("default/site-default:80")
    );
    assert_eq!(
        to(&s, "elsewhere.com", "/").as_deref(),
        Some("default/catchall:80")
    );
    assert_eq!(
        to(&s, "bare.com", "/").as_deref(),
        Some("default/catchall:80")
    );

    let two = [
        ingress("a", None, "", "  ingressClassName: ferry\n  defaultBackend: {service: {name: one, port: {number: 80}}}"),
        ingress("b", None, "", "  ingressClassName: ferry\n  defaultBackend: {service: {name: two, port: {number: 80}}}"),
        service("one"),
        service("two"),
    ]
    .concat();
    let (s, diagnostics) = world(&two);
    assert_eq!(to(&s, "x", "/").as_deref(), Some("default/one:80"));
    assert_eq!(diagnostics.len(), 1);
    assert!(
        diagnostics[0]
            .to_string()
            .contains("the default backend is already defined by Ingress default/a"),
        "{}",
        diagnostics[0]
    );
}

fn service_with_slices(slices: &str) -> String {
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: i}}
spec:
  ingressClassName: ferry
  rules:
  - http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: svc, port: {{name: http}}}}}}}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: svc}}
spec:
  ports: [{{name: http, port: 80, targetPort: web}}]
{slices}"#
    )
}

fn slice(name: &str, port: u16, endpoints: &str) -> String {
    format!(
        r#"---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}
  labels: {{kubernetes.io/service-name: svc}}
addressType: IPv4
ports: [{{name: http, port: {port}, protocol: TCP}}]
endpoints:
{endpoints}
"#
    )
}

fn endpoint(ip: &str, ready: bool, serving: bool, terminating: bool) -> String {
    format!(
        "- addresses: [{ip}]\n  conditions: {{ready: {ready}, serving: {serving}, terminating: {terminating}}}\n"
    )
}

#[test]
fn endpoints_are_selected_as_kube_proxy_does() {
    // Ready endpoints only, when there are any.
    let yaml = service_with_slices(&slice(
        "s1",
        8080,
        &[
            endpoint("10.0.0.1", true, true, false),
            endpoint("10.0.0.2", false, true, true),
            endpoint("10.0.0.3", false, false, false),
        ]
        .concat(),
    ));
    assert_eq!(
        endpoints(&world(&yaml).0, "h", "/"),
        addrs(&["10.0.0.1:8080"])
    );

    // None ready: the serving ones that are terminating; never the non-serving.
    let yaml = service_with_slices(&slice(
        "s1",
        8080,
        &[
            endpoint("10.0.0.2", false, true, true),
            endpoint("10.0.0.3", false, false, true),
            endpoint("10.0.0.4", false, false, false),
        ]
        .concat(),
    ));
    assert_eq!(
        endpoints(&world(&yaml).0, "h", "/"),
        addrs(&["10.0.0.2:8080"])
    );

    // Nothing usable: an empty upstream (503), not a missing route.
    let yaml = service_with_slices(&slice(
        "s1",
        8080,
        &endpoint("10.0.0.4", false, false, false),
    ));
    assert_eq!(endpoints(&world(&yaml).0, "h", "/"), addrs(&[]));

    // Unset conditions count as ready; an address in two slices (a move between slices) once.
    let yaml = service_with_slices(
        &[
            slice(
                "s1",
                8080,
                "- addresses: [10.0.0.9]\n- addresses: [10.0.0.1]\n",
            ),
            slice("s2", 8080, &endpoint("10.0.0.1", true, true, false)),
        ]
        .concat(),
    );
    assert_eq!(
        endpoints(&world(&yaml).0, "h", "/"),
        addrs(&["10.0.0.1:8080", "10.0.0.9:8080"])
    );
}

#[test]
fn slices_whose_port_names_do_not_match_are_reported() {
    let yaml = service_with_slices(
        &slice("s1", 8080, &endpoint("10.0.0.1", true, true, false))
            .replace("name: http, port", "name: web, port"),
    );
    let (s, diagnostics) = world(&yaml);
    assert_eq!(endpoints(&s, "h", "/"), addrs(&[]));
    assert_eq!(diagnostics.len(), 1);
    assert!(
        diagnostics[0]
            .to_string()
            .contains("have no port named \"http\""),
        "{}",
        diagnostics[0]
    );
    // A slice without endpoints (no pod yet) carries no ports: nothing to report.
    let (_, diagnostics) = world(&service_with_slices(&slice("s1", 8080, "  []").replace(
        "ports: [{name: http, port: 8080, protocol: TCP}]",
        "ports: null",
    )));
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
}

const HAND_WRITTEN_ENDPOINTS: &str = r#"
---
apiVersion: v1
kind: Endpoints
metadata: {name: svc}
subsets:
- addresses: [{ip: 192.0.2.1}, {ip: 192.0.2.2}]
  notReadyAddresses: [{ip: 192.0.2.3}]
  ports: [{name: http, port: 9090}]
"#;

#[test]
fn v1_endpoints_serve_a_service_without_slices_and_slices_win() {
    let yaml = service_with_slices(HAND_WRITTEN_ENDPOINTS);
    let (s, diagnostics) = world(&yaml);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    assert_eq!(
        endpoints(&s, "h", "/"),
        addrs(&["192.0.2.1:9090", "192.0.2.2:9090"])
    );

    let both = service_with_slices(&format!(
        "{HAND_WRITTEN_ENDPOINTS}{}",
        slice("s1", 8080, &endpoint("10.0.0.1", true, true, false))
    ));
    assert_eq!(
        endpoints(&world(&both).0, "h", "/"),
        addrs(&["10.0.0.1:8080"])
    );
}

#[test]
fn headless_and_external_name_services() {
    let headless =
        service_with_slices(&slice("s1", 8080, &endpoint("10.0.0.1", true, true, false))).replace(
            "spec:\n  ports: [{name: http",
            "spec:\n  clusterIP: None\n  ports: [{name: http",
        );
    assert!(headless.contains("clusterIP: None"));
    assert_eq!(
        endpoints(&world(&headless).0, "h", "/"),
        addrs(&["10.0.0.1:8080"])
    );

    let external = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: i}
spec:
  ingressClassName: ferry
  rules:
  - http:
      paths:
      - {path: /num, pathType: Prefix, backend: {service: {name: ext, port: {number: 8443}}}}
      - {path: /named, pathType: Prefix, backend: {service: {name: ext, port: {name: https}}}}
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: api.example.net.
  ports: [{name: https, port: 443}]
"#;
    let (s, diagnostics) = world(external);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let target = |path| s.routes.lookup("h", path).unwrap().upstream.target.clone();
    assert_eq!(
        target("/num"),
        UpstreamTarget::ExternalName {
            host: "api.example.net".into(),
            port: 8443
        }
    );
    assert_eq!(
        target("/named"),
        UpstreamTarget::ExternalName {
            host: "api.example.net".into(),
            port: 443
        }
    );
}

#[test]
fn missing_services_ports_and_resource_backends_are_reported() {
    let yaml = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: i, namespace: team}
spec:
  ingressClassName: ferry
  rules:
  - http:
      paths:
      - {path: /gone, pathType: Prefix, backend: {service: {name: gone, port: {number: 80}}}}
      - {path: /port, pathType: Prefix, backend: {service: {name: svc, port: {number: 81}}}}
      - {path: /name, pathType: Prefix, backend: {service: {name: svc, port: {name: nope}}}}
      - {path: /bucket, pathType: Prefix, backend: {resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: assets}}}
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: team}
spec:
  ports: [{port: 80}]
"#;
    let (s, diagnostics) = world(yaml);
    let messages: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "Ingress team/i: spec.rules[0].http.paths[0].backend.service: service \"gone\" not found; requests get 503",
            "Ingress team/i: spec.rules[0].http.paths[1].backend.service.port: service \"svc\" has no port 81; requests get 503",
            "Ingress team/i: spec.rules[0].http.paths[2].backend.service.port: service \"svc\" has no port \"nope\"; requests get 503",
            "Ingress team/i: spec.rules[0].http.paths[3].backend.resource: resource backends (StorageBucket assets) are not supported; this path is not served",
        ]
    );
    // Paths to missing services exist and answer 503 (no endpoints); the resource path is absent.
    assert_eq!(endpoints(&s, "h", "/gone"), addrs(&[]));
    assert_eq!(endpoints(&s, "h", "/port"), addrs(&[]));
    assert!(s.routes.lookup("h", "/bucket").is_none());
}

#[test]
fn ingress_class_selection() {
    let class = |name: &str, controller: &str, default: bool| {
        let annotation = if default {
            "\n  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}"
        } else {
            ""
        };
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: {name}{annotation}\nspec:\n  controller: {controller}\n"
        )
    };
    let by_spec = |name: &str, class: &str| {
        ingress(
            name,
            None,
            "",
            &format!(
                "  ingressClassName: {class}\n  rules:\n{}",
                rule(&format!("{name}.com"), "/", "svc")
            ),
        )
    };
    let by_annotation = |name: &str, class: &str| {
        ingress(
            name,
            None,
            &format!("\n  annotations: {{kubernetes.io/ingress.class: {class}}}"),
            &format!("  rules:\n{}", rule(&format!("{name}.com"), "/", "svc")),
        )
    };
    let classless = |name: &str| {
        ingress(
            name,
            None,
            "",
            &format!("  rules:\n{}", rule(&format!("{name}.com"), "/", "svc")),
        )
    };
    let served = |config: &ControllerConfig, yaml: String| -> Vec<String> {
        let (s, _) = world_with(config, &format!("{yaml}{}", service("svc")));
        let mut hosts: Vec<String> = s
            .routes
            .routes()
            .iter()
            .map(|r| r.host.to_string())
            .collect();
        hosts.sort();
        hosts
    };
    let config = ControllerConfig::default();
    let base = [
        by_spec("mine", "ferry"),
        by_spec("theirs", "nginx"),
        by_annotation("legacy", "ferry"),
        by_annotation("legacy-other", "nginx"),
        classless("classless"),
    ]
    .concat();

    // No IngressClass objects: our class name decides; class-less Ingresses are not ours.
    assert_eq!(served(&config, base.clone()), ["legacy.com", "mine.com"]);
    // Our IngressClass as the default: class-less Ingresses are ours too.
    let with_default = format!(
        "{base}{}",
        class("ferry", "ferry.dev/ingress-controller", true)
    );
    assert_eq!(
        served(&config, with_default),
        ["classless.com", "legacy.com", "mine.com"]
    );
    // Another class is the default: class-less ones are its.
    let other_default = format!(
        "{base}{}{}",
        class("ferry", "ferry.dev/ingress-controller", false),
        class("nginx", "k8s.io/ingress-nginx", true)
    );
    assert_eq!(served(&config, other_default), ["legacy.com", "mine.com"]);
    // Told to take class-less Ingresses.
    let watch_all = ControllerConfig {
        watch_ingress_without_class: true,
        ..ControllerConfig::default()
    };
    assert_eq!(
        served(&watch_all, base.clone()),
        ["classless.com", "legacy.com", "mine.com"]
    );
    // A configurable class name.
    let internal = ControllerConfig {
        ingress_class: "nginx".to_owned(),
        ..ControllerConfig::default()
    };
    assert_eq!(
        served(&internal, base.clone()),
        ["legacy-other.com", "theirs.com"]
    );
    // An IngressClass of our name that belongs to another controller: nothing is ours, and why is said.
    let taken = format!("{base}{}", class("ferry", "example.com/other", true));
    assert_eq!(served(&config, taken.clone()), Vec::<String>::new());
    let (_, diagnostics) = world(&format!("{taken}{}", service("svc")));
    assert!(
        diagnostics.iter().any(|d| d
            .to_string()
            .contains("IngressClass ferry: its controller is \"example.com/other\"")),
        "{diagnostics:?}"
    );
}

#[test]
fn load_balance_annotation_chooses_the_policy() {
    let yaml = [
        ingress(
            "ewma",
            None,
            "\n  annotations: {ferry.dev/load-balance: ewma}",
            &format!(
                "  ingressClassName: ferry\n  rules:\n{}",
                rule("a.com", "/", "svc")
            ),
        ),
        ingress(
            "rr",
            None,
            "",
            &format!(
                "  ingressClassName: ferry\n  rules:\n{}",
                rule("b.com", "/", "svc")
            ),
        ),
        ingress(
            "bad",
            None,
            "\n  annotations: {ferry.dev/load-balance: fastest}",
            &format!(
                "  ingressClassName: ferry\n  rules:\n{}",
                rule("c.com", "/", "svc")
            ),
        ),
        service("svc"),
    ]
    .concat();
    let (s, diagnostics) = world(&yaml);
    let policy = |host| s.routes.lookup(host, "/").unwrap().upstream.load_balance;
    assert_eq!(policy("a.com"), LoadBalance::Ewma);
    assert_eq!(policy("b.com"), LoadBalance::RoundRobin);
    assert_eq!(policy("c.com"), LoadBalance::RoundRobin);
    // One upstream per Service port and policy, shared by every route that uses it.
    assert_eq!(s.upstreams.len(), 2);
    assert_eq!(
        diagnostics
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "Ingress default/bad: annotation ferry.dev/load-balance: \"fastest\" is not one of round-robin, ewma; using round-robin"
        ]
    );
}

#[test]
fn translation_is_deterministic() {
    let yaml = std::fs::read_to_string("tests/fixtures/shop.yaml").unwrap();
    let (a, _) = world(&yaml);
    let (b, _) = world(&yaml);
    let show = |s: &Snapshot| format!("{:?}{:?}", s.routes.routes(), s.upstreams);
    assert_eq!(show(&a), show(&b));
}

#[test]
fn invalid_objects_are_refused_naming_file_object_and_field() {
    let errors = load_errors(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: broken, namespace: web}
spec:
  rules:
  - host: 10.0.0.1
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}
  - host: ok.com
    http:
      paths:
      - {path: relative, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}
      - {path: /a//b, pathType: Exact, backend: {service: {name: s, port: {number: 80}}}}
      - {path: /x, pathType: Regex, backend: {service: {name: s, port: {number: 80}}}}
      - {path: /y, pathType: Prefix, backend: {service: {name: s, port: {number: 70000}}}}
      - {path: /z, pathType: Prefix, backend: {service: {name: s}}}
"#,
    );
    assert_eq!(
        errors,
        [
            "bad.yaml: document 1: Ingress web/broken: spec.rules[0].host: host \"10.0.0.1\" is an IP address; Ingress hosts must be DNS names",
            "bad.yaml: document 1: Ingress web/broken: spec.rules[1].http.paths[0].path: path \"relative\" must be an absolute path (start with '/')",
            "bad.yaml: document 1: Ingress web/broken: spec.rules[1].http.paths[1].path: path \"/a//b\" must not contain \"//\"",
            "bad.yaml: document 1: Ingress web/broken: spec.rules[1].http.paths[2].pathType: unsupported value \"Regex\": must be Exact, Prefix or ImplementationSpecific",
            "bad.yaml: document 1: Ingress web/broken: spec.rules[1].http.paths[3].backend.service.port.number: 70000 is not a port: must be between 1 and 65535",
            "bad.yaml: document 1: Ingress web/broken: spec.rules[1].http.paths[4].backend.service.port: one of number or name is required",
        ]
    );
}

#[test]
fn malformed_documents_are_refused_naming_file_document_and_field() {
    let wrong_type = load_errors(
        "apiVersion: v1\nkind: Service\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: eighty}]\n",
    );
    assert_eq!(wrong_type.len(), 1);
    assert!(
        wrong_type[0].starts_with(
            "bad.yaml: document 2: Service s: spec.ports[0].port: invalid type: string \"eighty\""
        ),
        "{wrong_type:?}"
    );

    let missing = load_errors(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  rules:\n  - http:\n      paths:\n      - {path: /, backend: {service: {name: s, port: {number: 80}}}}\n",
    );
    assert_eq!(
        missing,
        ["bad.yaml: document 1: Ingress default/i: spec.rules[0].http.paths[0].pathType: required"]
    );

    let syntax = load_errors("apiVersion: v1\nkind: Service\nmetadata: {name: s\n");
    assert!(
        syntax[0].starts_with("bad.yaml: document 1: not valid YAML:"),
        "{syntax:?}"
    );

    let old =
        load_errors("apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: legacy}\n");
    assert_eq!(
        old,
        [
            "bad.yaml: document 1: Ingress legacy: apiVersion extensions/v1beta1 is not supported; use networking.k8s.io/v1"
        ]
    );

    let untyped = load_errors("just a string\n");
    assert_eq!(
        untyped,
        ["bad.yaml: document 1: expected a Kubernetes object (a mapping)"]
    );

    let twice = load_errors(&format!("{}{}", service("s"), service("s")));
    assert!(
        twice
            .iter()
            .any(|e| e.contains("Service default/s is defined twice; it is also in bad.yaml")),
        "{twice:?}"
    );
}

#[test]
fn other_kinds_are_skipped_and_json_is_read() {
    let yaml = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec: {{}}\n---\n{}",
        r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "json"}, "spec": {"ports": [{"port": 80}]}}"#
    );
    let loaded = load_texts([(Path::new("mixed.yaml"), yaml.as_str())]).unwrap();
    assert_eq!(loaded.skipped, ["Deployment web"]);
    assert!(loaded.index.service("default", "json").is_some());
}

#[test]
fn services_for_the_l4_path() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.10
  externalIPs: [192.0.2.50]
  externalTrafficPolicy: Local
  internalTrafficPolicy: Local
  healthCheckNodePort: 32000
  sessionAffinity: ClientIP
  ports:
  - {name: http, port: 80, nodePort: 30080}
  - {name: dns, port: 53, protocol: UDP, nodePort: 30053}
  - {name: sctp, port: 99, protocol: SCTP}
status: {loadBalancer: {ingress: [{ip: 198.51.100.1}, {hostname: lb.example.com}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}, {name: dns, port: 5353, protocol: UDP}]
endpoints:
- {addresses: [10.0.1.1], nodeName: here, conditions: {ready: false, serving: true, terminating: true}}
- {addresses: [10.0.2.1], nodeName: there, conditions: {ready: true}}
---
apiVersion: v1
kind: Service
metadata: {name: plain}
spec: {clusterIP: 10.96.0.11, ports: [{port: 80, nodePort: 30099}]}
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec: {clusterIP: None, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: elsewhere, labels: {service.kubernetes.io/service-proxy-name: other-proxy}}
spec: {clusterIP: 10.96.0.12, ports: [{port: 80}]}
"#;
    let config = ControllerConfig {
        node_name: Some("here".to_owned()),
        ..ControllerConfig::default()
    };
    let (s, _) = world_with(&config, yaml);
    let labels: Vec<String> = s.services.services.iter().map(|s| s.label()).collect();
    assert_eq!(
        labels,
        [
            "default/plain:80/TCP",
            "default/web:dns/UDP",
            "default/web:http/TCP"
        ]
    );
    let plain = &s.services.services[0];
    assert_eq!(
        plain.node_port, None,
        "a ClusterIP Service has no NodePort, whatever it says"
    );
    let web = &s.services.services[2];
    assert_eq!(
        web.cluster_ips,
        ["10.96.0.10".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(
        web.external_ips.len(),
        2,
        "externalIPs and the load balancer's IP: {:?}",
        web.external_ips
    );
    assert_eq!(
        (web.node_port, web.health_check_node_port),
        (Some(30080), Some(32000))
    );
    assert_eq!(web.affinity_timeout, Some(10_800));
    // Local policies: only this node's endpoints, chosen among themselves (KEP-1669): the local
    // one is terminating but serving, and no local endpoint is ready, so it is used.
    let show = |b: &[ferry_model::L4Backend]| {
        b.iter()
            .map(|b| (b.addr.to_string(), b.local))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        show(&web.external_backends),
        [("10.0.1.1:8080".to_owned(), true)]
    );
    assert_eq!(
        show(&web.internal_backends),
        [("10.0.1.1:8080".to_owned(), true)]
    );
    assert_eq!(s.node_name.as_deref(), Some("here"));
}
