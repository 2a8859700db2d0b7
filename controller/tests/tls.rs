//! TLS from Kubernetes objects: Secrets of every supported key type, broken Secrets, which
//! hosts are HTTPS and how plain HTTP treats them. Secrets go through the manifests loader and
//! translation, then through a real proxy and a real rustls handshake.

#[path = "../../dataplane/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use ferry_controller::ControllerConfig;
use ferry_controller::manifests::load_texts;
use ferry_controller::translate::{Diagnostic, translate};
use ferry_dataplane::ProxyConfig;
use ferry_dataplane::l7::self_signed_certificate;
use ferry_model::{HostMatch, ObjectRef, Snapshot, SnapshotSink};
use support::*;

fn world_with(config: &ControllerConfig, yaml: &str) -> (Snapshot, Vec<String>) {
    let loaded = load_texts([(Path::new("tls.yaml"), yaml)]).unwrap_or_else(|e| {
        panic!(
            "{}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let t = translate(&loaded.index, config);
    let messages = t.diagnostics.iter().map(Diagnostic::to_string).collect();
    (t.snapshot, messages)
}

fn world(yaml: &str) -> (Snapshot, Vec<String>) {
    world_with(&ControllerConfig::default(), yaml)
}

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

fn secret(name: &str, crt: &str, key: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(crt),
        indent(key)
    )
}

/// An Ingress serving `hosts` over TLS with one Secret each (`host` → Secret `host-tls`).
fn tls_ingress(name: &str, hosts: &[&str], extra_meta: &str) -> String {
    let mut yaml = format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}{extra_meta}\nspec:\n  ingressClassName: ferry\n  tls:\n"
    );
    for h in hosts {
        yaml.push_str(&format!(
            "  - {{hosts: [\"{h}\"], secretName: {}-tls}}\n",
            h.replace('*', "star")
        ));
    }
    yaml.push_str("  rules:\n");
    for h in hosts {
        yaml.push_str(&format!(
            "  - host: \"{h}\"\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}\n"
        ));
    }
    yaml
}

const WEB: &str =
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n";

/// Runs openssl with `args`, feeding `input`; returns stdout.
fn openssl(args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl is installed by scripts/setup.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A self-signed certificate for `host` with a new key of `algorithm` (openssl genpkey
/// arguments); the key in the PEM form asked for.
fn openssl_certificate(host: &str, algorithm: &[&str], traditional: bool) -> (String, String) {
    let mut args = vec!["genpkey"];
    args.extend(algorithm);
    let pkcs8 = openssl(&args, "");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.pem");
    std::fs::write(&key_file, &pkcs8).unwrap();
    let subject = format!("/CN={host}");
    let san = format!("subjectAltName=DNS:{host}");
    let crt = openssl(
        &[
            "req",
            "-x509",
            "-key",
            key_file.to_str().unwrap(),
            "-subj",
            &subject,
            "-addext",
            &san,
            "-days",
            "2",
        ],
        "",
    );
    // `-traditional` writes PKCS#1 for RSA and SEC1 for EC keys.
    let key = if traditional {
        openssl(&["pkey", "-traditional"], &pkcs8)
    } else {
        pkcs8
    };
    (crt, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_type_and_pem_form_serves_handshakes() {
    let cases: &[(&str, &[&str], bool, &str)] = &[
        (
            "rsa-pkcs1.test",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            true,
            "BEGIN RSA PRIVATE KEY",
        ),
        (
            "rsa-pkcs8.test",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            false,
            "BEGIN PRIVATE KEY",
        ),
        (
            "p256-sec1.test",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            true,
            "BEGIN EC PRIVATE KEY",
        ),
        (
            "p256-pkcs8.test",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            false,
            "BEGIN PRIVATE KEY",
        ),
        (
            "p384-sec1.test",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            true,
            "BEGIN EC PRIVATE KEY",
        ),
        (
            "p384-pkcs8.test",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            false,
            "BEGIN PRIVATE KEY",
        ),
        (
            "ed25519.test",
            &["-algorithm", "ED25519"],
            false,
            "BEGIN PRIVATE KEY",
        ),
    ];
    let hosts: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let mut yaml = format!("{}{WEB}", tls_ingress("keys", &hosts, ""));
    for (host, algorithm, traditional, marker) in cases {
        let (crt, key) = openssl_certificate(host, algorithm, *traditional);
        assert!(key.contains(marker), "{host}: {key}");
        yaml.push_str(&secret(&format!("{host}-tls"), &crt, &key));
    }
    let (snapshot, diagnostics) = world(&yaml);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");

    let proxy = start_proxy_tls(ProxyConfig::default(), self_signed_certificate().unwrap());
    proxy.router.publish(snapshot);
    for (host, _, _, _) in cases {
        let (_, leaf) = tls_connect(proxy.tls_addr.unwrap(), Some(host), &["h2"])
            .await
            .unwrap();
        let expected = openssl_leaf_der(&yaml, host);
        assert!(!expected.is_empty());
        assert_eq!(leaf, expected, "{host} is served its own certificate");
    }
}

/// The DER of the certificate in Secret `host-tls` of `yaml`, through openssl (an independent
/// parser).
fn openssl_leaf_der(yaml: &str, host: &str) -> Vec<u8> {
    let start = yaml.find(&format!("name: {host}-tls}}")).unwrap();
    let pem_start = start + yaml[start..].find("-----BEGIN CERTIFICATE-----").unwrap();
    let pem_end = pem_start + yaml[pem_start..].find("-----END CERTIFICATE-----").unwrap() + 25;
    let pem: String = yaml[pem_start..pem_end]
        .lines()
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.pem");
    std::fs::write(&file, pem).unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in", file.to_str().unwrap()])
        .output()
        .unwrap();
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_secrets_are_reported_and_their_hosts_get_the_default_certificate() {
    let pki = Pki::default();
    let good = pki.issue(&["good.test"]);
    let other = pki.issue(&["other.test"]);
    let garbage_pem =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    let hosts = [
        "good.test",
        "badpem.test",
        "nokey.test",
        "mismatch.test",
        "nocert.test",
        "keyiscert.test",
        "missing.test",
    ];
    let yaml = [
        tls_ingress("site", &hosts, ""),
        WEB.to_owned(),
        secret("good.test-tls", &good.chain_pem, &good.key_pem),
        secret("badpem.test-tls", garbage_pem, &good.key_pem),
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: nokey.test-tls}\ntype: kubernetes.io/tls\nstringData: {tls.crt: x}\n".to_owned(),
        secret("mismatch.test-tls", &good.chain_pem, &other.key_pem),
        secret("nocert.test-tls", "not pem at all", &good.key_pem),
        secret("keyiscert.test-tls", &good.chain_pem, &good.chain_pem),
        // An Opaque Secret of the right name is not a certificate: as good as missing.
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: missing.test-tls}\ntype: Opaque\nstringData: {password: hunter2}\n".to_owned(),
    ]
    .concat();
    let (snapshot, diagnostics) = world(&yaml);
    let expected = [
        (
            1,
            "Secret default/badpem.test-tls is not usable: tls.crt is not a valid PEM certificate chain",
        ),
        (
            2,
            "Secret default/nokey.test-tls is not usable: tls.key is missing",
        ),
        (
            3,
            "Secret default/mismatch.test-tls is not usable: tls.key does not match the certificate in tls.crt",
        ),
        (
            4,
            "Secret default/nocert.test-tls is not usable: tls.crt holds no PEM certificate",
        ),
        (
            5,
            "Secret default/keyiscert.test-tls is not usable: tls.key holds no PEM private key (PKCS#1, PKCS#8 or SEC1)",
        ),
        (
            6,
            "Secret \"missing.test-tls\" not found (or not of type kubernetes.io/tls)",
        ),
    ];
    assert_eq!(diagnostics.len(), expected.len(), "{diagnostics:#?}");
    for ((i, text), d) in expected.iter().zip(&diagnostics) {
        assert!(
            d.starts_with(&format!("Ingress default/site: spec.tls[{i}].secretName: ")),
            "{d}"
        );
        assert!(d.contains(text), "{d}\nshould contain: {text}");
        assert!(d.ends_with("its hosts get the default certificate"), "{d}");
    }
    // The good host keeps its certificate; the broken ones get the default one; all still route.
    let generated = self_signed_certificate().unwrap();
    let proxy = start_proxy_tls(ProxyConfig::default(), generated.clone());
    proxy.router.publish(snapshot);
    let tls = proxy.tls_addr.unwrap();
    assert_eq!(
        tls_connect(tls, Some("good.test"), &[]).await.unwrap().1,
        good.leaf_der
    );
    for host in &hosts[1..] {
        let leaf = tls_connect(tls, Some(host), &[]).await.unwrap().1;
        assert_eq!(leaf, generated.cert[0].to_vec(), "{host}");
    }
}

#[test]
fn tls_hosts_redirect_plain_http_unless_told_otherwise() {
    let pki = Pki::default();
    let cert = pki.issue(&["a.com", "*.wild.com"]);
    let rules = |hosts: &[&str]| -> String {
        hosts
            .iter()
            .map(|h| format!("  - host: \"{h}\"\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}\n"))
            .collect()
    };
    let ingress = |name: &str, meta: &str, tls: &str, hosts: &[&str]| {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}{meta}\nspec:\n  ingressClassName: ferry\n{tls}  rules:\n{}",
            rules(hosts)
        )
    };
    let yaml = [
        // TLS for a.com and the *.wild.com wildcard; b.com in the same Ingress has none.
        ingress("main", "", "  tls: [{hosts: [a.com, \"*.wild.com\"], secretName: cert}]\n", &["a.com", "b.com", "x.wild.com"]),
        // Another Ingress's path on a TLS host redirects too, unless it opts out.
        ingress("optout", "\n  annotations: {ferry.dev/ssl-redirect: \"false\"}", "", &["a.com"]).replace("path: /,", "path: /legacy,"),
        // Forced without a tls section, with HSTS.
        ingress(
            "forced",
            "\n  annotations: {ferry.dev/force-ssl-redirect: \"true\", ferry.dev/hsts: \"true\", ferry.dev/hsts-max-age: \"600\", ferry.dev/hsts-include-subdomains: \"true\"}",
            "",
            &["c.com"],
        ),
        // TLS without hosts: the Ingress's rule hosts.
        ingress("implicit", "", "  tls: [{secretName: cert}]\n", &["d.com"]),
        WEB.to_owned(),
        secret("cert", &cert.chain_pem, &cert.key_pem),
    ]
    .concat();
    let (s, diagnostics) = world(&yaml);
    let https = |host: &str, path: &str| s.routes.lookup(host, path).unwrap().https.clone();
    assert!(https("a.com", "/").redirect);
    assert!(
        !https("a.com", "/legacy").redirect,
        "ferry.dev/ssl-redirect: false"
    );
    assert!(!https("b.com", "/").redirect, "no tls section for b.com");
    assert!(
        https("x.wild.com", "/").redirect,
        "a wildcard tls host covers it"
    );
    assert!(https("d.com", "/").redirect);
    let forced = https("c.com", "/");
    assert!(forced.redirect);
    assert_eq!(
        forced.hsts.as_deref(),
        Some("max-age=600; includeSubDomains")
    );
    assert_eq!(https("a.com", "/").hsts, None);
    // d.com is not a name of the certificate: said, and still served with it.
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert!(diagnostics[0].contains("Ingress default/implicit: spec.tls[0].secretName: the certificate of Secret default/cert is not valid for host d.com (it names a.com, *.wild.com)"), "{}", diagnostics[0]);
    assert!(
        s.certs
            .get(&HostMatch::parse(Some("d.com")).unwrap())
            .is_some()
    );
}

#[test]
fn certificate_conflicts_default_certificate_and_annotations() {
    let pki = Pki::default();
    let (one, two) = (pki.issue(&["a.com"]), pki.issue(&["a.com"]));
    let with_tls = |name: &str, created: &str, secret_name: &str| {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, creationTimestamp: \"{created}\"}}\nspec:\n  ingressClassName: ferry\n  tls: [{{hosts: [a.com], secretName: {secret_name}}}]\n  defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}\n"
        )
    };
    let yaml = [
        with_tls("young", "2026-06-01T00:00:00Z", "two"),
        with_tls("old", "2026-01-01T00:00:00Z", "one"),
        secret("one", &one.chain_pem, &one.key_pem),
        secret("two", &two.chain_pem, &two.key_pem),
        secret("fallback", &two.chain_pem, &two.key_pem),
        WEB.to_owned(),
    ]
    .concat();
    let config = ControllerConfig {
        default_certificate: Some(ObjectRef::new("default", "fallback")),
        ..ControllerConfig::default()
    };
    let (s, diagnostics) = world_with(&config, &yaml);
    let a = s.certs.lookup("a.com").unwrap();
    assert_eq!(
        a.secret.to_string(),
        "default/one",
        "the older Ingress wins"
    );
    assert_eq!(
        s.certs.lookup("elsewhere.com").unwrap().secret.to_string(),
        "default/fallback"
    );
    // (Both Ingresses also set a catch-all defaultBackend: that conflict is reported too.)
    assert_eq!(diagnostics.len(), 2, "{diagnostics:#?}");
    assert!(diagnostics[0].contains("Ingress default/young: spec.tls[0].secretName: the certificate of host a.com (Secret default/one) is already defined by Ingress default/old"), "{}", diagnostics[0]);

    let missing = ControllerConfig {
        default_certificate: Some(ObjectRef::new("tls", "nope")),
        ..ControllerConfig::default()
    };
    let (s, diagnostics) = world_with(&missing, &yaml);
    assert!(s.certs.get(&HostMatch::Any).is_none());
    assert!(diagnostics.iter().any(|d| d == "default certificate Secret tls/nope: not found; the generated self-signed certificate is used"), "{diagnostics:#?}");

    let typo = tls_ingress(
        "typo",
        &["a.com"],
        "\n  annotations: {ferry.dev/ssl-redirct: \"false\", ferry.dev/hsts: \"yes\"}",
    );
    let (_, diagnostics) = world(&format!(
        "{typo}{WEB}{}",
        secret("a.com-tls", &one.chain_pem, &one.key_pem)
    ));
    assert_eq!(diagnostics.len(), 2, "{diagnostics:#?}");
    assert!(
        diagnostics[0].starts_with(
            "Ingress default/typo: annotation ferry.dev/ssl-redirct is not one ferry knows"
        ),
        "{}",
        diagnostics[0]
    );
    assert_eq!(
        diagnostics[1],
        "Ingress default/typo: annotation ferry.dev/hsts: \"yes\" is not one of \"true\" or \"false\"; using false"
    );
}
