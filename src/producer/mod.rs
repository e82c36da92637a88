//! The producer side: choosing a partition for each record (and, later, batching and sending).
//!
//! `partitioner` owns Kafka's murmur2 and the built-in partitioners. It is pure computation:
//! no I/O, no clock, no knowledge of logs; the producer asks it for a partition number and
//! checks the answer lies in `0..partition_count`.

pub(crate) mod partitioner;

pub use partitioner::{
    murmur2, to_positive, DefaultPartitioner, NullKeyStrategy, Partitioner, RandomPartitioner,
    RoundRobinPartitioner,
};
