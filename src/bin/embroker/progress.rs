//! A one-line progress display on stderr for `dump` and `verify` on large inputs.
//!
//! Drawn with `\r` only when stderr is a terminal, `--json` is off and the input is larger
//! than [`MIN_TOTAL`]; redrawn at most every [`REDRAW_INTERVAL`]; cleared when done (or
//! dropped), so nothing of it is left on the screen or in a pipe.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Inputs up to this many bytes get no progress display.
pub const MIN_TOTAL: u64 = 64 * 1024 * 1024;
/// Minimum time between two redraws.
pub const REDRAW_INTERVAL: Duration = Duration::from_millis(100);
/// The longest line drawn (the detail is shortened from the front to fit).
const MAX_LINE: usize = 100;

/// A progress line being drawn on `out`.
pub struct Progress<W: Write = std::io::Stderr> {
    label: &'static str,
    total: u64,
    last_draw: Option<Instant>,
    drawn: usize,
    out: W,
}

impl Progress {
    /// A display on stderr, or `None` when it must not be shown: `--json`, stderr not a
    /// terminal (a pipe, a file, a test), or a small input. `total` (the input size) is only
    /// computed when the other two allow a display.
    pub fn stderr(label: &'static str, json: bool, total: impl FnOnce() -> u64) -> Option<Self> {
        let stderr = std::io::stderr();
        if json || !stderr.is_terminal() {
            return None;
        }
        let total = total();
        (total > MIN_TOTAL).then(|| Progress::new(label, total, stderr))
    }
}

impl<W: Write> Progress<W> {
    /// A display on `out`, whatever it is.
    pub fn new(label: &'static str, total: u64, out: W) -> Self {
        Progress {
            label,
            total,
            last_draw: None,
            drawn: 0,
            out,
        }
    }

    /// Reports `done` bytes processed, now, working on `detail`.
    pub fn update(&mut self, done: u64, detail: &str) {
        self.update_at(done, detail, Instant::now());
    }

    /// Reports `done` bytes processed at time `now`; redraws unless the last redraw was less
    /// than [`REDRAW_INTERVAL`] before `now`. Returns whether it redrew.
    pub fn update_at(&mut self, done: u64, detail: &str, now: Instant) -> bool {
        if let Some(last) = self.last_draw {
            if now.saturating_duration_since(last) < REDRAW_INTERVAL {
                return false;
            }
        }
        self.last_draw = Some(now);
        let line = progress_line(self.label, done, self.total, detail);
        let width = line.chars().count();
        // Pad over the rest of a longer previous line. Errors drawing are ignored: the
        // display is a courtesy and must never fail the command.
        let pad = self.drawn.saturating_sub(width);
        let _ = write!(self.out, "\r{line}{:pad$}", "");
        let _ = self.out.flush();
        self.drawn = width;
        true
    }

    /// Clears the line (`\r`, spaces, `\r`). Idempotent; also done on drop.
    pub fn finish(&mut self) {
        if self.drawn > 0 {
            let _ = write!(self.out, "\r{:w$}\r", "", w = self.drawn);
            let _ = self.out.flush();
            self.drawn = 0;
        }
    }
}

impl<W: Write> Drop for Progress<W> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Reports progress on an optional display (a no-op for `None`).
pub fn report(p: &mut Option<Progress>, done: u64, detail: &str) {
    if let Some(p) = p {
        p.update(done, detail);
    }
}

/// A byte count for people: `512 B`, `1.5 KiB`, `312.4 MiB`, `1.0 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    // Switch unit before rounding would print "1024.0".
    while v >= 1023.95 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The text of the line: `verify: 312.4 MiB / 1.0 GiB (31%) t-0/00000000000000000000.log`.
pub fn progress_line(label: &str, done: u64, total: u64, detail: &str) -> String {
    let done = done.min(total);
    let pct = if total == 0 {
        100
    } else {
        (u128::from(done) * 100 / u128::from(total)) as u64
    };
    let head = format!(
        "{label}: {} / {} ({pct}%)",
        human_bytes(done),
        human_bytes(total)
    );
    if detail.is_empty() {
        return head;
    }
    let room = MAX_LINE.saturating_sub(head.chars().count() + 1);
    let n = detail.chars().count();
    if n <= room {
        format!("{head} {detail}")
    } else if room > 3 {
        let tail: String = detail.chars().skip(n - (room - 3)).collect();
        format!("{head} ...{tail}")
    } else {
        head
    }
}

/// A short name for a file in the display: its parent directory and its name
/// (`t-0/00000000000000000000.log`).
pub fn short_name(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy());
    let parent = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy());
    match (parent, name) {
        (Some(p), Some(n)) => format!("{p}/{n}"),
        (None, Some(n)) => n.into_owned(),
        _ => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_bytes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(312 * 1024 * 1024 + 400 * 1024), "312.4 MiB");
        assert_eq!(human_bytes(1024 * 1024 * 1024), "1.0 GiB");
        assert_eq!(human_bytes(1024 * 1024 * 1024 - 1), "1.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn formats_line() {
        let gib = 1024 * 1024 * 1024;
        assert_eq!(
            progress_line(
                "verify",
                gib * 31 / 100,
                gib,
                "t-0/00000000000000000000.log"
            ),
            "verify: 317.4 MiB / 1.0 GiB (30%) t-0/00000000000000000000.log"
        );
        assert_eq!(progress_line("dump", 5, 10, ""), "dump: 5 B / 10 B (50%)");
        assert_eq!(
            progress_line("dump", 20, 10, ""),
            "dump: 10 B / 10 B (100%)"
        );
        assert_eq!(progress_line("dump", 0, 0, ""), "dump: 0 B / 0 B (100%)");
        let long = "x".repeat(500);
        let line = progress_line("verify", 1, 2, &long);
        assert_eq!(line.chars().count(), MAX_LINE);
        assert!(line.starts_with("verify: 1 B / 2 B (50%) ...xxx"));
    }

    #[test]
    fn short_names() {
        assert_eq!(
            short_name(Path::new("/d/t-0/00000000000000000000.log")),
            "t-0/00000000000000000000.log"
        );
        assert_eq!(short_name(Path::new("a.log")), "a.log");
    }

    #[test]
    fn redraws_at_most_every_interval() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut p = Progress::new("dump", 100, Vec::new());
        assert!(p.update_at(1, "", t0), "the first update draws");
        assert!(!p.update_at(2, "", t0 + ms(50)));
        assert!(!p.update_at(3, "", t0 + ms(99)));
        assert!(p.update_at(4, "", t0 + ms(100)));
        assert!(!p.update_at(5, "", t0 + ms(150)));
        assert!(p.update_at(6, "", t0 + ms(250)));
        // A clock that goes back does not draw.
        assert!(!p.update_at(7, "", t0));
        let out = String::from_utf8(p.out.clone()).unwrap();
        assert_eq!(
            out,
            "\rdump: 1 B / 100 B (1%)\rdump: 4 B / 100 B (4%)\rdump: 6 B / 100 B (6%)"
        );
    }

    #[test]
    fn pads_over_a_longer_line_and_clears() {
        let t0 = Instant::now();
        let mut p = Progress::new("dump", 100, Vec::new());
        p.update_at(1, "long-name", t0);
        p.update_at(2, "", t0 + REDRAW_INTERVAL);
        p.finish();
        p.finish();
        let out = String::from_utf8(std::mem::take(&mut p.out)).unwrap();
        let first = "dump: 1 B / 100 B (1%) long-name";
        let second = "dump: 2 B / 100 B (2%)";
        let pad = " ".repeat(first.len() - second.len());
        let clear = " ".repeat(second.len());
        assert_eq!(out, format!("\r{first}\r{second}{pad}\r{clear}\r"));
    }

    #[test]
    fn never_drawn_means_nothing_to_clear() {
        let mut out = Vec::new();
        drop(Progress::new("verify", 100, &mut out));
        assert!(out.is_empty());
    }
}
