//! The server's settings, with Kafka's broker keys where Kafka has one.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

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
    /// The most bytes of one partition in one Fetch answer, whatever the client's
    /// per-partition `partition_max_bytes` (its `max.partition.fetch.bytes`) asks for: whole
    /// stored batches up to this many bytes, and always at least one batch however large
    /// (Kafka's "min one message"), so a consumer still makes progress. Kafka's broker has
    /// no such key (it fills the client's per-partition bytes); it is here because librdkafka
    /// backs a partition off for `fetch.queue.backoff.ms` (one second) once its local queue
    /// holds `queued.min.messages`, which answers of a megabyte per partition make a
    /// consumer slower than its broker do (docs/ARCHITECTURE.md, `src/server/`). Default
    /// 64 KiB; `usize::MAX` answers as Kafka does; 0 counts as 1 (one batch a partition).
    pub max_partition_fetch_bytes: usize,
    /// The longest a Fetch long poll waits, whatever its `max_wait_ms` (default 30 s).
    pub max_fetch_wait: Duration,
    /// The broker's node id in Metadata (Kafka's `node.id`, 1 as in Kafka's sample config).
    pub node_id: i32,
    /// The host advertised in Metadata and FindCoordinator. `None` (the default) advertises
    /// the address each client connected to, so a client reaches the broker the way it
    /// already did (Kafka's `advertised.listeners` set to the listener).
    pub advertised_host: Option<String>,
    /// SASL/PLAIN users (Kafka's `sasl.enabled.mechanisms=PLAIN` on a `SASL_PLAINTEXT`
    /// listener). `None` (the default): no authentication. When set, a connection must
    /// authenticate (SaslHandshake, then SaslAuthenticate) before any request but
    /// ApiVersions; any other request first closes the connection, as Kafka does.
    pub sasl_plain_users: Option<Arc<SaslPlainUsers>>,
    /// How long the first rebalance of an empty group waits for more members to join
    /// (Kafka's `group.initial.rebalance.delay.ms`, default 3 s; each new member extends it,
    /// up to the rebalance timeout). Tests usually set it to zero.
    pub group_initial_rebalance_delay: Duration,
    /// The shortest `session.timeout.ms` a member may ask for (Kafka's
    /// `group.min.session.timeout.ms`, default 6 s); a JoinGroup outside the bounds gets
    /// `INVALID_SESSION_TIMEOUT`.
    pub group_min_session_timeout: Duration,
    /// The longest `session.timeout.ms` a member may ask for (Kafka's
    /// `group.max.session.timeout.ms`, default 30 minutes).
    pub group_max_session_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_request_bytes: 100 * 1024 * 1024,
            max_connections: 1000,
            connections_max_idle: Duration::from_secs(600),
            max_fetch_bytes: 55 * 1024 * 1024,
            max_partition_fetch_bytes: 64 * 1024,
            max_fetch_wait: Duration::from_secs(30),
            node_id: 1,
            advertised_host: None,
            sasl_plain_users: None,
            group_initial_rebalance_delay: Duration::from_secs(3),
            group_min_session_timeout: Duration::from_secs(6),
            group_max_session_timeout: Duration::from_secs(30 * 60),
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

    /// Sets [`ServerConfig::max_partition_fetch_bytes`].
    pub fn max_partition_fetch_bytes(mut self, bytes: usize) -> ServerConfig {
        self.max_partition_fetch_bytes = bytes;
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

    /// Sets [`ServerConfig::group_initial_rebalance_delay`].
    pub fn group_initial_rebalance_delay(mut self, delay: Duration) -> ServerConfig {
        self.group_initial_rebalance_delay = delay;
        self
    }

    /// Sets [`ServerConfig::group_min_session_timeout`].
    pub fn group_min_session_timeout(mut self, timeout: Duration) -> ServerConfig {
        self.group_min_session_timeout = timeout;
        self
    }

    /// Sets [`ServerConfig::group_max_session_timeout`].
    pub fn group_max_session_timeout(mut self, timeout: Duration) -> ServerConfig {
        self.group_max_session_timeout = timeout;
        self
    }

    /// Sets [`ServerConfig::advertised_host`].
    pub fn advertised_host(mut self, host: impl Into<String>) -> ServerConfig {
        self.advertised_host = Some(host.into());
        self
    }

    /// Turns SASL/PLAIN on with these users (see [`ServerConfig::sasl_plain_users`]).
    pub fn sasl_plain_users(mut self, users: SaslPlainUsers) -> ServerConfig {
        self.sasl_plain_users = Some(Arc::new(users));
        self
    }

    /// Turns SASL/PLAIN on with the users of a file (format: [`SaslPlainUsers::parse`]).
    ///
    /// ```
    /// use embroker::ServerConfig;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("users");
    /// std::fs::write(&path, "# user:password\nalice:alice-secret\n")?;
    /// let config = ServerConfig::default().sasl_plain_users_file(&path)?;
    /// assert!(config.sasl_plain_users.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sasl_plain_users_file(self, path: impl AsRef<Path>) -> Result<ServerConfig> {
        Ok(self.sasl_plain_users(SaslPlainUsers::from_file(path)?))
    }
}

/// The users and passwords SASL/PLAIN accepts (Kafka's `PlainLoginModule` `user_NAME="..."`
/// options, as a file of `user:password` lines). Its `Debug` shows the user names only.
///
/// ```
/// use embroker::SaslPlainUsers;
/// let users = SaslPlainUsers::parse("alice:secret\n# a comment\nbob:pa:ss\n")?;
/// assert!(users.check("alice", b"secret"));
/// assert!(users.check("bob", b"pa:ss")); // the password is everything after the first ':'
/// assert!(!users.check("alice", b"wrong"));
/// assert_eq!(users.len(), 2);
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct SaslPlainUsers {
    users: BTreeMap<String, String>,
}

impl std::fmt::Debug for SaslPlainUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.users.keys()).finish()
    }
}

impl SaslPlainUsers {
    /// Users from text: one `user:password` a line, the password being everything after the
    /// first `:` (spaces included); blank lines and lines starting with `#` are skipped. A
    /// line without `:`, an empty user or a user given twice is an error naming the line.
    pub fn parse(text: &str) -> Result<SaslPlainUsers> {
        let mut users = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let bad =
                |reason: &str| Error::argument("SASL users", format!("line {}: {reason}", i + 1));
            let Some((user, password)) = line.split_once(':') else {
                return Err(bad("expected user:password"));
            };
            let user = user.trim();
            if user.is_empty() {
                return Err(bad("the user is empty"));
            }
            if users
                .insert(user.to_string(), password.to_string())
                .is_some()
            {
                return Err(bad(&format!("user {user} is given twice")));
            }
        }
        Ok(SaslPlainUsers { users })
    }

    /// Users from a file in [`SaslPlainUsers::parse`]'s format.
    pub fn from_file(path: impl AsRef<Path>) -> Result<SaslPlainUsers> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
        SaslPlainUsers::parse(&text)
    }

    /// Adds (or replaces) a user.
    pub fn insert(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.insert(user.into(), password.into());
        self
    }

    /// Whether `password` is `user`'s; compared in time independent of where it differs.
    pub fn check(&self, user: &str, password: &[u8]) -> bool {
        let Some(expected) = self.users.get(user) else {
            return false;
        };
        let expected = expected.as_bytes();
        let mut diff = u8::from(expected.len() != password.len());
        for (i, e) in expected.iter().enumerate() {
            diff |= e ^ password.get(i).copied().unwrap_or(!e);
        }
        diff == 0
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True without users (no one can authenticate).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_file_errors_name_the_line() {
        for (text, line) in [
            ("alice:a\nbob\n", "line 2"),
            (":x\n", "line 1"),
            ("a:1\n# c\na:2\n", "line 3"),
        ] {
            let e = SaslPlainUsers::parse(text).unwrap_err().to_string();
            assert!(e.contains(line), "{text:?}: {e}");
        }
        let users = SaslPlainUsers::parse("\r\n  # x\nalice: sp ace\r\n").unwrap();
        assert!(users.check("alice", b" sp ace"));
        assert!(!users.check("alice", b" sp ac"));
        assert!(!users.check("alice", b" sp ace "));
        assert_eq!(format!("{users:?}"), "{\"alice\"}");
        assert!(SaslPlainUsers::from_file("/nonexistent/users").is_err());
    }
}
