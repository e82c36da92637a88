//! The server's settings, with Kafka's broker keys where Kafka has one.

use std::time::Duration;

/// Settings of a [`Server`](crate::Server) (see [`Broker::serve_with`](crate::Broker::serve_with)).
///
/// ```
/// use std::time::Duration;
/// use embroker::ServerConfig;
/// let config = ServerConfig::default()
///     .max_request_bytes(16 << 20)
///     .max_connections(64)
///     .connections_max_idle(Duration::from_secs(60));
/// assert_eq!(config.node_id, 1);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The largest request accepted, in bytes (Kafka's `socket.request.max.bytes`, default
    /// 100 MiB). A larger one closes its connection before any of it is read.
    pub max_request_bytes: usize,
    /// At most this many client connections at once (Kafka's `max.connections`); one more is
    /// closed as soon as it is accepted, with a log line. Default 1,000.
    pub max_connections: usize,
    /// A connection idle this long is closed (Kafka's `connections.max.idle.ms`, default
    /// 10 minutes).
    pub connections_max_idle: Duration,
    /// The largest Fetch response, whatever a client asks for (Kafka's
    /// `fetch.max.bytes`-like bound on the broker side). Default 55 MiB, Kafka's consumer
    /// default `fetch.max.bytes` rounded up.
    pub max_fetch_bytes: usize,
    /// The longest a Fetch long poll waits, whatever its `max_wait_ms` (default 30 s).
    pub max_fetch_wait: Duration,
    /// The broker's node id in Metadata (Kafka's `node.id`, 1 as in Kafka's sample config).
    pub node_id: i32,
    /// The host advertised in Metadata and FindCoordinator. `None` (the default) advertises
    /// the address each client connected to, so a client reaches the broker the way it
    /// already did (Kafka's `advertised.listeners` set to the listener).
    pub advertised_host: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_request_bytes: 100 * 1024 * 1024,
            max_connections: 1000,
            connections_max_idle: Duration::from_secs(600),
            max_fetch_bytes: 55 * 1024 * 1024,
            max_fetch_wait: Duration::from_secs(30),
            node_id: 1,
            advertised_host: None,
        }
    }
}

impl ServerConfig {
    /// Sets [`ServerConfig::max_request_bytes`].
    pub fn max_request_bytes(mut self, bytes: usize) -> ServerConfig {
        self.max_request_bytes = bytes;
        self
    }

    /// Sets [`ServerConfig::max_connections`].
    pub fn max_connections(mut self, connections: usize) -> ServerConfig {
        self.max_connections = connections;
        self
    }

    /// Sets [`ServerConfig::connections_max_idle`].
    pub fn connections_max_idle(mut self, idle: Duration) -> ServerConfig {
        self.connections_max_idle = idle;
        self
    }

    /// Sets [`ServerConfig::max_fetch_bytes`].
    pub fn max_fetch_bytes(mut self, bytes: usize) -> ServerConfig {
        self.max_fetch_bytes = bytes;
        self
    }

    /// Sets [`ServerConfig::max_fetch_wait`].
    pub fn max_fetch_wait(mut self, wait: Duration) -> ServerConfig {
        self.max_fetch_wait = wait;
        self
    }

    /// Sets [`ServerConfig::node_id`].
    pub fn node_id(mut self, node_id: i32) -> ServerConfig {
        self.node_id = node_id;
        self
    }

    /// Sets [`ServerConfig::advertised_host`].
    pub fn advertised_host(mut self, host: impl Into<String>) -> ServerConfig {
        self.advertised_host = Some(host.into());
        self
    }
}
