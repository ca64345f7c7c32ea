//! Typed errors of the storage engine.
//!
//! Every I/O error names the operation and the file it happened on. The broker maps these
//! variants to Kafka error codes in exactly one place (the server's error module); adding a
//! variant here makes that exhaustive match fail to compile until someone decides its code.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::BatchError;

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from the storage engine.
///
/// `Clone` (the I/O source is shared) because one failed write or flush is reported to every
/// caller that was waiting on it.
#[derive(Debug, Clone)]
pub enum Error {
    /// An I/O operation failed.
    Io {
        /// What was being done, for example `"fdatasync"` or `"write segment"`.
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        source: Arc<io::Error>,
    },
    /// A record batch sent by a client failed validation.
    InvalidBatch(BatchError),
    /// A read asked for an offset outside `[log_start_offset, high_watermark]`.
    OffsetOutOfRange {
        /// The offset that was asked for.
        requested: u64,
        /// The first offset the log holds.
        log_start: u64,
        /// The high watermark (one past the last readable offset).
        high_watermark: u64,
    },
    /// An earlier write or fdatasync of this log failed, so nothing written since can be
    /// trusted to be durable; the log refuses further appends until it is reopened (and
    /// recovered from what is really on disk).
    LogFailed {
        /// The directory of the failed log.
        dir: PathBuf,
        /// The first failure.
        cause: Arc<Error>,
    },
    /// The log has been closed.
    Closed,
    /// A file on disk is not in a shape the engine can repair (for example a segment name
    /// that is not an offset); the message says which file and why.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A caller passed an argument the engine cannot honour (for example truncating below
    /// the log start offset).
    InvalidArgument(String),
}

impl Error {
    /// Wraps an I/O error with the operation and the path.
    pub fn io(op: &'static str, path: impl AsRef<Path>, source: impl Into<io::Error>) -> Error {
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source: Arc::new(source.into()),
        }
    }

    /// True when the error is the disk running out of space (ENOSPC or EDQUOT).
    pub fn is_no_space(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EDQUOT)
            ),
            Error::LogFailed { cause, .. } => cause.is_no_space(),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => {
                write!(f, "{op} failed on {}: {source}", path.display())
            }
            Error::InvalidBatch(e) => write!(f, "invalid record batch: {e}"),
            Error::OffsetOutOfRange {
                requested,
                log_start,
                high_watermark,
            } => write!(
                f,
                "offset {requested} is outside the log's range [{log_start}, {high_watermark}]"
            ),
            Error::LogFailed { dir, cause } => write!(
                f,
                "log {} refuses writes after an earlier failure: {cause}",
                dir.display()
            ),
            Error::Closed => write!(f, "the log is closed"),
            Error::Corrupt { path, reason } => {
                write!(f, "{} is corrupt: {reason}", path.display())
            }
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source.as_ref()),
            Error::InvalidBatch(e) => Some(e),
            Error::LogFailed { cause, .. } => Some(cause.as_ref()),
            _ => None,
        }
    }
}

impl From<BatchError> for Error {
    fn from(e: BatchError) -> Self {
        Error::InvalidBatch(e)
    }
}

/// Converts a glommio result into an engine result that names the operation and path.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for glommio::Result<T, ()> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(op, path, io::Error::from(e)))
    }
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
