//! Kafka's key catalogue: every key the Kafka Java client (and the broker, for topics) defines,
//! and what this library does with it.
//!
//! The lists were taken from Kafka's own config definitions (apache/kafka trunk of October 2024,
//! between 3.9 and 4.0): `ProducerConfig`, `ConsumerConfig`, `CommonClientConfigs`,
//! `SaslConfigs` and `SslConfigs` (what `withClientSslSupport()` and `withClientSaslSupport()`
//! add) for the clients, `TopicConfig` and the topic part of `LogConfig` for topics. Key names are
//! Kafka's, exactly.
//!
//! Each key is either *applied* (it is a field of the config: the `KEYS` constant of
//! [`ProducerConfig`](crate::ProducerConfig), [`ConsumerConfig`](crate::ConsumerConfig) and
//! [`TopicConfig`](crate::TopicConfig)) or *ignored*: accepted, recorded, logged once, because it
//! cannot mean anything in one process (the tables below give the reason for each). A key in
//! neither list is an error that suggests the closest known key.
//!
//! librdkafka's names for the same settings are accepted as aliases where they map cleanly
//! (librdkafka's `CONFIGURATION.md`, "Alias for"):
//!
//! | librdkafka | Kafka | config |
//! | --- | --- | --- |
//! | `metadata.broker.list` | `bootstrap.servers` | producer, consumer |
//! | `sasl.mechanisms` | `sasl.mechanism` | producer, consumer |
//! | `max.in.flight` | `max.in.flight.requests.per.connection` | producer |
//! | `queue.buffering.max.ms` | `linger.ms` | producer |
//! | `message.send.max.retries` | `retries` | producer |
//! | `compression.codec` | `compression.type` | producer |
//! | `request.required.acks` | `acks` | producer |
//! | `message.timeout.ms` | `delivery.timeout.ms` | producer |
//! | `auto.commit.enable` | `enable.auto.commit` | consumer |
//! | `fetch.message.max.bytes` | `max.partition.fetch.bytes` | consumer |
//! | `fetch.wait.max.ms` | `fetch.max.wait.ms` | consumer |
//!
//! `auto.offset.reset` also takes librdkafka's values: `smallest` and `beginning` (earliest),
//! `largest` and `end` (latest), `error` (none). librdkafka's own keys with no Kafka counterpart
//! (`queue.buffering.max.kbytes`, `message.max.bytes`, `statistics.interval.ms`, ...) are not
//! accepted: their units or meaning differ from any Kafka key.

/// Ignored keys with their reasons, for the producer and the consumer alike:
/// `CommonClientConfigs`, `SslConfigs` and `SaslConfigs`.
const NETWORK: &str = "there is no network connection in one process";
const SECURITY: &str = "there is no connection to secure in one process";
const METRICS: &str = "the Java client's metrics have no counterpart here";

macro_rules! client_ignored {
    ($($extra:expr,)*) => {
        &[
            $($extra,)*
            ("bootstrap.servers", "there are no brokers to connect to: the broker is in-process"),
            ("client.dns.lookup", NETWORK),
            ("metadata.max.age.ms", "metadata is read in-process, never cached or refreshed"),
            ("metadata.recovery.strategy", "metadata is read in-process, never cached or refreshed"),
            ("send.buffer.bytes", NETWORK),
            ("receive.buffer.bytes", NETWORK),
            ("reconnect.backoff.ms", NETWORK),
            ("reconnect.backoff.max.ms", NETWORK),
            ("retry.backoff.ms", "calls are not retried over a network"),
            ("retry.backoff.max.ms", "calls are not retried over a network"),
            ("request.timeout.ms", "there are no requests: calls are function calls"),
            ("socket.connection.setup.timeout.ms", NETWORK),
            ("socket.connection.setup.timeout.max.ms", NETWORK),
            ("connections.max.idle.ms", NETWORK),
            ("enable.metrics.push", METRICS),
            ("metrics.recording.level", METRICS),
            ("metric.reporters", METRICS),
            ("security.protocol", SECURITY),
            ("security.providers", SECURITY),
            ("ssl.protocol", SECURITY),
            ("ssl.provider", SECURITY),
            ("ssl.cipher.suites", SECURITY),
            ("ssl.enabled.protocols", SECURITY),
            ("ssl.keystore.type", SECURITY),
            ("ssl.keystore.location", SECURITY),
            ("ssl.keystore.password", SECURITY),
            ("ssl.key.password", SECURITY),
            ("ssl.keystore.key", SECURITY),
            ("ssl.keystore.certificate.chain", SECURITY),
            ("ssl.truststore.certificates", SECURITY),
            ("ssl.truststore.type", SECURITY),
            ("ssl.truststore.location", SECURITY),
            ("ssl.truststore.password", SECURITY),
            ("ssl.keymanager.algorithm", SECURITY),
            ("ssl.trustmanager.algorithm", SECURITY),
            ("ssl.endpoint.identification.algorithm", SECURITY),
            ("ssl.secure.random.implementation", SECURITY),
            ("ssl.engine.factory.class", SECURITY),
            ("sasl.kerberos.service.name", SECURITY),
            ("sasl.kerberos.kinit.cmd", SECURITY),
            ("sasl.kerberos.ticket.renew.window.factor", SECURITY),
            ("sasl.kerberos.ticket.renew.jitter", SECURITY),
            ("sasl.kerberos.min.time.before.relogin", SECURITY),
            ("sasl.login.refresh.window.factor", SECURITY),
            ("sasl.login.refresh.window.jitter", SECURITY),
            ("sasl.login.refresh.min.period.seconds", SECURITY),
            ("sasl.login.refresh.buffer.seconds", SECURITY),
            ("sasl.mechanism", SECURITY),
            ("sasl.jaas.config", SECURITY),
            ("sasl.client.callback.handler.class", SECURITY),
            ("sasl.login.callback.handler.class", SECURITY),
            ("sasl.login.class", SECURITY),
            ("sasl.login.connect.timeout.ms", SECURITY),
            ("sasl.login.read.timeout.ms", SECURITY),
            ("sasl.login.retry.backoff.max.ms", SECURITY),
            ("sasl.login.retry.backoff.ms", SECURITY),
            ("sasl.oauthbearer.scope.claim.name", SECURITY),
            ("sasl.oauthbearer.sub.claim.name", SECURITY),
            ("sasl.oauthbearer.token.endpoint.url", SECURITY),
            ("sasl.oauthbearer.jwks.endpoint.url", SECURITY),
            ("sasl.oauthbearer.jwks.endpoint.refresh.ms", SECURITY),
            ("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", SECURITY),
            ("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", SECURITY),
            ("sasl.oauthbearer.clock.skew.seconds", SECURITY),
            ("sasl.oauthbearer.expected.audience", SECURITY),
            ("sasl.oauthbearer.expected.issuer", SECURITY),
            ("sasl.oauthbearer.header.urlencode", SECURITY),
        ]
    };
}

const JAVA_CLASS: &str =
    "Java classes cannot be loaded: records are bytes, (de)serialize in your code";
const INTERCEPTORS: &str =
    "Java classes cannot be loaded: wrap the producer or consumer in your code";

/// Producer keys accepted and ignored, with the reason each cannot apply in one process.
pub(crate) const PRODUCER_IGNORED: &[(&str, &str)] = client_ignored!(
    ("key.serializer", JAVA_CLASS),
    ("value.serializer", JAVA_CLASS),
    ("interceptor.classes", INTERCEPTORS),
    (
        "retries",
        "an append succeeds or fails at once; there is no network error to retry"
    ),
    (
        "delivery.timeout.ms",
        "an append succeeds or fails at once; nothing waits on a broker"
    ),
    ("max.in.flight.requests.per.connection", NETWORK),
    (
        "metadata.max.idle.ms",
        "metadata is read in-process, never cached or refreshed"
    ),
    (
        "partitioner.adaptive.partitioning.enable",
        "adapts to slow brokers; every partition here is in the same process"
    ),
    (
        "partitioner.availability.timeout.ms",
        "adapts to slow brokers; every partition here is in the same process"
    ),
);

/// Consumer keys accepted and ignored, with the reason each cannot apply in one process.
pub(crate) const CONSUMER_IGNORED: &[(&str, &str)] = client_ignored!(
    ("key.deserializer", JAVA_CLASS),
    ("value.deserializer", JAVA_CLASS),
    ("interceptor.classes", INTERCEPTORS),
    (
        "heartbeat.interval.ms",
        "the coordinator is in-process and sees members directly: no heartbeat requests"
    ),
    (
        "client.rack",
        "there are no racks or replicas to fetch from"
    ),
    (
        "check.crcs",
        "the log checks batch CRCs itself when it reads"
    ),
    ("exclude.internal.topics", "there are no internal topics"),
    (
        "allow.auto.create.topics",
        "topics are created explicitly with Broker::create_topic"
    ),
    (
        "default.api.timeout.ms",
        "there are no requests: calls are function calls"
    ),
    (
        "group.protocol",
        "the in-process coordinator runs one protocol, with the classic protocol's semantics"
    ),
    (
        "group.remote.assignor",
        "assignors run in the member (partition.assignment.strategy)"
    ),
);

const REPLICAS: &str = "there is one copy of each partition: no replicas, no leader election";
const TIERED: &str = "there is no tiered (remote) storage";

/// Topic keys accepted and ignored, with the reason each cannot apply in one process.
pub(crate) const TOPIC_IGNORED: &[(&str, &str)] = &[
    ("unclean.leader.election.enable", REPLICAS),
    ("min.insync.replicas", REPLICAS),
    ("leader.replication.throttled.replicas", REPLICAS),
    ("follower.replication.throttled.replicas", REPLICAS),
    ("remote.storage.enable", TIERED),
    ("local.retention.ms", TIERED),
    ("local.retention.bytes", TIERED),
    ("remote.log.copy.disable", TIERED),
    ("remote.log.delete.on.disable", TIERED),
    (
        "segment.jitter.ms",
        "spreads segment rolls across a cluster's partitions; one process rolls by segment.ms",
    ),
    (
        "segment.index.bytes",
        "embroker sizes its index files itself",
    ),
    ("preallocate", "segment files are not preallocated here"),
    (
        "file.delete.delay.ms",
        "segments are deleted by embroker's own rules",
    ),
    (
        "message.format.version",
        "deprecated in Kafka; the log writes format v2 (magic 2) only",
    ),
    (
        "message.timestamp.difference.max.ms",
        "deprecated in Kafka 3.6; use message.timestamp.before.max.ms and \
         message.timestamp.after.max.ms",
    ),
    (
        "message.downconversion.enable",
        "there are no old-format consumers to convert for",
    ),
];

/// librdkafka names accepted for producer keys: (librdkafka, Kafka).
pub(crate) const PRODUCER_ALIASES: &[(&str, &str)] = &[
    ("metadata.broker.list", "bootstrap.servers"),
    ("sasl.mechanisms", "sasl.mechanism"),
    ("max.in.flight", "max.in.flight.requests.per.connection"),
    ("queue.buffering.max.ms", "linger.ms"),
    ("message.send.max.retries", "retries"),
    ("compression.codec", "compression.type"),
    ("request.required.acks", "acks"),
    ("message.timeout.ms", "delivery.timeout.ms"),
];

/// librdkafka names accepted for consumer keys: (librdkafka, Kafka).
pub(crate) const CONSUMER_ALIASES: &[(&str, &str)] = &[
    ("metadata.broker.list", "bootstrap.servers"),
    ("sasl.mechanisms", "sasl.mechanism"),
    ("auto.commit.enable", "enable.auto.commit"),
    ("fetch.message.max.bytes", "max.partition.fetch.bytes"),
    ("fetch.wait.max.ms", "fetch.max.wait.ms"),
];

/// One config's catalogue: what it applies, ignores, and which aliases it takes.
pub(crate) struct Catalogue {
    /// "producer", "consumer" or "topic", for messages.
    pub(crate) what: &'static str,
    pub(crate) applied: &'static [&'static str],
    pub(crate) ignored: &'static [(&'static str, &'static str)],
    pub(crate) aliases: &'static [(&'static str, &'static str)],
}

/// What a key given to a config is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A key the config applies (Kafka's name, after resolving an alias).
    Applied(&'static str),
    /// A key the config accepts and ignores (Kafka's name, after resolving an alias).
    Ignored(&'static str),
    /// Not a key of this config.
    Unknown,
}

impl Catalogue {
    /// Resolves an alias, then classifies the key.
    pub(crate) fn lookup(&self, key: &str) -> Lookup {
        let key = self
            .aliases
            .iter()
            .find(|(alias, _)| *alias == key)
            .map_or(key, |(_, kafka)| *kafka);
        if let Some(k) = self.applied.iter().find(|k| **k == key) {
            return Lookup::Applied(k);
        }
        if let Some((k, _)) = self.ignored.iter().find(|(k, _)| *k == key) {
            return Lookup::Ignored(k);
        }
        Lookup::Unknown
    }

    /// Why `key` is rejected, in the user's terms: it is not a Kafka key of this config, and the
    /// closest known key (by edit distance), if one is close.
    pub(crate) fn unknown_reason(&self, key: &str) -> String {
        let known = self
            .applied
            .iter()
            .copied()
            .chain(self.ignored.iter().map(|(k, _)| *k))
            .chain(self.aliases.iter().map(|(a, _)| *a));
        let what = self.what;
        match closest(key, known) {
            Some(near) => format!("not a {what} config key; did you mean {near}?"),
            None => format!("not a {what} config key Kafka defines"),
        }
    }
}

/// The candidate nearest to `key` by edit distance, if it is near enough to be a plausible typo:
/// at most a third of the key's length (and at least 2) edits away. Ties go to the first listed.
pub(crate) fn closest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (key.chars().count() / 3).max(2);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let d = edit_distance(key, candidate);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance over chars, ignoring ASCII case (Kafka's keys are lower case; a key
/// typed in another case is still a typo of it).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn no_key_is_listed_twice_or_both_applied_and_ignored() {
        for (applied, ignored, aliases) in [
            (
                crate::ProducerConfig::KEYS,
                PRODUCER_IGNORED,
                PRODUCER_ALIASES,
            ),
            (
                crate::ConsumerConfig::KEYS,
                CONSUMER_IGNORED,
                CONSUMER_ALIASES,
            ),
            (crate::TopicConfig::KEYS, TOPIC_IGNORED, &[][..]),
        ] {
            let mut seen = HashSet::new();
            for key in applied.iter().chain(ignored.iter().map(|(k, _)| k)) {
                assert!(seen.insert(*key), "{key} listed twice");
            }
            for (alias, kafka) in aliases {
                assert!(seen.contains(kafka), "alias {alias} of unknown key {kafka}");
                assert!(!seen.contains(alias), "alias {alias} is also a key");
            }
        }
    }

    #[test]
    fn edit_distance_and_closest() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("lingerms", "linger.ms"), 1);
        let keys = ["linger.ms", "acks", "batch.size"];
        assert_eq!(closest("lingerms", keys.into_iter()), Some("linger.ms"));
        assert_eq!(closest("Batch.Size", keys.into_iter()), Some("batch.size"));
        assert_eq!(closest("something.else.entirely", keys.into_iter()), None);
    }
}
