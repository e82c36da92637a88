//! embroker's errors as Kafka's error codes.

use kafka_protocol::ResponseError;

use crate::error::Error;

/// The Kafka error code a client gets for `e` (Kafka's `Errors`), and the message to send
/// where the response has room for one.
pub(crate) fn code(e: &Error) -> i16 {
    kafka_error(e).code()
}

/// [`code`] as Kafka's enum.
pub(crate) fn kafka_error(e: &Error) -> ResponseError {
    match e {
        Error::InvalidTopicName { .. } => ResponseError::InvalidTopicException,
        Error::TopicExists { .. } => ResponseError::TopicAlreadyExists,
        Error::UnknownTopic { .. } | Error::UnknownPartition { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        Error::InvalidPartitionCount { .. } => ResponseError::InvalidPartitions,
        Error::InvalidConfig { .. } => ResponseError::InvalidConfig,
        Error::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        Error::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        Error::InvalidRecord { .. } => ResponseError::InvalidRecord,
        Error::CorruptRecord { .. } => ResponseError::CorruptMessage,
        Error::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp,
        Error::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        Error::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        Error::ProducerFenced { .. } => ResponseError::ProducerFenced,
        Error::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
        Error::InvalidTransactionTimeout { .. } => ResponseError::InvalidTransactionTimeout,
        Error::CommitFailed { .. } => ResponseError::IllegalGeneration,
        Error::RebalanceInProgress { .. } => ResponseError::RebalanceInProgress,
        Error::FencedInstanceId { .. } => ResponseError::FencedInstanceId,
        Error::UnknownGroup { .. } => ResponseError::GroupIdNotFound,
        Error::GroupNotEmpty { .. } => ResponseError::NonEmptyGroup,
        Error::Timeout { .. } => ResponseError::RequestTimedOut,
        Error::InvalidArgument { .. } => ResponseError::InvalidRequest,
        Error::Unsupported { .. } => ResponseError::UnsupportedVersion,
        Error::Io { .. } | Error::LogFailed { .. } => ResponseError::KafkaStorageError,
        Error::Closed { .. } => ResponseError::BrokerNotAvailable,
        _ => ResponseError::UnknownServerError,
    }
}
