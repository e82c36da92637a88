//! `embroker`: the command-line tool for embroker data directories.
//!
//! A client of the library's public API, like any application: `topics`, `produce`, `consume`
//! and `groups` open the directory with [`Broker::open`] (taking its lock), while `dump` and
//! `verify` only read files and take no lock, so they work beside a running broker.
//!
//! Exit codes: 0 success, 1 a failed operation or a problem found, 2 a usage error (clap's
//! convention). Errors are one line on stderr, `embroker: <error>`.

mod consume;
mod dump;
mod groups;
mod logger;
mod output;
mod produce;
mod progress;
#[cfg(feature = "server")]
mod remote;
#[cfg(feature = "server")]
mod serve;
mod topics;
mod transactions;
mod verify;

use std::error::Error as StdError;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand};
use embroker::Broker;

/// Pause between attempts to take a locked directory.
const LOCK_RETRY_INTERVAL: Duration = Duration::from_millis(25);

/// What a subcommand returns: `Ok(true)` for success, `Ok(false)` when it ran but found a
/// problem (exit 1, the problems already printed), `Err` for a failure (printed by `main`).
pub type CmdResult = Result<bool, Box<dyn StdError + Send + Sync>>;

/// Inspect and drive an embroker data directory.
#[derive(Parser)]
#[command(
    name = "embroker",
    version,
    about,
    propagate_version = true,
    after_help = output::JSON_CONVENTION
)]
struct Cli {
    /// The data directory (the one passed to `Broker::open`).
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Talk to a running broker through Kafka's wire protocol instead of opening `--dir`
    /// (`topics list|describe`, `groups list|describe`, `consume`; feature `server`): works
    /// against `embroker serve`, an application's `Broker::serve`, or Kafka itself.
    #[cfg(feature = "server")]
    #[arg(long, global = true, value_name = "HOST:PORT")]
    bootstrap: Option<String>,
    /// How long to wait for the directory lock when another process holds it, in ms.
    #[arg(long, global = true, value_name = "MS", default_value_t = 1000)]
    lock_timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List, create, describe, alter and delete topics.
    #[command(subcommand)]
    Topics(topics::TopicsCmd),
    /// Append lines read from stdin to a topic, one record per line.
    Produce(produce::Args),
    /// Print a topic's records.
    Consume(consume::Args),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Groups(groups::GroupsCmd),
    /// List and describe transactional ids (`kafka-transactions.sh list|describe`).
    #[command(subcommand)]
    Transactions(transactions::TransactionsCmd),
    /// Print the batches and records of a segment `.log`, or the entries of an index file.
    Dump(dump::Args),
    /// Check every file of a data directory without modifying it.
    Verify(verify::Args),
    /// Serve Kafka's wire protocol on the data directory, for any Kafka client (feature
    /// `server`).
    #[cfg(feature = "server")]
    Serve(serve::Args),
}

/// What every subcommand gets: the global options.
pub struct Ctx {
    /// `--dir`, if given.
    pub dir: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
    /// `--lock-timeout`.
    pub lock_timeout: Duration,
    /// `--bootstrap`, if given (feature `server`).
    pub bootstrap: Option<String>,
}

impl Ctx {
    /// The `--dir` value, or a usage error (exit 2) if it is missing.
    pub fn dir(&self) -> &Path {
        match &self.dir {
            Some(d) => d,
            None => usage_error("this command needs the data directory: pass --dir DIR"),
        }
    }

    /// Opens the data directory with the library, taking its lock. Unless `create` is set the
    /// directory must exist: a typo in `--dir` should not create an empty data directory.
    /// While another process holds the lock, retries for `--lock-timeout`, so short commands
    /// (and `consume --follow`, which opens the directory only while it reads) can take turns.
    pub fn open(&self, create: bool) -> Result<Broker, Box<dyn StdError + Send + Sync>> {
        let dir = self.dir();
        if !create && !dir.is_dir() {
            return Err(format!("no data directory at {}", dir.display()).into());
        }
        let started = Instant::now();
        loop {
            match Broker::open(dir) {
                Err(embroker::Error::DirectoryLocked { .. })
                    if started.elapsed() < self.lock_timeout =>
                {
                    std::thread::sleep(LOCK_RETRY_INTERVAL);
                }
                Err(e @ embroker::Error::DirectoryLocked { .. }) => {
                    return Err(format!(
                        "{e}; waited {} ms (see --lock-timeout)",
                        self.lock_timeout.as_millis()
                    )
                    .into())
                }
                other => return Ok(other?),
            }
        }
    }
}

/// Prints a usage error in clap's style and exits with status 2.
pub fn usage_error(message: &str) -> ! {
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, message)
        .exit()
}

/// True when `e` (or its source) is a broken pipe: the reader of our stdout went away
/// (`embroker consume t | head`), which is a normal way to stop.
fn is_broken_pipe(e: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::BrokenPipe {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// The error and its causes on one line, without repeating a cause the message already shows.
fn one_line(e: &(dyn StdError + 'static)) -> String {
    let mut line = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let s = err.to_string();
        if !line.contains(&s) {
            line.push_str(": ");
            line.push_str(&s);
        }
        cur = err.source();
    }
    line
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logger::init();
    let ctx = Ctx {
        dir: cli.dir,
        json: cli.json,
        lock_timeout: Duration::from_millis(cli.lock_timeout),
        #[cfg(feature = "server")]
        bootstrap: cli.bootstrap,
        #[cfg(not(feature = "server"))]
        bootstrap: None,
    };
    let result = match cli.command {
        Command::Topics(cmd) => topics::run(&ctx, cmd),
        Command::Produce(args) => produce::run(&ctx, &args),
        Command::Consume(args) => consume::run(&ctx, &args),
        Command::Groups(cmd) => groups::run(&ctx, cmd),
        Command::Transactions(cmd) => transactions::run(&ctx, cmd),
        Command::Dump(args) => dump::run(&ctx, &args),
        Command::Verify(args) => verify::run(&ctx, &args),
        #[cfg(feature = "server")]
        Command::Serve(args) => serve::run(&ctx, &args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) if is_broken_pipe(&*e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embroker: {}", one_line(&*e));
            ExitCode::from(1)
        }
    }
}
