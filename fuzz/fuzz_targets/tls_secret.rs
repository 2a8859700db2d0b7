//! Any bytes as the certificate and key of a kubernetes.io/tls Secret that an Ingress uses:
//! the Secret is served or refused with a diagnostic, never a panic.
#![no_main]

use std::path::Path;

use ferry_controller::ControllerConfig;
use ferry_controller::manifests::load_texts;
use ferry_controller::translate::translate;
use libfuzzer_sys::fuzz_target;

const SITE: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: site, namespace: default}
spec:
  ingressClassName: ferry
  tls: [{hosts: [fuzz.test], secretName: fuzz-tls}]
  rules: [{host: fuzz.test, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]
";

fuzz_target!(|input: (&[u8], &[u8])| {
    let (crt, key) = input;
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: fuzz-tls, namespace: default}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        base64(crt),
        base64(key)
    );
    let files = [
        (Path::new("site.yaml"), SITE),
        (Path::new("secret.yaml"), secret.as_str()),
    ];
    if let Ok(loaded) = load_texts(files) {
        let _ = translate(&loaded.index, &ControllerConfig::default());
    }
});

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        out.push_str(&"=".repeat(3 - chunk.len()));
    }
    if out.is_empty() {
        "\"\"".to_owned()
    } else {
        out
    }
}
