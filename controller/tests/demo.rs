//! `ferry demo`, the first thing a newcomer runs: every curl line it prints must work.

#[path = "../../dataplane/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use support::{http1_client, send};

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Parses `curl [-H 'Host: h'] http://addr/path ...` into host header and URL.
fn parse_curl(line: &str) -> (Option<String>, String) {
    let line = line.trim().trim_start_matches("curl ");
    let (host, rest) = match line.strip_prefix("-H 'Host: ") {
        Some(rest) => {
            let (host, rest) = rest.split_once("' ").unwrap();
            (Some(host.to_owned()), rest)
        }
        None => (None, line),
    };
    (host, rest.split_whitespace().next().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_printed_curl_line_answers() {
    let (http, admin) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "demo",
            "--http-addr",
            &http.to_string(),
            "--admin-addr",
            &admin.to_string(),
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut curls = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.contains("Ctrl-C stops") {
                break;
            }
            if line.trim_start().starts_with("curl ") {
                curls.push(line);
            }
        }
        curls
    })
    .await
    .unwrap();
    assert!(lines.len() >= 5, "the demo prints curl lines: {lines:?}");

    let client = http1_client();
    support::eventually("the demo is ready", || {
        let client = client.clone();
        async move {
            let req = http::Request::get(format!("http://{admin}/readyz"))
                .body(Default::default())
                .unwrap();
            send(&client, req).await.is_ok_and(|r| r.status == 200)
        }
    })
    .await;
    for line in &lines {
        let (host, url) = parse_curl(line);
        let mut req = http::Request::get(&url);
        if let Some(host) = &host {
            req = req.header("host", host);
        }
        let reply = send(&client, req.body(Default::default()).unwrap())
            .await
            .unwrap();
        let expected = if line.contains("no route") { 404 } else { 200 };
        assert_eq!(reply.status, expected, "{line}");
        if expected == 200 && !url.ends_with("/metrics") {
            assert!(!reply.echo().backend.is_empty(), "{line}");
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
