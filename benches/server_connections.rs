//! What a connection costs the server (feature `server`), the figures behind its choice of one
//! thread per connection over an async runtime (docs/ARCHITECTURE.md, issue #18):
//!
//! 1. Memory: the process's resident set before and after `N` idle connections (each has
//!    answered one ApiVersions request, so its thread has run), per connection.
//! 2. Latency: ApiVersions round trips on one connection, against a raw TCP echo thread
//!    answering the same number of bytes in the same run (the floor of any server here).
//!
//! `cargo bench --features server --bench server_connections`; `EMBROKER_BENCH_SCALE` scales
//! the counts.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(clippy::too_many_arguments)]
#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use embroker::{Broker, ServerConfig};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use support::{percentiles, scaled};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn api_versions_frame(correlation_id: i32) -> Vec<u8> {
    let version = 3;
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("bench")))
        .encode(
            &mut body,
            ApiKey::ApiVersions.request_header_version(version),
        )
        .unwrap();
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("bench"))
        .with_client_software_version(StrBytes::from_static_str("1"))
        .encode(&mut body, version)
        .unwrap();
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Sends `frame`, reads one size-prefixed response; returns its size.
fn round_trip(stream: &mut TcpStream, frame: &[u8]) -> usize {
    stream.write_all(frame).unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let size = i32::from_be_bytes(size) as usize;
    let mut buf = vec![0u8; size];
    stream.read_exact(&mut buf).unwrap();
    size
}

fn main() {
    let broker = Broker::temporary().unwrap();
    let connections = scaled(1000).max(10) as usize;
    let server = broker
        .serve_with(
            "127.0.0.1:0",
            ServerConfig::default().max_connections(connections + 10),
        )
        .unwrap();
    let addr = server.local_addr();
    let frame = api_versions_frame(1);

    // 1. Memory per idle connection.
    let before = rss_kib();
    let mut idle = Vec::with_capacity(connections);
    let mut response_size = 0;
    for _ in 0..connections {
        let mut s = TcpStream::connect(addr).unwrap();
        response_size = round_trip(&mut s, &frame);
        idle.push(s);
    }
    let after = rss_kib();
    let per = (after.saturating_sub(before)) as f64 / connections as f64;
    println!(
        "server connections: {connections} idle connections: resident set {before} KiB -> \
         {after} KiB, {per:.1} KiB per connection (thread and socket; client sockets of this \
         process included)"
    );
    drop(idle);

    // 2. Round trips on one connection against a raw echo of the same size.
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = echo.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut size = [0u8; 4];
        loop {
            if s.read_exact(&mut size).is_err() {
                return;
            }
            let mut req = vec![0u8; i32::from_be_bytes(size) as usize];
            s.read_exact(&mut req).unwrap();
            let mut out = (response_size as i32).to_be_bytes().to_vec();
            out.resize(4 + response_size, 0);
            s.write_all(&out).unwrap();
        }
    });
    let mut server_conn = TcpStream::connect(addr).unwrap();
    server_conn.set_nodelay(true).unwrap();
    let mut echo_conn = TcpStream::connect(echo_addr).unwrap();
    echo_conn.set_nodelay(true).unwrap();
    let n = scaled(20_000) as usize;
    let mut server_times = Vec::with_capacity(n);
    let mut echo_times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        round_trip(&mut server_conn, &frame);
        server_times.push(t.elapsed());
        let t = Instant::now();
        round_trip(&mut echo_conn, &frame);
        echo_times.push(t.elapsed());
    }
    let ps = [50.0, 99.0];
    let s = percentiles(server_times, &ps);
    let e = percentiles(echo_times, &ps);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "server connections: ApiVersions round trip ({response_size} B answer), {n} interleaved \
         rounds: p50 {:.1} us / p99 {:.1} us; raw TCP echo thread, same sizes: p50 {:.1} us / \
         p99 {:.1} us; ratio at p50 {:.2}x",
        us(s[0]),
        us(s[1]),
        us(e[0]),
        us(e[1]),
        us(s[0]) / us(e[0]).max(0.001)
    );
}
