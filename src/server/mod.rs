//! Kafka's wire protocol over TCP (feature `server`): [`Broker::serve`](crate::Broker::serve)
//! makes a broker reachable by any Kafka client (librdkafka and its wrappers, the Java client,
//! kafka-python, kcat).
//!
//! Owns: the listening socket, one thread per connection, the framing of requests and
//! responses (a 4-byte big-endian size, then the header and body of Kafka's schemas, decoded
//! and encoded by the `kafka-protocol` crate), the table of API versions the server answers,
//! and the translation of each API onto the broker's own calls (`api/`). It is a floor above
//! the broker: nothing below imports it, and it keeps no state of its own but the classic
//! groups' network members, which live in `group` like the in-process ones, and each
//! connection's SASL state (`api::sasl`).
//!
//! # Invariants
//!
//! - A connection's requests are answered in the order they came (Kafka's ordering, on which
//!   clients pipelining requests rely): one thread reads a request, answers it, then reads
//!   the next. A Fetch long poll holds its connection, as Kafka mutes a connection while a
//!   request is in flight.
//! - What a client can make the server hold is bounded: a request is at most
//!   [`ServerConfig::max_request_bytes`] (its size is read before any of it is), connections
//!   are at most [`ServerConfig::max_connections`], a Fetch response at most its own
//!   `max_bytes` clamped to [`ServerConfig::max_fetch_bytes`], and a partition's share of it
//!   to [`ServerConfig::max_partition_fetch_bytes`] (at least one batch either way).
//! - A request that cannot be decoded, names an API or version the server does not answer,
//!   or is larger than allowed closes its own connection with a log line; no other
//!   connection notices. An ApiVersions request of a version the server does not know is
//!   answered with `UNSUPPORTED_VERSION` and the versions it knows, as Kafka does, so a newer
//!   client can step down.
//! - The server never panics on a client's bytes: decoding is the `kafka-protocol` crate's,
//!   which returns errors, and every number taken from a request is checked or saturates
//!   (the `server_request` fuzz target).

mod api;
mod config;
mod connection;
mod decode_guard;
mod dispatch;
mod errors;
mod listener;
mod versions;

pub use config::{SaslPlainUsers, ServerConfig};
pub(crate) use connection::answer_frame;
pub use listener::Server;
