//! The listening socket, the connection registry and the [`Server`] handle.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

use super::config::ServerConfig;
use super::connection;
use crate::broker::Broker;
use crate::error::{Error, Result};

/// What every connection of one server shares.
pub(crate) struct Shared {
    pub(crate) broker: Broker,
    pub(crate) config: ServerConfig,
    /// Kafka's cluster id: 22 characters of URL-safe base64, as `kafka-storage random-uuid`
    /// prints, fixed for the server's life.
    pub(crate) cluster_id: String,
    pub(crate) stop: AtomicBool,
    connections: Mutex<HashMap<u64, Connection>>,
    next_connection: AtomicU64,
}

/// An open connection: a clone of its socket (to shut it down at stop) and its thread.
struct Connection {
    stream: TcpStream,
    thread: Option<JoinHandle<()>>,
}

impl Shared {
    /// The state of a server that has no connection yet.
    pub(crate) fn new(broker: Broker, config: ServerConfig) -> Shared {
        Shared {
            broker,
            config,
            cluster_id: cluster_id(),
            stop: AtomicBool::new(false),
            connections: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(0),
        }
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// A running Kafka protocol server over a [`Broker`] (feature `server`): clients connect to
/// [`Server::bootstrap`]. Dropping it (or [`Server::shutdown`]) stops accepting, closes every
/// connection and waits for their threads; the broker stays open.
///
/// ```
/// use embroker::{Broker, TopicConfig};
/// let broker = Broker::temporary()?;
/// broker.create_topic("events", TopicConfig::default().partitions(3))?;
/// let server = broker.serve("127.0.0.1:0")?; // port 0: any free port
/// let bootstrap = server.bootstrap(); // "127.0.0.1:PORT", for `bootstrap.servers`
/// assert!(bootstrap.starts_with("127.0.0.1:"));
/// // Any Kafka client can now produce and consume here.
/// drop(server);
/// # Ok::<(), embroker::Error>(())
/// ```
pub struct Server {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
    /// Evicts network group members whose session timed out (stopped on drop).
    _reaper: Option<crate::group::Reaper>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Serves Kafka's wire protocol on `addr` (feature `server`) with default
    /// [`ServerConfig`]; port 0 picks a free port ([`Server::local_addr`] tells which). The
    /// server runs on its own threads until the returned [`Server`] is dropped.
    pub fn serve(&self, addr: impl ToSocketAddrs) -> Result<Server> {
        self.serve_with(addr, ServerConfig::default())
    }

    /// [`Broker::serve`] with settings.
    pub fn serve_with(&self, addr: impl ToSocketAddrs, config: ServerConfig) -> Result<Server> {
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| Error::Network {
                action: "resolving",
                address: "the server's listen address".into(),
                source: e,
            })?
            .collect();
        let listener = TcpListener::bind(&addrs[..]).map_err(|e| Error::Network {
            action: "binding",
            address: format!("{addrs:?}"),
            source: e,
        })?;
        let local_addr = listener.local_addr().map_err(|e| Error::Network {
            action: "reading the bound address of",
            address: format!("{addrs:?}"),
            source: e,
        })?;
        let shared = Arc::new(Shared::new(self.clone(), config));
        let accept_shared = shared.clone();
        let accept = std::thread::Builder::new()
            .name("embroker-accept".into())
            .spawn(move || accept_loop(&accept_shared, &listener))
            .map_err(|e| Error::Network {
                action: "starting the accept thread of",
                address: local_addr.to_string(),
                source: e,
            })?;
        log::info!("embroker serving Kafka's protocol on {local_addr}");
        Ok(Server {
            shared,
            local_addr,
            accept: Some(accept),
            _reaper: crate::group::Reaper::start(self.inner.clone()),
        })
    }
}

impl Server {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `bootstrap.servers` string for clients: `host:port` of [`Server::local_addr`]
    /// (an unspecified address such as `0.0.0.0` is given as `127.0.0.1`).
    pub fn bootstrap(&self) -> String {
        let ip = self.local_addr.ip();
        if ip.is_unspecified() {
            format!("127.0.0.1:{}", self.local_addr.port())
        } else {
            self.local_addr.to_string()
        }
    }

    /// How many client connections are open now.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.lock().len()
    }

    /// Stops the server: no new connections, every connection closed, their threads joined.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.shared.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        // Wake the accept loop with a connection of our own.
        let wake = match self.local_addr.ip() {
            ip if ip.is_unspecified() => SocketAddr::new(
                if ip.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                },
                self.local_addr.port(),
            ),
            _ => self.local_addr,
        };
        let _ = TcpStream::connect_timeout(&wake, std::time::Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let connections: Vec<Connection> = self
            .shared
            .connections
            .lock()
            .drain()
            .map(|(_, c)| c)
            .collect();
        // Long polls wait on the broker's notifier: wake them to see the stop.
        self.shared.broker.inner.notifier().notify();
        for c in &connections {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        for c in connections {
            if let Some(h) = c.thread {
                let _ = h.join();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    loop {
        let accepted = listener.accept();
        if shared.stopping() {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                log::warn!("embroker server: accept failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
        };
        let mut connections = shared.connections.lock();
        if connections.len() >= shared.config.max_connections {
            drop(connections);
            log::warn!(
                "embroker server: connection from {peer} closed: {} connections already \
                 (max.connections)",
                shared.config.max_connections
            );
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(registered) = stream.try_clone() else {
            log::warn!("embroker server: connection from {peer} closed: cannot clone its socket");
            continue;
        };
        let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
        connections.insert(
            id,
            Connection {
                stream: registered,
                thread: None,
            },
        );
        drop(connections);
        let conn_shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("embroker-conn-{id}"))
            .spawn(move || {
                connection::serve(&conn_shared, stream, peer);
                conn_shared.connections.lock().remove(&id);
            });
        match spawned {
            Ok(handle) => {
                if let Some(entry) = shared.connections.lock().get_mut(&id) {
                    entry.thread = Some(handle);
                }
            }
            Err(e) => {
                log::warn!("embroker server: connection from {peer} closed: no thread: {e}");
                if let Some(c) = shared.connections.lock().remove(&id) {
                    let _ = c.stream.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

/// A random cluster id in Kafka's form (16 random bytes, URL-safe base64 without padding).
fn cluster_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        chunk.copy_from_slice(&h.finish().to_be_bytes()[..chunk.len()]);
    }
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 63) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 63) as usize]));
    }
    out
}
