//! Helpers shared by the integration tests: record generators and small assertions.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use embroker::{Partition, Record, StoredRecord};

/// The names of the entries of `dir`, sorted: what a test compares a directory's contents
/// against.
pub fn file_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `n` records with keys `k{i}` and values `v{i}` (i from `start`).
pub fn numbered(start: usize, n: usize) -> Vec<Record> {
    (start..start + n)
        .map(|i| Record::new(format!("v{i}")).key(format!("k{i}")))
        .collect()
}

/// Every record from `from` to the end of the partition (following the gaps compaction
/// leaves: a read that finds only a gap still moves on).
pub fn read_all(p: &Partition, from: i64) -> Vec<StoredRecord> {
    let mut out = Vec::new();
    let mut at = from;
    while at < p.log_end_offset() {
        let records = p.read(at, 64 * 1024).expect("read");
        if records.next_offset() <= at {
            break;
        }
        out.extend(records.iter());
        at = records.next_offset();
    }
    out
}

/// The latest value of every key and the offset it is at (a tombstone removes the key):
/// what compaction must preserve.
pub fn latest(records: &[StoredRecord]) -> std::collections::BTreeMap<Vec<u8>, (i64, Vec<u8>)> {
    let mut view = std::collections::BTreeMap::new();
    for r in records {
        let key = r.key.as_deref().expect("a keyed record").to_vec();
        match &r.value {
            Some(v) => view.insert(key, (r.offset, v.to_vec())),
            None => view.remove(&key),
        };
    }
    view
}

/// The values as strings.
pub fn values(records: &[StoredRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or(b"<null>")).into_owned())
        .collect()
}

/// A xorshift64 generator: reproducible random choices in tests from one printed seed.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// `EMBROKER_SEED` when set (to replay a run), else one from the clock; never 0.
pub fn seed() -> u64 {
    if let Some(s) = std::env::var("EMBROKER_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        return s | 1;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
        | 1
}

/// `EMBROKER_SEED` when set, else `default` (for a test that runs a fixed seed unless told).
pub fn seed_or(default: u64) -> u64 {
    std::env::var("EMBROKER_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(default)
        | 1
}

/// Starts this test binary again as a child running only `test` (the crash tests' child),
/// set up further by `configure` (its environment), with stdout piped and stderr in
/// `dir/child-stderr`. Returns once the child printed a line ending in `READY`, with the rest
/// of its stdout; `context` starts the panic message if it exits first.
pub fn spawn_ready_child(
    test: &str,
    dir: &std::path::Path,
    context: &str,
    configure: impl FnOnce(&mut std::process::Command),
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead;
    let stderr_path = dir.join("child-stderr");
    let mut command = std::process::Command::new(std::env::current_exe().expect("test binary"));
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).expect("child stderr file"));
    configure(&mut command);
    let mut child = command.spawn().expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.wait();
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!("{context}: child exited before READY: {stderr}");
        };
        if line.ends_with("READY") {
            return (child, lines);
        }
    }
}

/// How to replay a run of this test binary with `seed`, for failure messages.
pub fn replay_hint(seed: u64) -> String {
    let features = if cfg!(feature = "cli") {
        " --features cli"
    } else {
        ""
    };
    format!(
        "seed {seed} (replay: EMBROKER_SEED={seed} cargo test{features} --test {})",
        env!("CARGO_CRATE_NAME")
    )
}

/// Runs `body`, the randomized part of a test using `seed`; a panic in it (an assert, an
/// `expect`, a joined thread's panic) is raised again with [`replay_hint`] in front of its
/// message, so the seed is in the failure message itself. Children spawned by the test must
/// get `EMBROKER_SEED` too, so that they make the same choices.
pub fn with_seed<T>(seed: u64, body: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into());
            panic!("{}: {message}", replay_hint(seed))
        }
    }
}

/// Which member owns each partition, kept only from the rebalance callbacks: the group tests'
/// check that no partition ever has two owners (one topic a table; `O` names a member).
pub struct Owners<O>(std::sync::Mutex<std::collections::BTreeMap<i32, O>>);

impl<O> Default for Owners<O> {
    fn default() -> Self {
        Owners(std::sync::Mutex::new(std::collections::BTreeMap::new()))
    }
}

impl<O: Clone + PartialEq + std::fmt::Display> Owners<O> {
    /// `member` was assigned `ps` (`on_partitions_assigned`): it owns them now. Returns a
    /// violation for each partition another member still owned.
    pub fn assign(&self, member: &O, ps: &[embroker::TopicPartition]) -> Vec<String> {
        let mut owners = self.0.lock().unwrap();
        ps.iter()
            .filter_map(|tp| {
                let other = owners.insert(tp.partition, member.clone())?;
                Some(format!("{member} is assigned {tp} still owned by {other}"))
            })
            .collect()
    }

    /// `member` gave `ps` up (`how`: "revokes" or "loses"): nobody owns them now. Returns a
    /// violation for each partition `member` did not own.
    pub fn release(&self, member: &O, ps: &[embroker::TopicPartition], how: &str) -> Vec<String> {
        let mut owners = self.0.lock().unwrap();
        ps.iter()
            .filter_map(|tp| match owners.remove(&tp.partition) {
                Some(owner) if owner == *member => None,
                owner => Some(format!(
                    "{member} {how} {tp} owned by {:?}",
                    owner.map(|o| o.to_string())
                )),
            })
            .collect()
    }

    /// The table as it is now (partition to owner).
    pub fn snapshot(&self) -> std::collections::BTreeMap<i32, O> {
        self.0.lock().unwrap().clone()
    }
}

/// A group member's configuration in the group tests: `group`, reading from the earliest
/// offset when nothing is committed, committing only when the test does.
pub fn manual_commit_config(group: &str) -> embroker::ConsumerConfig {
    embroker::ConsumerConfig::default()
        .group_id(group)
        .auto_offset_reset(embroker::OffsetReset::Earliest)
        .enable_auto_commit(false)
}

/// Whether `d` shows the group stable with exactly `consumers` as its members, each holding
/// what the group assigned it.
pub fn group_settled<C: std::borrow::Borrow<embroker::Consumer>>(
    d: &embroker::GroupDescription,
    consumers: &[C],
) -> bool {
    d.state == embroker::GroupState::Stable
        && d.members.len() == consumers.len()
        && consumers.iter().all(|c| {
            let c = c.borrow();
            d.members.iter().any(|m| {
                let mut a = m.assignment.clone();
                a.sort();
                Some(m.member_id.as_str()) == c.member_id() && a == c.assignment()
            })
        })
}

/// Runs `each` (a poll and what goes with it) on every consumer until the group is
/// [`group_settled`]; fails after 10 s.
pub fn settle_with<C: std::borrow::BorrowMut<embroker::Consumer>>(
    consumers: &mut [C],
    broker: &embroker::Broker,
    group: &str,
    mut each: impl FnMut(&mut embroker::Consumer),
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        for c in consumers.iter_mut() {
            each(c.borrow_mut());
        }
        let d = broker.describe_group(group).unwrap();
        if group_settled(&d, consumers) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "group {group} did not settle: {d:?}"
        );
    }
}

/// Polls every consumer until the group is [`group_settled`]; fails after 10 s.
pub fn settle<C: std::borrow::BorrowMut<embroker::Consumer>>(
    consumers: &mut [C],
    broker: &embroker::Broker,
    group: &str,
) {
    settle_with(consumers, broker, group, |c| {
        c.poll(std::time::Duration::ZERO).unwrap();
    });
}

/// Runs `op` over and over for up to 30 s, stopping `grace` after its first failure (with a
/// 2 ms pause between tries once it failed): returns how many tries failed and the first
/// error. For the tests that drive a broker into a resource limit.
pub fn run_until_failing<E: std::fmt::Display>(
    grace: std::time::Duration,
    mut op: impl FnMut() -> Result<(), E>,
) -> (u64, Option<String>) {
    let mut failures = 0u64;
    let mut first: Option<(std::time::Instant, String)> = None;
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(30) {
        if let Err(e) = op() {
            failures += 1;
            first.get_or_insert_with(|| (std::time::Instant::now(), e.to_string()));
        }
        if let Some((at, _)) = &first {
            if at.elapsed() > grace {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    (failures, first.map(|f| f.1))
}

/// The "ACK <offset> <i>" lines a child process printed: each acknowledged offset and the
/// number of the record it holds.
pub fn acked_lines(stdout: &str) -> std::collections::BTreeMap<i64, u64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ACK "))
        .map(|l| {
            let (o, i) = l.split_once(' ').unwrap();
            (o.parse().unwrap(), i.parse().unwrap())
        })
        .collect()
}

/// Asserts that every acknowledged `(offset, i)` reads back from `p` at that offset with the
/// value `value(i)`; `ctx` starts each failure message.
pub fn assert_acked_read_back<'a>(
    p: &Partition,
    acked: impl IntoIterator<Item = (&'a i64, &'a u64)>,
    value: impl Fn(u64) -> String,
    ctx: &str,
) {
    for (&offset, &i) in acked {
        let r = p
            .read(offset, 1 << 16)
            .unwrap_or_else(|e| panic!("{ctx}: read {offset}: {e}"));
        let rec = r
            .iter()
            .next()
            .unwrap_or_else(|| panic!("{ctx}: acknowledged offset {offset} lost"));
        assert_eq!(rec.offset, offset, "{ctx}");
        assert_eq!(
            rec.value.as_deref(),
            Some(value(i).as_bytes()),
            "{ctx}: {offset}"
        );
    }
}

/// The commit a [`OwnerListener`] makes in a revoke, and what the test makes of its outcome.
type OnRevoke = Box<
    dyn FnMut(&mut embroker::Consumer, &[embroker::TopicPartition]) -> embroker::Result<()> + Send,
>;

/// A rebalance listener that keeps an [`Owners`] table for `member`: a revoke of some
/// partitions first runs `on_revoke` (the test's commit; an error it returns is the
/// callback's, and the partitions stay owned), then releases them ("revokes"); a loss releases
/// them ("loses") without a commit; an assignment takes them. Every violation of the table
/// goes to `violation`.
pub struct OwnerListener<O> {
    member: O,
    owners: std::sync::Arc<Owners<O>>,
    on_revoke: OnRevoke,
    violation: Box<dyn Fn(String) + Send>,
}

impl<O> OwnerListener<O> {
    pub fn new(
        member: O,
        owners: std::sync::Arc<Owners<O>>,
        on_revoke: impl FnMut(&mut embroker::Consumer, &[embroker::TopicPartition]) -> embroker::Result<()>
            + Send
            + 'static,
        violation: impl Fn(String) + Send + 'static,
    ) -> OwnerListener<O> {
        OwnerListener {
            member,
            owners,
            on_revoke: Box::new(on_revoke),
            violation: Box::new(violation),
        }
    }
}

impl<O: Clone + PartialEq + std::fmt::Display + Send + 'static> embroker::RebalanceListener
    for OwnerListener<O>
{
    fn on_partitions_revoked(
        &mut self,
        consumer: &mut embroker::Consumer,
        ps: &[embroker::TopicPartition],
    ) -> embroker::Result<()> {
        if !ps.is_empty() {
            (self.on_revoke)(consumer, ps)?;
        }
        for violation in self.owners.release(&self.member, ps, "revokes") {
            (self.violation)(violation);
        }
        Ok(())
    }

    fn on_partitions_lost(
        &mut self,
        _: &mut embroker::Consumer,
        ps: &[embroker::TopicPartition],
    ) -> embroker::Result<()> {
        for violation in self.owners.release(&self.member, ps, "loses") {
            (self.violation)(violation);
        }
        Ok(())
    }

    fn on_partitions_assigned(
        &mut self,
        _: &mut embroker::Consumer,
        ps: &[embroker::TopicPartition],
    ) -> embroker::Result<()> {
        for violation in self.owners.assign(&self.member, ps) {
            (self.violation)(violation);
        }
        Ok(())
    }
}
