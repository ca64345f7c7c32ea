//! Small filesystem helpers: segment file names and durable writes of small files.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::faults::{self, Fault, Op};

/// Digits in a segment file name: enough for any `u64` offset, zero-padded so that names
/// sort like offsets (as Kafka's do).
pub const NAME_DIGITS: usize = 20;

/// Extension of segment files.
pub const LOG_EXT: &str = "log";
/// Extension of offset index files.
pub const INDEX_EXT: &str = "index";
/// Extension of time index files.
pub const TIME_INDEX_EXT: &str = "timeindex";

/// `<dir>/<base offset, 20 digits>.<ext>`.
pub fn segment_file(dir: &Path, base_offset: u64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:0width$}.{ext}", width = NAME_DIGITS))
}

/// Parses a file name of the form `<20 digits>.<ext>` into the base offset and extension.
pub fn parse_segment_name(name: &str) -> Option<(u64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, ext))
}

/// fsyncs a directory so that entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

/// Writes `bytes` to `path` so that after a crash the file holds either its old contents or
/// all of `bytes`: write a temporary file, fsync it, rename it over `path`, fsync the
/// directory. Blocking: on an executor, only where blocking is acceptable (opening a
/// log); elsewhere [`write_durable_off_executor`].
pub fn write_durable(path: &Path, bytes: &[u8]) -> Result<()> {
    write_durable_unless(
        path,
        bytes,
        faults::check(Op::SmallWrite, path, bytes.len()),
    )
}

/// [`write_durable`] of each file in turn on a blocking thread, stopping at the first
/// error. The executor's fault plan is asked on the executor (its thread), before.
pub async fn write_durable_off_executor(files: Vec<(PathBuf, Vec<u8>)>) -> Result<()> {
    let mut planned = Vec::with_capacity(files.len());
    for (path, bytes) in &files {
        let fault = faults::check(Op::SmallWrite, path, bytes.len());
        planned.push(fault);
        if fault.is_some() {
            break; // the files after it are not written
        }
    }
    glommio::executor()
        .spawn_blocking(move || {
            for ((path, bytes), fault) in files.iter().zip(planned) {
                write_durable_unless(path, bytes, fault)?;
            }
            Ok(())
        })
        .await
}

/// [`write_durable`], or what `fault` makes of it: nothing done, or (`Short`) a prefix
/// of the bytes left in the temporary file, as a crash in the middle leaves it.
fn write_durable_unless(path: &Path, bytes: &[u8], fault: Option<Fault>) -> Result<()> {
    // `<name>.tmp`, not the name with its extension replaced: a segment's two index
    // files (`<base>.index`, `<base>.timeindex`) must not share one.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    if let Some(f @ Fault::Fail(_)) = fault {
        return Err(crate::Error::io("create", &tmp, f.error()));
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .ctx("create", &tmp)?;
    if let Some(Fault::Short(n)) = fault {
        f.write_all(&bytes[..n.min(bytes.len())])
            .ctx("write", &tmp)?;
        return Err(crate::Error::io("write", &tmp, Fault::Short(n).error()));
    }
    f.write_all(bytes).ctx("write", &tmp)?;
    f.sync_all().ctx("fsync", &tmp)?;
    drop(f);
    fs::rename(&tmp, path).ctx("rename", path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Reads a whole small file, `None` if it does not exist. (Blocking: small files are
/// read when a log opens.)
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    let read = match faults::check(Op::SmallRead, path, 0) {
        Some(f) => Err(f.error()),
        None => fs::read(path),
    };
    match read {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::Error::io("read", path, e)),
    }
}

/// Removes a file; a file that is already gone is not an error.
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(crate::Error::io("remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_like_offsets_and_parse_back() {
        let p = segment_file(Path::new("/d"), 42, LOG_EXT);
        assert_eq!(p.to_str().unwrap(), "/d/00000000000000000042.log");
        assert_eq!(
            parse_segment_name("00000000000000000042.log"),
            Some((42, "log"))
        );
        assert_eq!(parse_segment_name("42.log"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.log"), None);
        let big = segment_file(Path::new(""), u64::MAX, INDEX_EXT);
        let name = big.to_str().unwrap();
        assert_eq!(parse_segment_name(name), Some((u64::MAX, "index")));
    }
}
