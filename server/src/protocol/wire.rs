//! Bounded readers and writers for Kafka's primitive wire types.
//!
//! Every Kafka message is a sequence of big-endian primitives. Two encodings exist:
//! classic (`STRING` = i16 length + bytes, `ARRAY` = i32 count + items, null = -1) and
//! flexible, KIP-482 (`COMPACT_STRING` = unsigned varint length+1, `COMPACT_ARRAY` =
//! unsigned varint count+1, null = 0, plus a tagged-field section after every struct).
//! Each API switches to the flexible encoding from one version on; the handlers pass
//! `flexible` down and these helpers pick the encoding.
//!
//! **Nothing read from the wire is trusted.** A length is checked against the bytes
//! actually left before anything is sliced, and an array count against the bytes left
//! divided by the smallest encoding of one element before a single element is decoded,
//! so a 5-byte frame claiming 2^31 elements is refused instead of allocating. Decoders
//! never preallocate from a count (see `kafka-protocol-notes.md` for the crate that did).

use std::ops::Range;

use bytes::{BufMut, BytesMut};

/// A request that does not decode: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte position in the request body.
    pub at: usize,
    /// What was being read.
    pub what: &'static str,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed request: {} at byte {}", self.what, self.at)
    }
}

impl std::error::Error for DecodeError {}

/// Result of decoding.
pub type DecodeResult<T> = Result<T, DecodeError>;

/// A cursor over a request body that never reads past its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Position of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn fail<T>(&self, what: &'static str) -> DecodeResult<T> {
        Err(DecodeError { at: self.pos, what })
    }

    fn take(&mut self, n: usize, what: &'static str) -> DecodeResult<&'a [u8]> {
        if n > self.remaining() {
            return self.fail(what);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> DecodeResult<[u8; N]> {
        let s = self.take(N, what)?;
        Ok(s.try_into().expect("take returned N bytes"))
    }

    /// INT8.
    pub fn i8(&mut self) -> DecodeResult<i8> {
        Ok(i8::from_be_bytes(self.array("int8")?))
    }
    /// BOOLEAN.
    pub fn bool(&mut self) -> DecodeResult<bool> {
        Ok(self.i8()? != 0)
    }
    /// INT16.
    pub fn i16(&mut self) -> DecodeResult<i16> {
        Ok(i16::from_be_bytes(self.array("int16")?))
    }
    /// INT32.
    pub fn i32(&mut self) -> DecodeResult<i32> {
        Ok(i32::from_be_bytes(self.array("int32")?))
    }
    /// INT64.
    pub fn i64(&mut self) -> DecodeResult<i64> {
        Ok(i64::from_be_bytes(self.array("int64")?))
    }
    /// UUID (16 bytes).
    pub fn uuid(&mut self) -> DecodeResult<[u8; 16]> {
        self.array("uuid")
    }

    /// UNSIGNED_VARINT (at most 5 bytes).
    pub fn uvarint(&mut self) -> DecodeResult<u32> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.array::<1>("varint")?[0];
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.fail("varint longer than 5 bytes")
    }

    /// A length: classic i16 (strings) or compact unsigned varint minus one. `None` is
    /// null. Checked against the remaining bytes.
    fn length(
        &mut self,
        flexible: bool,
        wide: bool,
        what: &'static str,
    ) -> DecodeResult<Option<usize>> {
        let n: i64 = if flexible {
            i64::from(self.uvarint()?) - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        if n < -1 {
            return self.fail(what);
        }
        if n == -1 {
            return Ok(None);
        }
        let n = n as usize;
        if n > self.remaining() {
            return self.fail(what);
        }
        Ok(Some(n))
    }

    /// NULLABLE_STRING / COMPACT_NULLABLE_STRING.
    pub fn nullable_string(&mut self, flexible: bool) -> DecodeResult<Option<&'a str>> {
        match self.length(flexible, false, "string length")? {
            None => Ok(None),
            Some(n) => {
                let at = self.pos;
                let s = self.take(n, "string")?;
                std::str::from_utf8(s).map(Some).map_err(|_| DecodeError {
                    at,
                    what: "string is not UTF-8",
                })
            }
        }
    }

    /// STRING / COMPACT_STRING (null refused).
    pub fn string(&mut self, flexible: bool) -> DecodeResult<&'a str> {
        match self.nullable_string(flexible)? {
            Some(s) => Ok(s),
            None => self.fail("null string"),
        }
    }

    /// NULLABLE_BYTES / COMPACT_NULLABLE_BYTES as a range of the buffer, so that the
    /// caller can take ownership of record bytes without copying them.
    pub fn nullable_bytes_range(&mut self, flexible: bool) -> DecodeResult<Option<Range<usize>>> {
        match self.length(flexible, true, "bytes length")? {
            None => Ok(None),
            Some(n) => {
                let start = self.pos;
                self.take(n, "bytes")?;
                Ok(Some(start..start + n))
            }
        }
    }

    /// NULLABLE_BYTES as a slice.
    pub fn nullable_bytes(&mut self, flexible: bool) -> DecodeResult<Option<&'a [u8]>> {
        Ok(self.nullable_bytes_range(flexible)?.map(|r| &self.buf[r]))
    }

    /// The element count of an ARRAY / COMPACT_ARRAY, or `None` for null. Refused when
    /// `count * min_element_bytes` exceeds the bytes left: the count cannot be honest.
    pub fn array_len(
        &mut self,
        flexible: bool,
        min_element_bytes: usize,
    ) -> DecodeResult<Option<usize>> {
        let n: i64 = if flexible {
            i64::from(self.uvarint()?) - 1
        } else {
            i64::from(self.i32()?)
        };
        if n < -1 {
            return self.fail("negative array count");
        }
        if n == -1 {
            return Ok(None);
        }
        let n = n as usize;
        if n.saturating_mul(min_element_bytes.max(1)) > self.remaining() {
            return self.fail("array count larger than the request");
        }
        Ok(Some(n))
    }

    /// A non-null array count (null is read as empty, as Kafka does for most arrays).
    pub fn count(&mut self, flexible: bool, min_element_bytes: usize) -> DecodeResult<usize> {
        Ok(self.array_len(flexible, min_element_bytes)?.unwrap_or(0))
    }

    /// Skips the tagged-field section of a flexible struct (none is understood here).
    pub fn tagged_fields(&mut self, flexible: bool) -> DecodeResult<()> {
        if !flexible {
            return Ok(());
        }
        let n = self.uvarint()? as usize;
        if n > self.remaining() {
            return self.fail("tagged field count larger than the request");
        }
        for _ in 0..n {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size, "tagged field")?;
        }
        Ok(())
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Appends Kafka primitives to a response buffer.
#[derive(Debug, Default)]
pub struct Writer {
    /// The encoded bytes.
    pub buf: BytesMut,
}

impl Writer {
    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Writer {
            buf: BytesMut::with_capacity(capacity),
        }
    }
    /// INT8.
    pub fn i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }
    /// BOOLEAN.
    pub fn bool(&mut self, v: bool) {
        self.buf.put_i8(v as i8);
    }
    /// INT16.
    pub fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }
    /// INT32.
    pub fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }
    /// INT64.
    pub fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }
    /// UUID.
    pub fn uuid(&mut self, v: &[u8; 16]) {
        self.buf.put_slice(v);
    }
    /// UNSIGNED_VARINT.
    pub fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }
    fn length(&mut self, flexible: bool, wide: bool, n: Option<usize>) {
        match (flexible, n) {
            (true, None) => self.uvarint(0),
            (true, Some(n)) => self.uvarint(n as u32 + 1),
            (false, None) if wide => self.i32(-1),
            (false, None) => self.i16(-1),
            (false, Some(n)) if wide => self.i32(n as i32),
            (false, Some(n)) => self.i16(n as i16),
        }
    }
    /// STRING / COMPACT_STRING.
    pub fn string(&mut self, flexible: bool, s: &str) {
        self.nullable_string(flexible, Some(s));
    }
    /// NULLABLE_STRING / COMPACT_NULLABLE_STRING.
    pub fn nullable_string(&mut self, flexible: bool, s: Option<&str>) {
        // A classic string holds at most i16::MAX bytes; a longer one (an echoed name
        // from a flexible request, say) is cut at a character boundary.
        let s = s.map(|s| {
            if flexible {
                s
            } else {
                truncate_utf8(s, i16::MAX as usize)
            }
        });
        self.length(flexible, false, s.map(str::len));
        if let Some(s) = s {
            self.buf.put_slice(s.as_bytes());
        }
    }
    /// NULLABLE_BYTES / COMPACT_NULLABLE_BYTES.
    pub fn nullable_bytes(&mut self, flexible: bool, b: Option<&[u8]>) {
        self.length(flexible, true, b.map(<[u8]>::len));
        if let Some(b) = b {
            self.buf.put_slice(b);
        }
    }
    /// BYTES / COMPACT_BYTES.
    pub fn bytes(&mut self, flexible: bool, b: &[u8]) {
        self.nullable_bytes(flexible, Some(b));
    }
    /// Only the length prefix of a bytes field whose content is written separately.
    pub fn bytes_len(&mut self, flexible: bool, n: usize) {
        self.length(flexible, true, Some(n));
    }
    /// ARRAY / COMPACT_ARRAY count.
    pub fn array_len(&mut self, flexible: bool, n: usize) {
        self.length(flexible, true, Some(n));
    }
    /// A null array.
    pub fn null_array(&mut self, flexible: bool) {
        self.length(flexible, true, None);
    }
    /// An empty tagged-field section (flexible versions only).
    pub fn tagged_fields(&mut self, flexible: bool) {
        if flexible {
            self.uvarint(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_counts_are_refused_before_allocation() {
        let mut r = Reader::new(&[0x7f, 0xff, 0xff, 0xff, 0]);
        assert!(r.array_len(false, 1).is_err());
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(r.array_len(true, 1).is_err());
        let mut r = Reader::new(&[0, 0, 0, 2, 1, 2, 3, 4]);
        assert_eq!(r.array_len(false, 2).unwrap(), Some(2));
        let mut r = Reader::new(&[0, 0, 0, 2, 1, 2, 3]);
        assert!(r.array_len(false, 4).is_err());
    }

    #[test]
    fn lengths_past_the_end_and_negative_are_refused() {
        assert!(Reader::new(&[0, 5, b'a']).string(false).is_err());
        assert!(Reader::new(&[0xff, 0xfe]).nullable_string(false).is_err());
        assert_eq!(
            Reader::new(&[0xff, 0xff]).nullable_string(false).unwrap(),
            None
        );
        assert!(Reader::new(&[0x7f, 0xff, 0xff, 0xff])
            .nullable_bytes(false)
            .is_err());
        assert!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01])
            .uvarint()
            .is_err());
    }

    #[test]
    fn long_strings_are_cut_on_a_character_boundary() {
        let long = "é".repeat(20_000); // 40000 bytes
        let mut w = Writer::default();
        w.string(false, &long);
        let mut r = Reader::new(&w.buf);
        let back = r.string(false).unwrap();
        assert!(back.len() <= i16::MAX as usize && back.chars().all(|c| c == 'é'));
        let mut w = Writer::default();
        w.string(true, &long);
        assert_eq!(Reader::new(&w.buf).string(true).unwrap(), long);
    }

    #[test]
    fn round_trips_both_encodings() {
        for flexible in [false, true] {
            let mut w = Writer::default();
            w.string(flexible, "topic");
            w.nullable_string(flexible, None);
            w.array_len(flexible, 3);
            w.nullable_bytes(flexible, Some(b"xyz"));
            w.uvarint(300);
            w.tagged_fields(flexible);
            let mut r = Reader::new(&w.buf);
            assert_eq!(r.string(flexible).unwrap(), "topic");
            assert_eq!(r.nullable_string(flexible).unwrap(), None);
            assert_eq!(r.array_len(flexible, 1).unwrap(), Some(3));
            assert_eq!(r.nullable_bytes(flexible).unwrap(), Some(&b"xyz"[..]));
            assert_eq!(r.uvarint().unwrap(), 300);
            r.tagged_fields(flexible).unwrap();
            assert_eq!(r.remaining(), 0);
        }
    }
}
