//! Fault injection for tests: a per-executor plan the storage layer consults before each
//! segment write, segment fdatasync, segment truncation, segment preallocation and
//! segment read, and before each durable write or read of a small file (offset and time indexes, the log
//! start checkpoint, the leader epoch checkpoint, the clean shutdown marker).
//!
//! The broker never installs a plan; a check without one is a thread-local read. A plan
//! is a closure that sees each operation (kind, file, length) and answers with nothing
//! (the operation runs) or a [`Fault`]:
//! - [`Fault::Fail`]: the call fails with that errno (EIO, ENOSPC, ...) and does nothing,
//!   as a write or fdatasync the device refused;
//! - [`Fault::Short`]: a write puts only a block-aligned prefix of its bytes in the file
//!   and reports the shorter length, as a write cut short by a full disk; followed by a
//!   crash (the log dropped without closing) it leaves a torn write for recovery. A small
//!   file's write leaves that prefix in its temporary file and fails, as a crash in the
//!   middle of it would.
//!
//! The plan lives in a thread local because a log belongs to one executor thread; install
//! it on the executor that runs the log ([`install`] returns a guard that removes it).

use std::cell::RefCell;
use std::io;
use std::path::Path;

/// An operation the storage layer asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A direct-I/O write into a segment file.
    Write,
    /// An fdatasync of a segment file.
    Sync,
    /// Cutting a segment file to its data (sealing it at a roll).
    Truncate,
    /// Preallocating a new segment file.
    Allocate,
    /// Writing a small file durably (temporary file, fsync, rename, fsync the directory):
    /// an index, a checkpoint, the clean shutdown marker. The length is the file's.
    SmallWrite,
    /// Reading a small file when a log opens.
    SmallRead,
    /// A direct-I/O read of a segment file (recovery's scans and checks, fetches).
    Read,
}

/// What the operation does instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fails with this errno, having done nothing.
    Fail(i32),
    /// For [`Op::Write`]: only the first `n` bytes, rounded down to a 4 KiB block, are
    /// written; the write reports that many. For [`Op::SmallWrite`]: the first `n` bytes
    /// go into the temporary file and the write fails with EIO. Other operations treat
    /// it as `Fail(EIO)`.
    Short(usize),
}

impl Fault {
    /// The error a failing call returns.
    pub fn error(self) -> io::Error {
        match self {
            Fault::Fail(errno) => io::Error::from_raw_os_error(errno),
            Fault::Short(_) => io::Error::from_raw_os_error(libc::EIO),
        }
    }
}

/// A fault plan: `(operation, file, bytes)` to the fault to inject, if any.
pub type Plan = Box<dyn FnMut(Op, &Path, usize) -> Option<Fault>>;

thread_local! {
    static PLAN: RefCell<Option<Plan>> = const { RefCell::new(None) };
}

/// Removes the plan when dropped.
#[derive(Debug)]
#[must_use = "the plan is removed when the guard is dropped"]
pub struct Installed(());

impl Drop for Installed {
    fn drop(&mut self) {
        PLAN.with(|p| p.borrow_mut().take());
    }
}

/// Installs `plan` on this thread (the executor that runs the logs under test).
pub fn install(plan: Plan) -> Installed {
    PLAN.with(|p| *p.borrow_mut() = Some(plan));
    Installed(())
}

/// The fault to inject into `op` on `path` of `len` bytes, if a plan says so.
pub(crate) fn check(op: Op, path: &Path, len: usize) -> Option<Fault> {
    PLAN.with(|p| p.borrow_mut().as_mut().and_then(|plan| plan(op, path, len)))
}

/// `Err` when a plan fails `op` on `path`; for the operations that have no partial form.
pub(crate) fn fail(op: Op, path: &Path) -> io::Result<()> {
    check(op, path, 0).map_or(Ok(()), |f| Err(f.error()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_applies_until_its_guard_is_dropped() {
        let p = Path::new("/x/00000000000000000000.log");
        assert_eq!(check(Op::Write, p, 10), None);
        {
            let _g = install(Box::new(|op, _, len| {
                (op == Op::Write && len > 5).then_some(Fault::Short(4096))
            }));
            assert_eq!(check(Op::Write, p, 10), Some(Fault::Short(4096)));
            assert_eq!(check(Op::Write, p, 3), None);
            assert!(fail(Op::Sync, p).is_ok());
        }
        assert_eq!(check(Op::Write, p, 10), None);
        let _g = install(Box::new(|op, _, _| {
            (op == Op::Sync).then_some(Fault::Fail(28))
        }));
        assert_eq!(
            fail(Op::Sync, p).unwrap_err().raw_os_error(),
            Some(libc::ENOSPC)
        );
    }
}
