//! `ferry probe`: connects (or sends datagrams) to an address the way an application would,
//! and prints one JSON line per attempt: who answered, the client address it saw, and the peer
//! the socket reports (for a ClusterIP served by socket LB, the ClusterIP itself).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::{ProbeArgs, ProbeProtocol};

const TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn run(args: &ProbeArgs) -> anyhow::Result<()> {
    for _ in 0..args.count {
        let line = match args.protocol {
            ProbeProtocol::Tcp => tcp(args.addr, args.source),
            ProbeProtocol::Udp => udp(args.addr, args.connect, args.source),
        };
        let line = line.unwrap_or_else(
            |e| json!({ "ok": false, "error": e.to_string(), "kind": format!("{:?}", e.kind()) }),
        );
        println!("{line}");
    }
    Ok(())
}

fn tcp(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<serde_json::Value> {
    let started = Instant::now();
    let mut stream = match source {
        None => TcpStream::connect_timeout(&addr, TIMEOUT)?,
        Some(ip) => {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            socket.bind(&SocketAddr::new(ip, 0).into())?;
            socket.connect_timeout(&addr.into(), TIMEOUT)?;
            socket.into()
        }
    };
    let connect_ms = started.elapsed().as_secs_f64() * 1e3;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let peer = stream.peer_addr()?;
    stream.write_all(b"GET /probe HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let echo: serde_json::Value =
        serde_json::from_str(body.trim()).unwrap_or(serde_json::Value::Null);
    Ok(json!({
        "ok": true,
        "backend": echo["backend"],
        "client": echo["client"],
        "peer": peer.to_string(),
        "connect_ms": connect_ms,
    }))
}

fn udp(
    addr: SocketAddr,
    connect: bool,
    source: Option<IpAddr>,
) -> std::io::Result<serde_json::Value> {
    let socket = UdpSocket::bind(SocketAddr::new(
        source.unwrap_or(IpAddr::from([0, 0, 0, 0])),
        0,
    ))?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    let mut buf = [0u8; 2048];
    let (len, from) = if connect {
        socket.connect(addr)?;
        socket.send(b"probe")?;
        let len = socket.recv(&mut buf)?;
        (len, socket.peer_addr()?)
    } else {
        socket.send_to(b"probe", addr)?;
        socket.recv_from(&mut buf)?
    };
    let reply = String::from_utf8_lossy(&buf[..len]);
    let (backend, client) = reply.split_once(' ').unwrap_or((&reply, ""));
    Ok(json!({ "ok": true, "backend": backend, "client": client, "peer": from.to_string() }))
}
