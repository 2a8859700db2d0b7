//! `ferry demo`, the first thing a newcomer runs: every curl line it prints must work, run as
//! printed with the real `curl`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Runs a printed `curl …   # comment` line from the repository root; returns the status.
fn run_curl(line: &str) -> String {
    let command = line.split('#').next().unwrap().trim();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{command} -s -o /dev/null -w '%{{http_code}}' --max-time 40"
        ))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("bash and curl are installed by scripts/setup.sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_printed_curl_line_answers() {
    let (http, https, admin) = (free_port(), free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "demo",
            "--http-addr",
            &http.to_string(),
            "--https-addr",
            &https.to_string(),
        ])
        .args(["--admin-addr", &admin.to_string()])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut curls = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("Ctrl-C stops") {
            break;
        }
        if line.trim_start().starts_with("curl ") {
            curls.push(line);
        }
    }
    assert!(
        curls.iter().any(|l| l.contains("https://")),
        "the demo shows an HTTPS host: {curls:?}"
    );

    // curl itself waits, with bounded patience, for the demo to be ready.
    let ready =
        format!("curl -f --retry 8 --retry-all-errors --retry-max-time 30 http://{admin}/readyz");
    assert_eq!(run_curl(&ready), "200", "the demo did not become ready");
    for line in &curls {
        let expected = if line.contains("no route") {
            "404"
        } else if line.contains("308") {
            "308"
        } else {
            "200"
        };
        assert_eq!(run_curl(line), expected, "{line}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
