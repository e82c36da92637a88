//! The broker: one data directory, its lock, its topics, and its background tasks.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::cleaner::{self, CleanerReport};
use super::handles::{PartitionDescription, Topic, TopicDescription};
use super::syncer::Syncer;
use super::tasks::{self, Background};
use super::{names, topic_store};
use crate::clock::{self, Clock, SharedClock, SystemClock};
use crate::config::TopicConfig;
use crate::error::{Error, Result};
use crate::group::GroupRegistry;
use crate::io::{self, DirLock};
use crate::log::{
    checkpoint_many, dir_name, recovery_points, DirPoint, FileBudget, LogOpen, PartitionLog,
    PointsFile, RecoveryPointEntry, Throttle, OPEN_FILES_DEFAULT,
};
use crate::notify::Notifier;
use crate::txn::{ProducerIds, TxnCoordinator};
use crate::types::TopicPartition;

/// Kafka's `log.retention.check.interval.ms` default.
const RETENTION_CHECK_INTERVAL_DEFAULT: Duration = Duration::from_secs(300);
/// Kafka's `producer.id.expiration.ms` default (one day).
const PRODUCER_ID_EXPIRATION_DEFAULT: Duration = Duration::from_millis(86_400_000);
/// Kafka's `log.flush.offset.checkpoint.interval.ms` default.
const CHECKPOINT_INTERVAL_DEFAULT: Duration = Duration::from_secs(60);
/// Kafka's `log.cleaner.backoff.ms` default.
const CLEANER_BACKOFF_DEFAULT: Duration = Duration::from_secs(15);
/// The cleaner's offset map budget. Kafka's `log.cleaner.dedupe.buffer.size` is 128 MiB, which
/// is what made embedded Kafka brokers run out of memory in test suites; 16 MiB maps about
/// 300,000 keys per pass, and is allocated only as a pass needs it.
const CLEANER_DEDUPE_BUFFER_DEFAULT: usize = 16 << 20;
/// Threads that open, recover, checkpoint and close partitions at once (Kafka's
/// `num.recovery.threads.per.data.dir`, whose default is 1). The work is mostly waiting on
/// fsyncs, which overlap on the disk (docs/ARCHITECTURE.md, "#20: partitions").
const RECOVERY_THREADS_DEFAULT: usize = 8;

/// Options for opening a [`Broker`]; every setter says its default.
///
/// ```
/// use std::time::Duration;
/// use embroker::{Broker, TopicConfig};
/// let broker = Broker::builder()
///     .default_topic_config(TopicConfig::default().partitions(3))
///     .auto_create_topics(true)
///     .retention_check_interval(Duration::from_secs(10))
///     .open_temporary()?;
/// assert_eq!(broker.topic("created-on-first-use")?.partition_count(), 3);
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct BrokerBuilder {
    default_topic_config: TopicConfig,
    retention_check_interval: Duration,
    checkpoint_interval: Duration,
    auto_create_topics: bool,
    clock: SharedClock,
    /// `clock` is the system clock it started as (not set by [`BrokerBuilder::clock`]): read
    /// without a virtual call (see `BrokerInner::now_ms`).
    system_clock: bool,
    log_cleaner: bool,
    cleaner_backoff: Duration,
    cleaner_dedupe_buffer_size: usize,
    cleaner_io_max_bytes_per_second: f64,
    producer_id_expiration: Duration,
    transaction_max_timeout_ms: i64,
    recovery_threads: usize,
    open_segment_files_max: usize,
    /// Where [`BrokerBuilder::open_temporary`] makes its directory; `None`: see there.
    temporary_parent: Option<PathBuf>,
}

impl Default for BrokerBuilder {
    fn default() -> Self {
        BrokerBuilder {
            default_topic_config: TopicConfig::default(),
            retention_check_interval: RETENTION_CHECK_INTERVAL_DEFAULT,
            checkpoint_interval: CHECKPOINT_INTERVAL_DEFAULT,
            auto_create_topics: false,
            clock: clock::system(),
            system_clock: true,
            log_cleaner: true,
            cleaner_backoff: CLEANER_BACKOFF_DEFAULT,
            cleaner_dedupe_buffer_size: CLEANER_DEDUPE_BUFFER_DEFAULT,
            cleaner_io_max_bytes_per_second: f64::INFINITY,
            producer_id_expiration: PRODUCER_ID_EXPIRATION_DEFAULT,
            transaction_max_timeout_ms: crate::txn::MAX_TIMEOUT_MS_DEFAULT,
            recovery_threads: RECOVERY_THREADS_DEFAULT,
            open_segment_files_max: OPEN_FILES_DEFAULT,
            temporary_parent: None,
        }
    }
}

/// Where a temporary broker's directory goes when neither the builder nor `TMPDIR` says: a
/// memory file system, so that making and removing its files waits on no journal.
const MEMORY_TEMP_DIR: &str = "/dev/shm";
/// The room [`MEMORY_TEMP_DIR`] must have left for a temporary broker to go there: a
/// container's 64 MiB `/dev/shm` would fill under a test's data where a disk would not.
const MEMORY_TEMP_DIR_MIN_FREE: u64 = 1 << 30;

impl BrokerBuilder {
    /// The config of topics created by auto-creation. Default: `TopicConfig::default()`.
    pub fn default_topic_config(&mut self, config: TopicConfig) -> &mut Self {
        self.default_topic_config = config;
        self
    }

    /// How often retention runs (Kafka's `log.retention.check.interval.ms`). Default: 5 minutes.
    /// Zero is a config error; a period too long to reach (`Duration::MAX`) means never.
    pub fn retention_check_interval(&mut self, interval: Duration) -> &mut Self {
        self.retention_check_interval = interval;
        self
    }

    /// How often recovery points are checkpointed (Kafka's
    /// `log.flush.offset.checkpoint.interval.ms`). Default: 60 seconds. Zero is a config
    /// error; a period too long to reach (`Duration::MAX`) means never.
    pub fn checkpoint_interval(&mut self, interval: Duration) -> &mut Self {
        self.checkpoint_interval = interval;
        self
    }

    /// Create unknown topics on first use, with the default topic config. Default: off (Kafka's
    /// broker default is on; off catches typos in topic names).
    pub fn auto_create_topics(&mut self, enabled: bool) -> &mut Self {
        self.auto_create_topics = enabled;
        self
    }

    /// Run the log cleaner thread, which compacts topics with `cleanup.policy=compact`
    /// (Kafka's `log.cleaner.enable`). Default: on. With it off, compaction happens only
    /// when [`Broker::run_log_cleaner`] is called.
    pub fn log_cleaner(&mut self, enabled: bool) -> &mut Self {
        self.log_cleaner = enabled;
        self
    }

    /// How long the cleaner thread sleeps between rounds (Kafka's `log.cleaner.backoff.ms`).
    /// Default: 15 seconds. Zero is a config error; `Duration::MAX` means the thread never
    /// runs a round ([`Broker::run_log_cleaner`] still cleans).
    pub fn cleaner_backoff(&mut self, backoff: Duration) -> &mut Self {
        self.cleaner_backoff = backoff;
        self
    }

    /// Memory for the cleaner's offset map, per pass (Kafka's `log.cleaner.dedupe.buffer.size`,
    /// 24 bytes per key plus table overhead). A pass over more distinct keys than fit cleans the
    /// part of the log the map covers and leaves the rest to the next pass. Default: 16 MiB.
    pub fn cleaner_dedupe_buffer_size(&mut self, bytes: usize) -> &mut Self {
        self.cleaner_dedupe_buffer_size = bytes;
        self
    }

    /// Most bytes per second the cleaner reads and writes (Kafka's
    /// `log.cleaner.io.max.bytes.per.second`). Default: unlimited.
    pub fn cleaner_io_max_bytes_per_second(&mut self, bytes_per_second: f64) -> &mut Self {
        self.cleaner_io_max_bytes_per_second = bytes_per_second;
        self
    }

    /// How long a partition keeps an idle producer's state (epoch, sequences) after its last
    /// write, when it has no open transaction (Kafka's `producer.id.expiration.ms`). A
    /// producer that writes again after that starts afresh: its retries are no longer
    /// recognised as duplicates. Checked every 10 minutes, or this often if shorter (Kafka's
    /// `producer.id.expiration.check.interval.ms`). Default: 1 day. Zero is a config error;
    /// `Duration::MAX` means never.
    pub fn producer_id_expiration(&mut self, expiration: Duration) -> &mut Self {
        self.producer_id_expiration = expiration;
        self
    }

    /// The longest `transaction.timeout.ms` a transactional producer may ask for (Kafka's
    /// `transaction.max.timeout.ms`); `init_transactions` with a longer one fails with
    /// [`Error::InvalidTransactionTimeout`]. Default: 15 minutes. Zero is a config error.
    pub fn transaction_max_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.transaction_max_timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// How many partitions are opened (and recovered after a crash), checkpointed by
    /// [`Broker::flush`] and closed at once (Kafka's `num.recovery.threads.per.data.dir`).
    /// Their fsyncs overlap, so a broker with many partitions opens and closes in a fraction
    /// of the time one thread takes. Default: 8. Zero is a config error.
    pub fn recovery_threads(&mut self, threads: usize) -> &mut Self {
        self.recovery_threads = threads;
        self
    }

    /// The most segment files the broker keeps open at once, whatever its partition and
    /// segment counts (`log.segment.open.files.max`; Kafka keeps every segment open). A
    /// segment's file (and its memory map) is opened on first use and the least recently
    /// used one is closed when over this budget. A file holding writes not yet fsynced is
    /// never closed (a later fsync through a new descriptor might not report a failed
    /// writeback), so the budget can be exceeded by the partitions written since their last
    /// sync or checkpoint. Default: 1,000. Zero is a config error.
    pub fn open_segment_files_max(&mut self, files: usize) -> &mut Self {
        self.open_segment_files_max = files;
        self
    }

    /// The clock for timestamps, retention and timers. Default: the system clock.
    pub fn clock(&mut self, clock: SharedClock) -> &mut Self {
        self.clock = clock;
        self.system_clock = false;
        self
    }

    /// Opens (creating if needed) the data directory `path` and locks it.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Broker> {
        self.open_inner(path.as_ref().to_path_buf(), None)
    }

    /// Where [`BrokerBuilder::open_temporary`] makes its directory (a fresh one inside
    /// `parent`). Default: `TMPDIR` when it is set, else `/dev/shm` when it is a writable
    /// directory (Linux's memory file system) with at least 1 GiB free, else the system's
    /// temporary directory.
    pub fn temporary_dir_in(&mut self, parent: impl AsRef<Path>) -> &mut Self {
        self.temporary_parent = Some(parent.as_ref().to_path_buf());
        self
    }

    /// Opens a broker in a fresh temporary directory, removed when the last handle drops.
    ///
    /// Nothing in it is ever fsynced (topic creation, configs, checkpoints, `acks=all`,
    /// durable offset commits, transactions, close): its data dies with it, so it is
    /// durability-free by construction, and its background work runs on one thread shared by
    /// every temporary broker of the process.
    ///
    /// The directory is made in [`BrokerBuilder::temporary_dir_in`]'s directory if set, else
    /// in `TMPDIR` if set, else in `/dev/shm` if that is a writable directory with at least
    /// 1 GiB free (a container's 64 MiB `/dev/shm` is passed over), else in the system's
    /// temporary directory. On `/dev/shm` (tmpfs) its files are memory: every byte the broker
    /// holds (segments, indexes, offsets) counts against RAM and against the room left on
    /// `/dev/shm` (where a broker holding more fails with a full-disk error) until the broker
    /// is dropped. Set `TMPDIR` or
    /// [`BrokerBuilder::temporary_dir_in`] to keep large test data on disk.
    pub fn open_temporary(&self) -> Result<Broker> {
        let make = |parent: &Path| {
            tempfile::Builder::new()
                .prefix("embroker-")
                .tempdir_in(parent)
                .map_err(|e| Error::io("creating temporary directory in", parent, e))
        };
        let temp = match &self.temporary_parent {
            Some(parent) => make(parent)?,
            None if std::env::var_os("TMPDIR").is_some_and(|t| !t.is_empty()) => {
                make(&std::env::temp_dir())?
            }
            None => {
                let memory = Path::new(MEMORY_TEMP_DIR);
                let roomy = io::available_bytes(memory)
                    .is_some_and(|free| free >= MEMORY_TEMP_DIR_MIN_FREE);
                match roomy.then(|| make(memory)) {
                    Some(Ok(temp)) => temp,
                    // No memory file system here, too small, or not writable: the usual
                    // place.
                    _ => make(&std::env::temp_dir())?,
                }
            }
        };
        self.open_inner(temp.path().to_path_buf(), Some(temp))
    }

    fn validate(&self) -> Result<()> {
        self.default_topic_config.validate()?;
        if self.retention_check_interval.is_zero() {
            return Err(Error::config(
                "log.retention.check.interval.ms",
                0,
                "must be positive",
            ));
        }
        if self.producer_id_expiration.is_zero() {
            return Err(Error::config(
                "producer.id.expiration.ms",
                0,
                "must be positive",
            ));
        }
        if self.checkpoint_interval.is_zero() {
            return Err(Error::config(
                "log.flush.offset.checkpoint.interval.ms",
                0,
                "must be positive",
            ));
        }
        if self.cleaner_backoff.is_zero() {
            return Err(Error::config(
                "log.cleaner.backoff.ms",
                0,
                "must be positive",
            ));
        }
        // Kafka's minimum: the map must hold some keys for a pass to make progress.
        if self.cleaner_dedupe_buffer_size < 1 << 20 {
            return Err(Error::config(
                "log.cleaner.dedupe.buffer.size",
                self.cleaner_dedupe_buffer_size,
                "must be at least 1 MiB",
            ));
        }
        if self.open_segment_files_max == 0 {
            return Err(Error::config(
                "log.segment.open.files.max",
                0,
                "must be positive",
            ));
        }
        if self.recovery_threads == 0 {
            return Err(Error::config(
                "num.recovery.threads.per.data.dir",
                0,
                "must be positive",
            ));
        }
        if self.transaction_max_timeout_ms <= 0 {
            return Err(Error::config(
                "transaction.max.timeout.ms",
                self.transaction_max_timeout_ms,
                "must be positive",
            ));
        }
        let rate = self.cleaner_io_max_bytes_per_second;
        if rate.is_nan() || rate <= 0.0 {
            return Err(Error::config(
                "log.cleaner.io.max.bytes.per.second",
                rate,
                "must be a positive number of bytes",
            ));
        }
        Ok(())
    }

    fn open_inner(&self, dir: PathBuf, temp: Option<tempfile::TempDir>) -> Result<Broker> {
        self.validate()?;
        let ephemeral = temp.is_some();
        // Before anything is written: no sync of a path in a temporary directory is issued
        // (its data dies with the broker; see `io::sync`).
        let ephemeral_root = ephemeral.then(|| io::sync::Ephemeral::register(&dir));
        // A temporary broker's directory was made just now under a random name and dies with
        // the broker: it takes no `.lock`, has no `topics/` (its topic configs live in memory
        // only) and no handle for `syncfs` (it never syncs). A persistent open of a live
        // temporary broker's directory in this process is refused as if it were locked.
        let lock = if ephemeral {
            None
        } else {
            if io::sync::is_ephemeral_root(&dir) {
                return Err(Error::DirectoryLocked { path: dir });
            }
            // A data directory (and any parent) this creates is made durable in its parent
            // before anything inside it is.
            io::create_dir_durable(&dir)?;
            Some(DirLock::acquire(&dir)?)
        };
        let producer_ids = ProducerIds::open(&dir, !ephemeral)?;
        if !ephemeral {
            let topics_dir = dir.join(topic_store::DIR_NAME);
            if !topics_dir.exists() {
                io::create_dir_durable(&topics_dir)?;
            }
        }
        // Held open for the broker's life: a batched checkpoint's `syncfs` through it reports
        // every writeback error since the broker opened.
        let dir_handle = if cfg!(unix) && !ephemeral {
            Some(std::fs::File::open(&dir).map_err(|e| Error::io("opening directory", &dir, e))?)
        } else {
            None
        };
        let inner = Arc::new_cyclic(|this| BrokerInner {
            this: this.clone(),
            dir_handle,
            files: FileBudget::new(self.open_segment_files_max),
            dir,
            options: self.clone(),
            topics: RwLock::new(BTreeMap::new()),
            broken_topics: RwLock::new(BTreeMap::new()),
            admin: Mutex::new(()),
            points_at_open: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            metadata_version: AtomicU64::new(0),
            notifier: Arc::new(Notifier::default()),
            tasks: Mutex::new(None),
            syncer: Syncer::default(),
            cleaner: Mutex::new(None),
            groups: GroupRegistry::default(),
            txns: TxnCoordinator::new(producer_ids, self.transaction_max_timeout_ms),
            lock: Mutex::new(lock),
            temp_files: Mutex::new(Vec::new()),
            ephemeral,
            temp: Mutex::new(temp),
            _ephemeral_root: ephemeral_root,
        });
        if !ephemeral {
            // A temporary directory was made empty just now: no topic to load, no orphan.
            inner.load_topics()?;
        }
        inner.groups.load(&inner);
        // After the groups: markers written on open complete their pending offsets.
        inner.txns.load(&inner);
        let tasks = tasks::start(
            Arc::downgrade(&inner),
            self.retention_check_interval,
            self.checkpoint_interval,
            self.producer_id_expiration,
            ephemeral,
        )?;
        *inner.tasks.lock() = Some(tasks);
        let compacted = inner
            .topics
            .read()
            .values()
            .any(|t| t.config.read().cleanup_policy.compacts());
        if compacted {
            inner.start_cleaner()?;
        }
        Ok(Broker {
            _last: Arc::new(LastHandle(Arc::clone(&inner))),
            inner,
        })
    }
}

/// The state of one topic.
pub(crate) struct TopicState {
    pub(crate) name: Arc<str>,
    /// The topic's id (its file's `# topic id:` line), which keys its partitions' entries in
    /// the data directory's `recovery-points` file; `None` if it could not be given one.
    pub(crate) id: Option<u64>,
    pub(crate) config: RwLock<Arc<TopicConfig>>,
    pub(crate) partitions: RwLock<Vec<PartitionSlot>>,
}

/// A partition that opened, or the error that kept it from opening.
#[derive(Clone)]
pub(crate) enum PartitionSlot {
    Online(Arc<PartitionLog>),
    Offline(Error),
}

pub(crate) struct BrokerInner {
    dir: PathBuf,
    /// The data directory, open (on Unix): what a batched checkpoint syncs the file system by.
    dir_handle: Option<std::fs::File>,
    /// The budget of open segment files every partition draws on.
    files: Arc<FileBudget>,
    options: BrokerBuilder,
    topics: RwLock<BTreeMap<String, Arc<TopicState>>>,
    broken_topics: RwLock<BTreeMap<String, Error>>,
    /// Serializes changes to topic metadata (create, delete, alter, add partitions).
    admin: Mutex<()>,
    /// The `recovery-points` entries read at open, by directory name: a clean close keeps
    /// those of partitions it writes no new entry for (see `close_checkpoint`).
    points_at_open: Mutex<HashMap<String, RecoveryPointEntry>>,
    closed: AtomicBool,
    /// Bumped after every change that can alter what a topic lookup returns (create, delete,
    /// added partitions, close), so a producer can keep its lookups and redo them only when
    /// this moved: a lookup under the map lock per record cost ~12% of a send.
    metadata_version: AtomicU64,
    notifier: Arc<Notifier>,
    tasks: Mutex<Option<Background>>,
    /// Fsyncs for async durable commits; its thread starts with the first one.
    syncer: Syncer,
    /// Started with the first compacted topic (most brokers, and most test brokers, have
    /// none, and a thread costs ~25 µs to start and ~35 µs to stop).
    cleaner: Mutex<Option<Background>>,
    /// This broker, for threads started after open.
    this: Weak<BrokerInner>,
    /// Consumer groups: members, generations, committed offsets (see `group::coordinator`).
    groups: GroupRegistry,
    /// Transactions: producer ids, transactional ids' state, markers (see `txn::coordinator`).
    txns: TxnCoordinator,
    /// `None` for a temporary broker (see `open_inner`).
    lock: Mutex<Option<DirLock>>,
    /// A temporary broker's partition directories with their segment files, noted by `close`
    /// while the logs still list them: what the last handle's drop removes (see
    /// [`BrokerInner::remove_temporary_dir`]).
    temp_files: Mutex<Vec<(PathBuf, Vec<PathBuf>)>>,
    /// A temporary broker: its directory is fresh, never synced, removed when it drops.
    ephemeral: bool,
    /// Declared last: the temporary directory is removed after everything else is closed.
    temp: Mutex<Option<tempfile::TempDir>>,
    /// A temporary directory's registration as ephemeral (nothing under it is fsynced), held
    /// until the directory is gone.
    _ephemeral_root: Option<io::sync::Ephemeral>,
}

impl BrokerInner {
    fn load_topics(&self) -> Result<()> {
        let mut topics = self.topics.write();
        let mut broken = self.broken_topics.write();
        let points = recovery_points::read(&self.dir)?;
        for (name, config) in topic_store::load_all(&self.dir)? {
            match config {
                Ok((config, id)) => {
                    // A topic of an older version gets its id now (its partitions have no
                    // entry in `recovery-points` yet, so none can be mistaken for theirs).
                    let id = id.or_else(|| {
                        let id = topic_store::new_id();
                        match topic_store::write(&self.dir, &name, &config, Some(id)) {
                            Ok(()) => Some(id),
                            Err(e) => {
                                log::warn!("topic {name}: no id given ({e}); its partitions close as before");
                                None
                            }
                        }
                    });
                    // What recovery scanned past a recovery point is not made durable here:
                    // it was not durable before the crash either, and the recovery point
                    // does not claim it until a checkpoint (the tasks thread's, a flush, a
                    // close) syncs it with everything else. Making 110 MB spread over 10,000
                    // partitions durable at open took 28 s on the test VM (docs/
                    // ARCHITECTURE.md, "#20: partitions").
                    let (state, _recovered) =
                        self.open_topic(&name, Arc::new(config), id, Some(&points), &[]);
                    topics.insert(name, state);
                }
                Err(e) => {
                    broken.insert(name, e);
                }
            }
        }
        *self.points_at_open.lock() = points;
        self.remove_orphans(&topics, &broken)
    }

    /// Opens every partition of a topic; one that fails is kept offline with its error. Also
    /// returns the partitions whose recovery awaits its checkpoint ([`checkpoint_many`]).
    /// `points` are the data directory's `recovery-points` entries (read at open).
    /// `fresh[i]`: partition `i`'s directory was made empty just now (see `open_partitions`).
    fn open_topic(
        &self,
        name: &str,
        config: Arc<TopicConfig>,
        id: Option<u64>,
        points: Option<&HashMap<String, RecoveryPointEntry>>,
        fresh: &[bool],
    ) -> (Arc<TopicState>, Vec<Arc<PartitionLog>>) {
        let name: Arc<str> = Arc::from(name);
        let points = points.zip(id);
        let (partitions, recovered) =
            self.open_partitions(&name, 0..config.partitions, &config, points, fresh);
        let state = Arc::new(TopicState {
            name,
            id,
            config: RwLock::new(config),
            partitions: RwLock::new(partitions),
        });
        (state, recovered)
    }

    /// Checkpoints `logs` as one batch (one pass of syncs for all), on the recovery threads.
    pub(crate) fn checkpoint_logs(
        &self,
        logs: &[Arc<PartitionLog>],
        snapshot: bool,
    ) -> Vec<Result<()>> {
        checkpoint_many(
            logs,
            self.dir_handle.as_ref(),
            &self.dir,
            self.options.recovery_threads,
            snapshot,
            None,
        )
    }

    /// Opens partitions `range` of a topic on the recovery threads, so their recoveries'
    /// fsyncs overlap; one that fails is offline with its error.
    ///
    /// A partition that needed recovery is returned too: the caller checkpoints it (with
    /// every other such partition, see [`checkpoint_many`]) before anything uses it.
    ///
    /// `points`: the `recovery-points` entries and the topic's id; an entry is used only for
    /// the directory it names and only if written for this id.
    ///
    /// `fresh[i]` (for partition `range.start + i`; missing entries are false) says its
    /// directory was made empty just now, so its open looks for nothing in it
    /// (`LogOpen::fresh`).
    fn open_partitions(
        &self,
        topic: &Arc<str>,
        range: std::ops::Range<i32>,
        config: &Arc<TopicConfig>,
        points: Option<(&HashMap<String, RecoveryPointEntry>, u64)>,
        fresh: &[bool],
    ) -> (Vec<PartitionSlot>, Vec<Arc<PartitionLog>>) {
        let start = range.start;
        let ids: Vec<i32> = range.collect();
        let fresh_at = |p: i32| {
            usize::try_from(p - start)
                .ok()
                .and_then(|i| fresh.get(i).copied())
                .unwrap_or(false)
        };
        let opened = io::sync::for_each_parallel(&ids, self.options.recovery_threads, |&p| {
            let point = points.and_then(|(entries, id)| {
                let e = entries.get(&dir_name(topic, p))?;
                (e.topic_id == id).then_some(DirPoint {
                    point: e.point,
                    no_producers: e.no_producers,
                })
            });
            self.open_partition(topic, p, config.clone(), point, fresh_at(p))
        });
        let mut recovered = Vec::new();
        let slots = opened
            .into_iter()
            .map(|r| match r {
                Ok((log, needs_checkpoint)) => {
                    let log = Arc::new(log);
                    if needs_checkpoint {
                        recovered.push(log.clone());
                    }
                    PartitionSlot::Online(log)
                }
                Err(e) => PartitionSlot::Offline(e),
            })
            .collect();
        (slots, recovered)
    }

    /// Creates the directories of new partitions `range` of a topic, then makes them durable
    /// with one fsync of the data directory (not one per partition): before the topic file,
    /// the commit point, names them. Directories left over from an interrupted create are
    /// reused (open removes orphans, so they are empty or this topic's own).
    ///
    /// Returns, per partition, whether its directory was made just now (then it is empty: the
    /// data directory is locked, so no one else knows it, and no earlier life left files in
    /// it), so its open looks for nothing in it (about 20 metadata system calls fewer per
    /// partition; docs/ARCHITECTURE.md, "Fifteenth session: ten thousand partitions").
    fn create_partition_dirs(&self, topic: &str, range: std::ops::Range<i32>) -> Result<Vec<bool>> {
        let ids: Vec<i32> = range.collect();
        let created = io::sync::for_each_parallel(&ids, self.options.recovery_threads, |&p| {
            let dir = self.dir.join(dir_name(topic, p));
            match std::fs::create_dir(&dir) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(Error::io("creating directory", &dir, e)),
            }
        });
        let fresh = created.into_iter().collect::<Result<Vec<bool>>>()?;
        if self.ephemeral {
            // Nothing about a temporary directory needs to survive a power loss.
            return Ok(fresh);
        }
        io::sync_dir(&self.dir)?;
        Ok(fresh)
    }

    fn open_partition(
        &self,
        topic: &Arc<str>,
        p: i32,
        config: Arc<TopicConfig>,
        point: Option<DirPoint>,
        fresh: bool,
    ) -> Result<(PartitionLog, bool)> {
        let mut how = LogOpen::new(
            topic.clone(),
            p,
            config,
            self.options.clock.clone(),
            self.notifier.clone(),
            self.files.clone(),
        );
        how.fresh = fresh;
        how.dir_point = point;
        PartitionLog::open_with(&self.dir.join(dir_name(topic, p)), how)
    }

    /// Removes partition directories that no topic file accounts for: leftovers of a create
    /// or delete that was interrupted before or after its commit point.
    fn remove_orphans(
        &self,
        topics: &BTreeMap<String, Arc<TopicState>>,
        broken: &BTreeMap<String, Error>,
    ) -> Result<()> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| Error::io("listing", &self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &self.dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Some((topic, p)) = name.rsplit_once('-') else {
                continue;
            };
            let Ok(p) = p.parse::<i32>() else { continue };
            if names::validate(topic).is_err()
                || !entry.path().is_dir()
                || broken.contains_key(topic)
            {
                continue;
            }
            let known = topics
                .get(topic)
                .is_some_and(|t| p < t.partitions.read().len() as i32);
            if !known {
                io::remove_dir_all_durable(&entry.path())?;
            }
        }
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed { what: "broker" })
        } else {
            Ok(())
        }
    }

    pub(crate) fn topic_state(&self, name: &str) -> Result<Arc<TopicState>> {
        self.check_open()?;
        if let Some(t) = self.topics.read().get(name) {
            return Ok(t.clone());
        }
        if let Some(e) = self.broken_topics.read().get(name) {
            return Err(e.clone());
        }
        names::validate(name)?;
        if self.options.auto_create_topics && !names::is_internal(name) {
            match self.create_topic(name, self.options.default_topic_config.clone(), false) {
                Ok(()) | Err(Error::TopicExists { .. }) => {}
                Err(e) => return Err(e),
            }
            if let Some(t) = self.topics.read().get(name) {
                return Ok(t.clone());
            }
        }
        Err(Error::UnknownTopic {
            topic: name.to_string(),
        })
    }

    /// The topic named `name` if it exists, never creating it (the wire protocol's Metadata
    /// creates only when the client allows it).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn existing_topic(&self, name: &str) -> Option<Arc<TopicState>> {
        self.topics.read().get(name).cloned()
    }

    /// Every topic's name, internal ones included, sorted; with the error of each topic whose
    /// file could not be read.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn all_topic_names(&self) -> Vec<(String, Option<Error>)> {
        let mut names: Vec<(String, Option<Error>)> = self
            .topics
            .read()
            .keys()
            .map(|n| (n.clone(), None))
            .collect();
        names.extend(
            self.broken_topics
                .read()
                .iter()
                .map(|(n, e)| (n.clone(), Some(e.clone()))),
        );
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names
    }

    /// Whether a missing topic is created on first use (the broker's
    /// `auto.create.topics.enable`).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn auto_create_topics(&self) -> bool {
        self.options.auto_create_topics
    }

    /// The config of topics created without one (auto-creation, and the wire protocol's
    /// CreateTopics with the keys it names applied over it).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn default_topic_config(&self) -> &TopicConfig {
        &self.options.default_topic_config
    }

    /// The broker's `transaction.max.timeout.ms`.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn transaction_max_timeout_ms(&self) -> i64 {
        self.options.transaction_max_timeout_ms
    }

    /// Creates `name` with the broker's default topic config, as auto-creation does.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn auto_create(&self, name: &str) -> Result<Arc<TopicState>> {
        names::validate(name)?;
        match self.create_topic(name, self.options.default_topic_config.clone(), false) {
            Ok(()) | Err(Error::TopicExists { .. }) => {}
            Err(e) => return Err(e),
        }
        self.existing_topic(name)
            .ok_or_else(|| Error::UnknownTopic {
                topic: name.to_string(),
            })
    }

    /// The topic metadata version: read it before a lookup, and the lookup stays valid while
    /// the version does not move.
    pub(crate) fn metadata_version(&self) -> u64 {
        self.metadata_version.load(Ordering::Acquire)
    }

    fn bump_metadata_version(&self) {
        self.metadata_version.fetch_add(1, Ordering::AcqRel);
    }

    /// How many partitions `topic` has now (auto-creating it if that is on).
    pub(crate) fn partition_count(&self, topic: &str) -> Result<i32> {
        Ok(self.topic_state(topic)?.partitions.read().len() as i32)
    }

    /// The log of `topic`-`partition`, for producers and consumers.
    pub(crate) fn partition_log(&self, topic: &str, partition: i32) -> Result<Arc<PartitionLog>> {
        let state = self.topic_state(topic)?;
        let partitions = state.partitions.read();
        match partitions.get(usize::try_from(partition).unwrap_or(usize::MAX)) {
            Some(PartitionSlot::Online(log)) => Ok(log.clone()),
            Some(PartitionSlot::Offline(e)) => Err(e.clone()),
            None => Err(Error::UnknownPartition {
                topic: topic.to_string(),
                partition,
                partitions: partitions.len() as i32,
            }),
        }
    }

    pub(crate) fn create_topic(
        &self,
        name: &str,
        config: TopicConfig,
        internal: bool,
    ) -> Result<()> {
        self.check_open()?;
        names::validate(name)?;
        if names::is_internal(name) && !internal {
            return Err(Error::InvalidTopicName {
                name: name.to_string(),
                reason: "names starting with '__' are reserved for internal topics",
            });
        }
        config.validate()?;
        let _admin = self.admin.lock();
        {
            let topics = self.topics.read();
            if topics.contains_key(name) || self.broken_topics.read().contains_key(name) {
                return Err(Error::TopicExists {
                    topic: name.to_string(),
                });
            }
            if let Some(other) = topics.keys().find(|t| names::collides(t, name)) {
                return Err(Error::InvalidTopicName {
                    name: name.to_string(),
                    reason: if other.contains('.') || name.contains('.') {
                        "collides with an existing topic that differs only in '.' versus '_'"
                    } else {
                        "collides with an existing topic"
                    },
                });
            }
        }
        let config = Arc::new(config);
        let fresh = match self.create_partition_dirs(name, 0..config.partitions) {
            Ok(fresh) => fresh,
            Err(e) => {
                self.discard_partitions(name, &[], 0..config.partitions);
                return Err(e);
            }
        };
        let id = topic_store::new_id();
        let (state, recovered) = self.open_topic(name, config.clone(), Some(id), None, &fresh);
        let recovery = self.checkpoint_logs(&recovered, true);
        let failure = recovery.into_iter().find_map(Result::err).or_else(|| {
            state.partitions.read().iter().find_map(|slot| match slot {
                PartitionSlot::Offline(e) => Some(e.clone()),
                PartitionSlot::Online(_) => None,
            })
        });
        let committed = match failure {
            Some(e) => Err(e),
            None => self.store_topic_config(name, &config, Some(id)),
        };
        if let Err(e) = committed {
            self.discard_partitions(name, &state.partitions.read(), 0..config.partitions);
            return Err(e);
        }
        let compacts = config.cleanup_policy.compacts();
        self.topics.write().insert(name.to_string(), state);
        self.bump_metadata_version();
        if compacts {
            self.compacted_topic_added();
        }
        Ok(())
    }

    /// Closes `slots` (the partitions numbered from `range.start`) and removes the directories
    /// of partitions `range` of a topic (best effort: open cleans up the rest).
    fn discard_partitions(
        &self,
        topic: &str,
        slots: &[PartitionSlot],
        range: std::ops::Range<i32>,
    ) {
        for slot in slots {
            if let PartitionSlot::Online(log) = slot {
                let _ = log.close(false);
            }
        }
        for p in range {
            let _ = io::remove_dir_all_durable(&self.dir.join(dir_name(topic, p)));
        }
    }

    pub(crate) fn delete_topic(&self, name: &str, internal: bool) -> Result<()> {
        self.check_open()?;
        if names::is_internal(name) && !internal {
            return Err(Error::InvalidTopicName {
                name: name.to_string(),
                reason: "internal topics cannot be deleted",
            });
        }
        let _admin = self.admin.lock();
        let state = self.topics.write().remove(name);
        let broken = self.broken_topics.write().remove(name);
        if state.is_none() && broken.is_none() {
            return Err(Error::UnknownTopic {
                topic: name.to_string(),
            });
        }
        self.bump_metadata_version();
        if !self.ephemeral {
            topic_store::remove(&self.dir, name)?;
        }
        if let Some(state) = state {
            let count = state.partitions.read().len() as i32;
            self.discard_partitions(name, &state.partitions.read(), 0..count);
        }
        Ok(())
    }

    /// Writes a topic's config file (the commit point of a topic change). A temporary broker
    /// keeps its configs in memory only ([`TopicState::config`]): its directory is never
    /// reopened, so no file would ever be read.
    fn store_topic_config(&self, name: &str, config: &TopicConfig, id: Option<u64>) -> Result<()> {
        if self.ephemeral {
            return Ok(());
        }
        topic_store::write(&self.dir, name, config, id)
    }

    fn broker_dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn groups(&self) -> &GroupRegistry {
        &self.groups
    }

    /// The syncer that makes async commits durable (`Consumer::commit`).
    pub(crate) fn syncer(&self) -> &Syncer {
        &self.syncer
    }

    pub(crate) fn txns(&self) -> &TxnCoordinator {
        &self.txns
    }

    pub(crate) fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    pub(crate) fn clock(&self) -> &SharedClock {
        &self.options.clock
    }

    /// The broker's clock now. The system clock is called directly, so that the call inlines:
    /// a producer reads it for every record, and through the `dyn Clock` the call and its
    /// frame were 13 of the ~960 instructions of a send (`callgrind`).
    #[inline]
    pub(crate) fn now_ms(&self) -> i64 {
        if self.options.system_clock {
            SystemClock.now_ms()
        } else {
            self.options.clock.now_ms()
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Every online partition log.
    pub(crate) fn all_logs(&self) -> Vec<Arc<PartitionLog>> {
        let topics = self.topics.read();
        let mut logs = Vec::new();
        for t in topics.values() {
            for slot in t.partitions.read().iter() {
                if let PartitionSlot::Online(log) = slot {
                    logs.push(log.clone());
                }
            }
        }
        logs
    }

    pub(crate) fn enforce_retention(&self) -> Result<usize> {
        self.check_open()?;
        let now = self.options.clock.now_ms();
        let mut deleted = 0;
        let mut first_error = None;
        for log in self.all_logs() {
            match log.enforce_retention(now, false) {
                Ok(n) => deleted += n,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(deleted),
        }
    }

    /// Starts the cleaner thread if the builder wants one and it is not running.
    fn start_cleaner(&self) -> Result<()> {
        if !self.options.log_cleaner {
            return Ok(());
        }
        let mut slot = self.cleaner.lock();
        // `close` sets `closed` before it takes the slot: a thread started here is stopped there.
        if slot.is_none() && !self.is_closed() {
            *slot = Some(cleaner::start(
                self.this.clone(),
                self.options.cleaner_backoff,
            )?);
        }
        Ok(())
    }

    /// After a topic became compacted: the cleaner must run. A thread that cannot start is
    /// logged, not returned (the topic change is done; `run_log_cleaner` still cleans).
    pub(crate) fn compacted_topic_added(&self) {
        if let Err(e) = self.start_cleaner() {
            log::warn!("log cleaner thread did not start: {e}");
        }
    }

    /// One round of the log cleaner: a pass over each partition whose cleaning is due,
    /// dirtiest first. A failing partition is reported, logged and skipped from then on; the
    /// round goes on with the others.
    pub(crate) fn run_log_cleaner(&self) -> Result<CleanerReport> {
        self.check_open()?;
        let now = self.options.clock.now_ms();
        let mut due: Vec<(f64, Arc<PartitionLog>)> = self
            .all_logs()
            .into_iter()
            .filter_map(|log| log.cleaning_due(now).map(|ratio| (ratio, log)))
            .collect();
        due.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut throttle = Throttle::new(self.options.cleaner_io_max_bytes_per_second);
        let mut report = CleanerReport::default();
        for (_, log) in due {
            let cancelled = || self.is_closed();
            match log.clean(
                self.options.cleaner_dedupe_buffer_size,
                &mut throttle,
                now,
                &cancelled,
            ) {
                Ok(Some(s)) => {
                    report.partitions_cleaned += 1;
                    report.bytes_read += s.bytes_read;
                    report.bytes_written += s.bytes_written;
                    report.records_read += s.records_read;
                    report.records_removed += s.records_removed;
                    report.segments_replaced += s.segments_replaced;
                }
                Ok(None) => {}
                Err(e) => {
                    log::warn!(
                        "log cleaner failed on {}-{}: {e}",
                        log.topic(),
                        log.partition()
                    );
                    report
                        .partitions_failed
                        .push(TopicPartition::new(log.topic(), log.partition()));
                }
            }
        }
        Ok(report)
    }

    /// A clean close's checkpoint: only the partitions that changed since open, in one batch,
    /// their points (and those of the partitions left alone) in the data directory's
    /// `recovery-points` file rather than one `recovery-point` file per partition.
    fn close_checkpoint(&self) -> Vec<Result<()>> {
        let mut changed = Vec::new();
        let mut ids = Vec::new();
        let mut others = Vec::new();
        for t in self.topics.read().values() {
            for slot in t.partitions.read().iter() {
                let PartitionSlot::Online(log) = slot else {
                    continue;
                };
                let name = dir_name(log.topic(), log.partition());
                if log.close_needs_checkpoint() {
                    changed.push(log.clone());
                    ids.push(t.id.map(|id| (name, id)));
                } else if let (Some(id), Some(p)) = (t.id, log.clean_point()) {
                    others.push(RecoveryPointEntry {
                        dir_name: name,
                        topic_id: id,
                        point: p.point,
                        no_producers: p.no_producers,
                    });
                }
            }
        }
        // Entries of partitions that get no new one: kept while their topic is the one they
        // were written for (or its file is unreadable, so it is not known).
        let kept = {
            let topics = self.topics.read();
            let broken = self.broken_topics.read();
            self.points_at_open
                .lock()
                .values()
                .filter(|e| {
                    let Some((topic, p)) = e.dir_name.rsplit_once('-') else {
                        return false;
                    };
                    let p = p.parse::<usize>().unwrap_or(usize::MAX);
                    broken.contains_key(topic)
                        || topics.get(topic).is_some_and(|t| {
                            t.id == Some(e.topic_id) && p < t.partitions.read().len()
                        })
                })
                .cloned()
                .collect()
        };
        let points = PointsFile {
            data_dir: self.dir.clone(),
            ids,
            others,
            kept,
        };
        checkpoint_many(
            &changed,
            self.dir_handle.as_ref(),
            &self.dir,
            self.options.recovery_threads,
            true,
            Some(&points),
        )
    }

    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.bump_metadata_version();
        // First, while the logs are open: the syncs queued for pending futures complete.
        self.syncer.stop();
        if let Some(tasks) = self.tasks.lock().take() {
            tasks.stop();
        }
        if let Some(cleaner) = self.cleaner.lock().take() {
            cleaner.stop();
        }
        let mut first_error = None;
        // A temporary directory is removed when the last handle drops: flushing it is wasted
        // fsyncs (tests open and drop many of these).
        let checkpoint = !self.ephemeral;
        let logs = self.all_logs();
        if self.ephemeral {
            // While the logs still list them: what the last handle's drop unlinks.
            *self.temp_files.lock() = logs.iter().map(|log| log.segment_files()).collect();
        }
        if checkpoint {
            for result in self.close_checkpoint() {
                if let Err(e) = result {
                    first_error.get_or_insert(e);
                }
            }
        }
        let threads = self.options.recovery_threads;
        for result in io::sync::for_each_parallel(&logs, threads, |log| log.close(false)) {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        self.notifier.notify();
        drop(self.lock.lock().take());
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl BrokerInner {
    /// Removes a temporary broker's directory, after `close`. The segment files `close` noted
    /// are unlinked and each partition directory, then the root, removed with `rmdir`; a
    /// directory that still holds something (an index written at a roll, a producer snapshot,
    /// a partition that did not open, a file a test put there) makes its `rmdir` fail and is
    /// then removed whole, listed as `TempDir`'s drop would. Without listings, the common case
    /// (a topic or two, one segment each) costs one `unlink` and one `rmdir` per partition
    /// where `remove_dir_all` spent about seven more calls per directory. Best effort, as
    /// `TempDir`'s drop: a failure leaves files behind and is not reported.
    fn remove_temporary_dir(&self) {
        let Some(temp) = self.temp.lock().take() else {
            return;
        };
        let root = temp.keep();
        for (dir, files) in std::mem::take(&mut *self.temp_files.lock()) {
            for file in &files {
                let _ = std::fs::remove_file(file);
            }
            if std::fs::remove_dir(&dir).is_err() {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        if std::fs::remove_dir(&root).is_err() {
            let _ = std::fs::remove_dir_all(&root);
        }
    }
}

impl Drop for BrokerInner {
    fn drop(&mut self) {
        // Best effort: Drop cannot report errors; `Broker::close` does.
        let _ = self.close();
        self.remove_temporary_dir();
    }
}

/// A data directory opened as a Kafka broker: topics, partitions, and the logs behind them.
///
/// `Broker` is a cheap handle (`Clone + Send + Sync`); every clone refers to the same broker.
/// [`Broker::close`] flushes, stops background threads and releases the directory lock;
/// dropping the last handle does the same, quietly.
///
/// ```
/// use embroker::{Broker, Record, TopicConfig};
/// let broker = Broker::temporary()?;
/// broker.create_topic("orders", TopicConfig::default().partitions(2))?;
/// let p0 = broker.topic("orders")?.partition(0)?;
/// let base = p0.append(&[Record::new("first").key("k1"), Record::new("second")])?;
/// assert_eq!(base, 0);
/// let records = p0.read(0, 1 << 20)?;
/// let values: Vec<_> = records.iter().map(|r| r.value.unwrap()).collect();
/// assert_eq!(values, ["first", "second"]);
/// broker.close()?;
/// # Ok::<(), embroker::Error>(())
/// ```
#[derive(Clone)]
pub struct Broker {
    pub(crate) inner: Arc<BrokerInner>,
    /// Shared by every clone: the last one to drop closes the broker (see [`LastHandle`]).
    _last: Arc<LastHandle>,
}

/// Closes the broker when the last [`Broker`] handle drops, on the thread that drops it.
///
/// The background threads hold the broker only while they work on it, and not as handles:
/// left to `BrokerInner`'s own `Drop`, a handle dropped while the tasks thread fsynced rolled
/// segments returned at once and the tasks thread closed the broker later. The caller then
/// found the directory still locked, and a process that exited meanwhile left its temporary
/// directory behind (tests/broker_last_handle.rs).
struct LastHandle(Arc<BrokerInner>);

impl Drop for LastHandle {
    fn drop(&mut self) {
        // Best effort: Drop cannot report errors; `Broker::close` does. `close` stops and
        // joins the background threads first.
        let _ = self.0.close();
        self.0.remove_temporary_dir();
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Opens (creating if needed) the data directory at `path` with default options.
    ///
    /// Fails at once with [`Error::DirectoryLocked`] if another broker, in this process or
    /// another, has it open.
    pub fn open(path: impl AsRef<Path>) -> Result<Broker> {
        BrokerBuilder::default().open(path)
    }

    /// Opens a broker in a fresh temporary directory that is removed when the last handle
    /// drops: a fake Kafka for tests. It never fsyncs (see [`BrokerBuilder::open_temporary`]).
    pub fn temporary() -> Result<Broker> {
        BrokerBuilder::default().open_temporary()
    }

    /// Options for opening a broker.
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder::default()
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        self.inner.broker_dir()
    }

    /// Creates a topic. The name must follow Kafka's rules and not start with `__`.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        self.inner.create_topic(name, config, false)
    }

    /// Deletes a topic and its data. Handles to its partitions fail from then on.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.inner.delete_topic(name, false)
    }

    /// The names of the user topics, sorted (internal `__` topics are left out, as Kafka's
    /// `listTopics` does by default).
    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.topics.read().keys().cloned().collect();
        names.extend(self.inner.broken_topics.read().keys().cloned());
        names.retain(|n| !names::is_internal(n));
        names.sort();
        names
    }

    /// A handle to a topic (created with the default config if auto-creation is on).
    pub fn topic(&self, name: &str) -> Result<Topic> {
        let state = self.inner.topic_state(name)?;
        Ok(Topic::new(self.clone(), state))
    }

    /// Config and per-partition offsets and sizes of a topic.
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let state = self.inner.topic_state(name)?;
        let config = (*state.config.read().clone()).clone();
        let partitions = state
            .partitions
            .read()
            .iter()
            .enumerate()
            .map(|(p, slot)| PartitionDescription::of(p as i32, slot))
            .collect();
        Ok(TopicDescription {
            name: name.to_string(),
            config,
            partitions,
        })
    }

    /// Raises a topic's partition count to `new_count` (increase only, as in Kafka).
    pub fn create_partitions(&self, name: &str, new_count: i32) -> Result<()> {
        let inner = &self.inner;
        let state = inner.topic_state(name)?;
        let _admin = inner.admin.lock();
        let current = state.partitions.read().len() as i32;
        if new_count <= current {
            return Err(Error::InvalidPartitionCount {
                topic: name.to_string(),
                current,
                requested: new_count,
            });
        }
        let config = Arc::new((*state.config.read().clone()).clone().partitions(new_count));
        config.validate()?;
        let mut added = match inner.create_partition_dirs(&state.name, current..new_count) {
            Ok(fresh) => {
                inner.open_partitions(&state.name, current..new_count, &config, None, &fresh)
            }
            Err(e) => (vec![PartitionSlot::Offline(e)], Vec::new()),
        };
        // Leftover directories of an interrupted create may have held data to recover.
        let recovery = inner.checkpoint_logs(&added.1, true);
        if let Some(e) = recovery.into_iter().find_map(Result::err) {
            added.0.push(PartitionSlot::Offline(e));
        }
        let added = added.0;
        let failure = added.iter().find_map(|slot| match slot {
            PartitionSlot::Offline(e) => Some(e.clone()),
            PartitionSlot::Online(_) => None,
        });
        if let Some(e) = failure {
            // Only the new partitions' directories: the existing ones stay as they are.
            inner.discard_partitions(name, &added, current..new_count);
            return Err(e);
        }
        inner.store_topic_config(name, &config, state.id)?;
        *state.config.write() = config.clone();
        let mut partitions = state.partitions.write();
        for slot in partitions.iter() {
            if let PartitionSlot::Online(log) = slot {
                log.set_config(config.clone());
            }
        }
        partitions.extend(added);
        drop(partitions);
        inner.bump_metadata_version();
        inner.notifier.notify();
        Ok(())
    }

    /// Changes a topic's config at run time: Kafka keys applied over the current config and
    /// persisted. `num.partitions` cannot be changed here (use [`Broker::create_partitions`]).
    pub fn alter_topic_config<K: AsRef<str>, V: AsRef<str>>(
        &self,
        name: &str,
        changes: &[(K, V)],
    ) -> Result<()> {
        let inner = &self.inner;
        let state = inner.topic_state(name)?;
        if let Some((k, v)) = changes.iter().find(|(k, _)| k.as_ref() == "num.partitions") {
            return Err(Error::config(
                k.as_ref(),
                v.as_ref(),
                "partitions are added with create_partitions",
            ));
        }
        let _admin = inner.admin.lock();
        let config = Arc::new(
            (*state.config.read().clone())
                .clone()
                .with_properties(changes)?,
        );
        inner.store_topic_config(name, &config, state.id)?;
        *state.config.write() = config.clone();
        for slot in state.partitions.read().iter() {
            if let PartitionSlot::Online(log) = slot {
                log.set_config(config.clone());
            }
        }
        if config.cleanup_policy.compacts() {
            inner.compacted_topic_added();
        }
        Ok(())
    }

    /// Runs one retention pass over every partition now; returns the segments deleted.
    /// (The background task does the same every `retention_check_interval`.)
    pub fn enforce_retention(&self) -> Result<usize> {
        self.inner.enforce_retention()
    }

    /// Runs one round of the log cleaner now: compacts every partition of a topic with
    /// `cleanup.policy=compact` whose cleaning is due (dirty ratio above
    /// `min.cleanable.dirty.ratio`, a record older than `max.compaction.lag.ms`, or a kept
    /// tombstone past its delete horizon), as the cleaner thread does every
    /// [`BrokerBuilder::cleaner_backoff`]. Only sealed segments the recovery point covers are
    /// cleaned: [`Broker::flush`] first to include everything appended so far.
    ///
    /// ```
    /// use embroker::{Broker, CleanupPolicy, Record, TopicConfig};
    /// let broker = Broker::builder().log_cleaner(false).open_temporary()?;
    /// let config = TopicConfig::default()
    ///     .cleanup_policy(CleanupPolicy::Compact)
    ///     .segment_bytes(1024);
    /// broker.create_topic("prices", config)?;
    /// let p = broker.topic("prices")?.partition(0)?;
    /// for i in 0..100 {
    ///     p.append(&[Record::new(format!("{i}")).key(if i % 2 == 0 { "even" } else { "odd" })])?;
    /// }
    /// broker.flush()?; // only what the recovery point covers is cleaned
    /// let report = broker.run_log_cleaner()?;
    /// assert!(report.records_removed > 0);
    /// let (mut offsets, mut at) = (Vec::new(), 0);
    /// while at < p.log_end_offset() {
    ///     let read = p.read(at, 1 << 20)?;
    ///     offsets.extend(read.iter().map(|r| r.offset));
    ///     at = read.next_offset();
    /// }
    /// // Older values are gone, the newest of each key stays, and offsets keep their gaps.
    /// assert!(offsets.len() < 100 && offsets.ends_with(&[98, 99]));
    /// # Ok::<(), embroker::Error>(())
    /// ```
    pub fn run_log_cleaner(&self) -> Result<CleanerReport> {
        self.inner.run_log_cleaner()
    }

    /// Flushes every partition (log, indexes, recovery point).
    pub fn flush(&self) -> Result<()> {
        self.inner.check_open()?;
        let logs = self.inner.all_logs();
        self.inner
            .checkpoint_logs(&logs, false)
            .into_iter()
            .collect()
    }

    /// Flushes everything, stops background threads and releases the directory lock. Every
    /// handle fails with [`Error::Closed`] afterwards. Closing twice is a no-op.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// True once [`Broker::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }
}
