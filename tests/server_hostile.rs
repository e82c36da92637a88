//! Hostile clients against the Kafka protocol server (feature `server`): frames of absurd or
//! negative size, unknown API keys and versions, truncated and garbage bodies, counts that
//! claim more than the request holds, too many connections, a slowloris, a client that leaves
//! during a long poll, and the server dropped with connections open. Each misbehaving
//! connection is closed alone; the server keeps answering everyone else, and holds no more
//! threads, connections or memory than its bounds allow.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod wire;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use embroker::{Broker, Server, ServerConfig, TopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchRequest, MetadataRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use wire::Conn;

fn setup(config: ServerConfig) -> (Broker, Server) {
    let broker = Broker::temporary().unwrap();
    broker.create_topic("t", TopicConfig::default()).unwrap();
    let server = broker.serve_with("127.0.0.1:0", config).unwrap();
    (broker, server)
}

/// The server still answers a fresh connection.
fn healthy(addr: SocketAddr) {
    let mut conn = Conn::connect(addr);
    let ResponseKind::ApiVersions(r) =
        conn.call(ApiKey::ApiVersions, 3, ApiVersionsRequest::default())
    else {
        panic!()
    };
    assert_eq!(r.error_code, 0);
}

/// Sends raw bytes on a fresh connection and tells whether the server closed it (rather than
/// answering or waiting) within `within`.
fn raw_closes(addr: SocketAddr, bytes: &[u8], within: Duration) -> bool {
    let mut s = TcpStream::connect(addr).unwrap();
    // The server may close before reading all of it: a failed write is a close too.
    if s.write_all(bytes).is_err() {
        return true;
    }
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false, // an answer
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

fn sized(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// A header: api key, version, correlation id, client id "c".
fn header(key: i16, version: i16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&key.to_be_bytes());
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(&7i32.to_be_bytes());
    v.extend_from_slice(&1i16.to_be_bytes());
    v.push(b'c');
    v
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn absurd_sizes_close_only_their_connection() {
    let (_broker, server) = setup(ServerConfig::default().max_request_bytes(1 << 20));
    let addr = server.local_addr();
    // A bystander connection that stays open throughout.
    let mut bystander = Conn::connect(addr);
    for size in [(1 << 20) + 1, i32::MAX, -1, i32::MIN, 0, 3, 7] {
        let start = Instant::now();
        assert!(
            raw_closes(addr, &size.to_be_bytes(), 5 * SECOND),
            "size {size}: not closed"
        );
        // Closed before the body: no waiting for 2 GiB that never come.
        assert!(
            start.elapsed() < 3 * SECOND,
            "size {size}: {:?}",
            start.elapsed()
        );
        healthy(addr);
    }
    let ResponseKind::ApiVersions(_) =
        bystander.call(ApiKey::ApiVersions, 0, ApiVersionsRequest::default())
    else {
        panic!()
    };
}

#[test]
fn unknown_keys_bad_versions_truncated_and_garbage_close_the_connection() {
    let (_broker, server) = setup(ServerConfig::default());
    let addr = server.local_addr();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown api key 999", sized(&header(999, 0))),
        ("negative api key", sized(&header(-7, 0))),
        (
            "an api key not served (ControlledShutdown, 7)",
            sized(&header(7, 3)),
        ),
        ("Metadata v99", sized(&header(3, 99))),
        ("Metadata v-1", sized(&header(3, -1))),
        ("Fetch v0 (below the served range)", sized(&header(1, 0))),
        ("ApiVersions v-1", sized(&header(18, -1))),
        ("garbage after the header", {
            let mut b = header(3, 1);
            b.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x01]);
            sized(&b)
        }),
        ("bytes after a whole body", {
            let mut b = header(3, 1);
            b.extend_from_slice(&0i32.to_be_bytes());
            b.extend_from_slice(b"tail");
            sized(&b)
        }),
        ("a client id longer than the frame", {
            let mut b = header(3, 1);
            b[8..10].copy_from_slice(&i16::MAX.to_be_bytes());
            sized(&b)
        }),
        ("a topic name longer than the frame", {
            let mut b = header(3, 1);
            b.extend_from_slice(&1i32.to_be_bytes());
            b.extend_from_slice(&30000i16.to_be_bytes());
            b.extend_from_slice(b"abc");
            sized(&b)
        }),
    ];
    // A truncated frame: the size says 100, 20 bytes come, then the client closes.
    let mut truncated = 100i32.to_be_bytes().to_vec();
    truncated.extend_from_slice(&header(18, 0));
    cases.push(("truncated (then the client waits)", truncated.clone()));
    for (what, bytes) in &cases {
        assert!(
            raw_closes(addr, bytes, 2 * SECOND) || what.starts_with("truncated"),
            "{what}: not closed"
        );
        healthy(addr);
    }
    // Truncated, then the client closes: the server's thread ends.
    let before = server.connection_count();
    {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&truncated).unwrap();
    }
    let deadline = Instant::now() + 5 * SECOND;
    while server.connection_count() > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.connection_count() <= before);
    healthy(addr);
}

/// Counts far larger than the request: `kafka-protocol` sizes a `Vec` from the count before
/// decoding one element, so these asked the allocator for up to hundreds of GiB and aborted
/// the process (before the decode guard). Each must now just close its connection.
#[test]
fn counts_larger_than_the_request_close_the_connection_without_allocating() {
    let (_broker, server) = setup(ServerConfig::default());
    let addr = server.local_addr();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // Metadata v1: topics array of i32::MAX elements, nothing after.
    let mut b = header(3, 1);
    b.extend_from_slice(&i32::MAX.to_be_bytes());
    cases.push(("Metadata v1 topics = i32::MAX", sized(&b)));
    // Metadata v9 (flexible): compact array of u32::MAX - 1 elements (varint ff ff ff ff 0f),
    // after the flexible header (client id, empty tagged fields).
    let mut b = header(3, 9);
    b.push(0); // header tagged fields
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    cases.push(("Metadata v9 topics = u32::MAX - 1", sized(&b)));
    // Produce v3: transactional id null, acks, timeout, topic_data of i32::MAX.
    let mut b = header(0, 3);
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&1000i32.to_be_bytes());
    b.extend_from_slice(&0x7fff_fff0i32.to_be_bytes());
    cases.push(("Produce v3 topic_data = 2^31 - 16", sized(&b)));
    // Fetch v4 with a big max_bytes (a plain field) and a huge topics count.
    let mut b = header(1, 4);
    b.extend_from_slice(&(-1i32).to_be_bytes()); // replica
    b.extend_from_slice(&500i32.to_be_bytes()); // max wait
    b.extend_from_slice(&1i32.to_be_bytes()); // min bytes
    b.extend_from_slice(&i32::MAX.to_be_bytes()); // max bytes
    b.push(0); // isolation
    b.extend_from_slice(&0x4000_0000i32.to_be_bytes()); // topics
    cases.push(("Fetch v4 topics = 2^30", sized(&b)));
    for (what, bytes) in &cases {
        assert!(raw_closes(addr, bytes, 5 * SECOND), "{what}: not closed");
        healthy(addr);
    }
    // A real Fetch with max_bytes = i32::MAX (a plain field larger than the request) is still
    // answered.
    let mut conn = Conn::connect(addr);
    let req = FetchRequest::default()
        .with_max_bytes(i32::MAX)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(i32::MAX)])]);
    for version in [4i16, 11, 12] {
        let ResponseKind::Fetch(r) = conn.call(ApiKey::Fetch, version, req.clone()) else {
            panic!()
        };
        assert_eq!(r.responses[0].partitions[0].error_code, 0);
    }
}

#[test]
fn a_thousand_connections_with_max_fifty() {
    let (_broker, server) = setup(ServerConfig::default().max_connections(50));
    let addr = server.local_addr();
    let mut held = Vec::new();
    for _ in 0..1000 {
        // The backlog may refuse some: fine.
        if let Ok(s) = TcpStream::connect(addr) {
            held.push(s);
        }
        assert!(
            server.connection_count() <= 50,
            "{}",
            server.connection_count()
        );
    }
    // Let the accept loop catch up.
    std::thread::sleep(Duration::from_millis(500));
    assert!(server.connection_count() <= 50);
    // The ones beyond the limit were closed by the server: at most 50 still answer.
    let mut answering = 0;
    for s in held.iter_mut() {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let frame = wire::request_frame(
            ApiKey::ApiVersions,
            0,
            1,
            &RequestKind::ApiVersions(ApiVersionsRequest::default()),
        );
        if s.write_all(&frame).is_err() {
            continue;
        }
        if wire::read_frame(s).is_some() {
            answering += 1;
        }
    }
    assert!(answering <= 50, "{answering} connections answered");
    assert!(answering >= 1);
    drop(held);
    // Once they are gone, new clients are served.
    let deadline = Instant::now() + 10 * SECOND;
    while server.connection_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.connection_count(), 0);
    healthy(addr);
}

#[test]
fn a_slowloris_does_not_block_others() {
    let (_broker, server) = setup(ServerConfig::default());
    let addr = server.local_addr();
    let frame = wire::request_frame(
        ApiKey::ApiVersions,
        0,
        1,
        &RequestKind::ApiVersions(ApiVersionsRequest::default()),
    );
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        // One byte a second (well, every 200 ms: the test has no minute to spare) for 3 s.
        for b in frame.iter().take(15) {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let start = Instant::now();
        healthy(addr);
        assert!(start.elapsed() < SECOND, "{:?}", start.elapsed());
    }
    slow.join().unwrap();
}

fn long_poll(addr: SocketAddr, wait_ms: i32) -> Conn {
    let mut conn = Conn::connect(addr);
    let req = FetchRequest::default()
        .with_max_wait_ms(wait_ms)
        .with_min_bytes(1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    conn.send(ApiKey::Fetch, 12, &RequestKind::Fetch(req));
    conn
}

#[test]
fn a_client_that_leaves_during_a_long_poll_frees_its_thread() {
    let (_broker, server) = setup(ServerConfig::default());
    let addr = server.local_addr();
    let conn = long_poll(addr, 2000);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.connection_count(), 1);
    drop(conn);
    // Freed by the end of the long poll at the latest.
    let deadline = Instant::now() + 5 * SECOND;
    while server.connection_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.connection_count(), 0);
    healthy(addr);
}

#[test]
fn dropping_the_server_with_open_connections_returns_promptly() {
    let (_broker, server) = setup(ServerConfig::default());
    let addr = server.local_addr();
    let mut polls: Vec<Conn> = (0..5).map(|_| long_poll(addr, 20_000)).collect();
    let idle: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(&1000i32.to_be_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    drop(server);
    assert!(
        start.elapsed() < 3 * SECOND,
        "drop took {:?} with long polls of 20 s",
        start.elapsed()
    );
    // Every connection was closed by the server, the long polls included.
    for c in &mut polls {
        assert!(
            c.closed_within(2 * SECOND),
            "a long poll's connection is still open"
        );
    }
    drop(idle);
    // The port no longer answers.
    assert!(TcpStream::connect_timeout(&addr, SECOND).is_err() || raw_closes(addr, &[], SECOND));
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn garbage_frames_do_not_grow_memory() {
    let (_broker, server) = setup(ServerConfig::default().max_request_bytes(1 << 20));
    let addr = server.local_addr();
    let garbage = |round: u32| -> Vec<u8> {
        // Pseudo-random but plausible-looking frames: served keys, served versions, junk.
        let mut x = round.wrapping_mul(2_654_435_761).wrapping_add(1);
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let key = [0i16, 1, 2, 3, 18][(next() % 5) as usize];
        let version = (next() % 13) as i16;
        let mut b = header(key, version);
        let len = (next() % 200) as usize;
        for _ in 0..len {
            b.push(next() as u8);
        }
        // Some claim big sizes they do not send all of.
        if next() % 4 == 0 {
            let mut v = (900_000i32).to_be_bytes().to_vec();
            v.extend_from_slice(&b);
            v
        } else {
            sized(&b)
        }
    };
    let round = |from: u32, n: u32| {
        for i in from..from + n {
            let mut s = TcpStream::connect(addr).unwrap();
            let _ = s.write_all(&garbage(i));
            let _ = s.shutdown(std::net::Shutdown::Write);
            s.set_read_timeout(Some(SECOND)).unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    };
    round(0, 300); // warm up: threads, allocator arenas
    let Some(before) = rss_kib() else {
        eprintln!("skipped: no /proc/self/status");
        return;
    };
    round(300, 2000);
    let after = rss_kib().unwrap();
    healthy(addr);
    // Generous: allocator noise is a few MiB; a leak per frame or a 1 MiB buffer kept per
    // connection would be far above.
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB over 2,000 garbage frames"
    );
    eprintln!("RSS {before} KiB -> {after} KiB over 2,000 garbage frames");
}

#[test]
fn metadata_request_still_works_after_all_that() {
    let (_broker, server) = setup(ServerConfig::default());
    let mut conn = Conn::connect(server.local_addr());
    let ResponseKind::Metadata(r) = conn.call(
        ApiKey::Metadata,
        1,
        MetadataRequest::default().with_topics(None),
    ) else {
        panic!()
    };
    assert_eq!(r.topics.len(), 1);
}

#[test]
fn an_idle_connection_is_closed_after_connections_max_idle() {
    let (_broker, server) =
        setup(ServerConfig::default().connections_max_idle(Duration::from_millis(500)));
    let addr = server.local_addr();
    let mut idle = Conn::connect(addr);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.connection_count(), 1);
    assert!(
        idle.closed_within(3 * SECOND),
        "an idle connection stayed open"
    );
    let deadline = Instant::now() + 3 * SECOND;
    while server.connection_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.connection_count(), 0);
    // A long poll longer than the idle limit is not idleness.
    let mut conn = long_poll(addr, 1200);
    let (_, response) = conn.recv(ApiKey::Fetch, 12);
    assert!(matches!(response, ResponseKind::Fetch(_)));
}
