//! `embroker serve`: a Kafka broker on a data directory, for any Kafka client (feature
//! `server`).
//!
//! Prints one line, `embroker serving on HOST:PORT`, once it accepts connections (scripts
//! read the port from it when `--listen` names port 0), then serves until the process is
//! stopped. Stopping it with a signal is safe: what was acknowledged with `acks=all` is on
//! disk, and the next open recovers the rest as after any crash.

use std::io::Write;
use std::path::PathBuf;

use clap::Args as ClapArgs;
use embroker::{Broker, ServerConfig};

use crate::{CmdResult, Ctx};

/// `embroker serve` options.
#[derive(ClapArgs)]
pub struct Args {
    /// The address to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    listen: String,
    /// Create a topic on first use by a client's Metadata request (Kafka's
    /// `auto.create.topics.enable`, on by default as in Kafka).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    auto_create_topics: bool,
    /// At most this many client connections (Kafka's `max.connections`).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_connections: usize,
    /// The largest request accepted, in bytes (Kafka's `socket.request.max.bytes`).
    #[arg(long, value_name = "BYTES", default_value_t = 100 * 1024 * 1024)]
    max_request_bytes: usize,
    /// The most bytes of one partition in one Fetch answer, at least one whole batch
    /// (`ServerConfig::max_partition_fetch_bytes`; 65536 by default).
    #[arg(long, value_name = "BYTES", default_value_t = ServerConfig::default().max_partition_fetch_bytes)]
    max_partition_fetch_bytes: usize,
    /// The host to advertise in Metadata (default: the address each client connected to).
    #[arg(long, value_name = "HOST")]
    advertised_host: Option<String>,
    /// Require SASL/PLAIN authentication with the users of FILE: one `user:password` a
    /// line (the password is everything after the first `:`), `#` comments and blank lines
    /// skipped. Clients then set `security.protocol=SASL_PLAINTEXT`, `sasl.mechanism=PLAIN`.
    #[arg(long, value_name = "FILE")]
    sasl_users: Option<PathBuf>,
    /// How long the first rebalance of an empty group waits for more members (Kafka's
    /// `group.initial.rebalance.delay.ms`, 3000 by default as in Kafka).
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    group_initial_rebalance_delay_ms: u64,
}

/// Runs `embroker serve`: never returns but with an error.
pub fn run(ctx: &Ctx, args: &Args) -> CmdResult {
    let dir: PathBuf = ctx.dir().to_path_buf();
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
    let broker = Broker::builder()
        .auto_create_topics(args.auto_create_topics)
        .open(&dir)?;
    let mut config = ServerConfig::default()
        .max_connections(args.max_connections)
        .max_request_bytes(args.max_request_bytes)
        .max_partition_fetch_bytes(args.max_partition_fetch_bytes)
        .group_initial_rebalance_delay(std::time::Duration::from_millis(
            args.group_initial_rebalance_delay_ms,
        ));
    if let Some(host) = &args.advertised_host {
        config = config.advertised_host(host.clone());
    }
    if let Some(path) = &args.sasl_users {
        config = config.sasl_plain_users_file(path)?;
    }
    let server = broker.serve_with(args.listen.as_str(), config)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "embroker serving on {}", server.bootstrap())?;
    out.flush()?;
    drop(out);
    loop {
        std::thread::park();
    }
}
