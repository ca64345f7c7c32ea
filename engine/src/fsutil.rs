//! Small filesystem helpers: segment file names and durable writes of small files.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

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
/// directory. Blocking; callers on an executor run it through `spawn_blocking`.
pub fn write_durable(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .ctx("create", &tmp)?;
    f.write_all(bytes).ctx("write", &tmp)?;
    f.sync_all().ctx("fsync", &tmp)?;
    drop(f);
    fs::rename(&tmp, path).ctx("rename", path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Reads a whole small file, `None` if it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
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
