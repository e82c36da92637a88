//! The tool's logger: the library's `log` lines on stderr, `embroker: LEVEL message`.
//!
//! Warnings and errors by default; `EMBROKER_LOG=info` (or `debug`, `trace`, `off`) changes
//! the level. A long-running `serve` reports closed connections and recoveries this way.

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("embroker: {} {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

/// Installs the logger, at the level `EMBROKER_LOG` names (warn by default).
pub fn init() {
    let level = std::env::var("EMBROKER_LOG")
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::Warn);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
