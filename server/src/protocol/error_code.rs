//! Kafka error codes, and the one place where internal errors become them.
//!
//! The numbers are Kafka's (`org.apache.kafka.common.protocol.Errors`). Every engine
//! error is mapped in [`ErrorCode::from_engine`], an exhaustive match: a new engine error
//! that nobody mapped fails to compile.

use corelog_engine::batch::BatchError;
use corelog_engine::Error as EngineError;

/// A Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
#[allow(missing_docs)]
pub enum ErrorCode {
    UnknownServerError = -1,
    None = 0,
    OffsetOutOfRange = 1,
    CorruptMessage = 2,
    UnknownTopicOrPartition = 3,
    NotLeaderOrFollower = 6,
    CoordinatorNotAvailable = 15,
    NotCoordinator = 16,
    MessageTooLarge = 10,
    OffsetMetadataTooLarge = 12,
    InvalidTopicException = 17,
    InvalidRequiredAcks = 21,
    IllegalGeneration = 22,
    InconsistentGroupProtocol = 23,
    InvalidGroupId = 24,
    UnknownMemberId = 25,
    InvalidSessionTimeout = 26,
    RebalanceInProgress = 27,
    UnsupportedVersion = 35,
    TopicAlreadyExists = 36,
    InvalidPartitions = 37,
    InvalidReplicationFactor = 38,
    InvalidConfig = 40,
    InvalidRequest = 42,
    OutOfOrderSequenceNumber = 45,
    InvalidProducerEpoch = 47,
    TransactionalIdAuthorizationFailed = 53,
    KafkaStorageError = 56,
    NonEmptyGroup = 68,
    GroupIdNotFound = 69,
    UnsupportedCompressionType = 76,
    MemberIdRequired = 79,
    FencedInstanceId = 82,
    GroupSubscribedToTopic = 86,
    InvalidRecord = 87,
    UnknownTopicId = 100,
}

impl ErrorCode {
    /// The wire value.
    pub fn code(self) -> i16 {
        self as i16
    }

    /// The Kafka error for an engine error.
    pub fn from_engine(e: &EngineError) -> ErrorCode {
        match e {
            // A full disk, a failed write or fsync: the partition's storage failed, the
            // rest of the broker keeps serving.
            EngineError::Io { .. }
            | EngineError::LogFailed { .. }
            | EngineError::Corrupt { .. } => ErrorCode::KafkaStorageError,
            EngineError::InvalidBatch(b) => match b {
                BatchError::Corrupt { .. } => ErrorCode::CorruptMessage,
                BatchError::TooLarge { .. } => ErrorCode::MessageTooLarge,
                BatchError::InvalidRecord(_) => ErrorCode::InvalidRecord,
                BatchError::UnsupportedCompression(_) => ErrorCode::UnsupportedCompressionType,
            },
            EngineError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            // The partition was closed under the request (topic deleted, broker stopping):
            // retriable, the client refreshes its metadata.
            EngineError::Closed => ErrorCode::NotLeaderOrFollower,
            EngineError::InvalidArgument(_) => ErrorCode::InvalidRequest,
        }
    }
}

/// A Kafka error code with an optional message for the responses that carry one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    /// The code.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: Option<String>,
}

impl KafkaError {
    /// An error with a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        KafkaError {
            code,
            message: Some(message.into()),
        }
    }
}

impl From<ErrorCode> for KafkaError {
    fn from(code: ErrorCode) -> Self {
        KafkaError {
            code,
            message: None,
        }
    }
}

impl From<&EngineError> for KafkaError {
    fn from(e: &EngineError) -> Self {
        KafkaError::new(ErrorCode::from_engine(e), e.to_string())
    }
}

impl From<EngineError> for KafkaError {
    fn from(e: EngineError) -> Self {
        KafkaError::from(&e)
    }
}
