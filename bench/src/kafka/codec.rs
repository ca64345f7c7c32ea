//! The classic (non-flexible) Kafka encodings the bench client speaks, and nothing more.
//!
//! Every request the client sends uses a version with classic encodings, so that one small
//! codec serves them all:
//! - `int8/16/32/64`: big-endian two's complement;
//! - `string`: `int16` length then UTF-8 bytes; `nullable string`: length -1 is null;
//! - `bytes`: `int32` length then bytes; `nullable bytes`: length -1 is null;
//! - `array`: `int32` count (-1 is a null array) then the elements.
//!
//! A request frame is `int32 size | int16 api_key | int16 api_version |
//! int32 correlation_id | string client_id | body` (request header v1), and a response
//! frame is `int32 size | int32 correlation_id | body` (response header v0).
//!
//! [`Dec`] never trusts a length from the wire: every length and count is checked against
//! the bytes that are left before anything is read or allocated.

use bytes::{BufMut, Bytes, BytesMut};

/// The client id sent in every request header.
pub const CLIENT_ID: &str = "corelog-bench";

/// Builds one request frame.
#[derive(Debug)]
pub struct Enc {
    buf: BytesMut,
}

impl Enc {
    /// Starts a request: room for the size, then the v1 request header.
    pub fn request(api_key: i16, version: i16, correlation_id: i32, capacity: usize) -> Enc {
        let mut buf = BytesMut::with_capacity(capacity + 32);
        buf.put_i32(0);
        buf.put_i16(api_key);
        buf.put_i16(version);
        buf.put_i32(correlation_id);
        let mut e = Enc { buf };
        e.string(CLIENT_ID);
        e
    }

    /// Fills in the size and returns the whole frame.
    pub fn finish(mut self) -> BytesMut {
        let size = (self.buf.len() - 4) as i32;
        self.buf[..4].copy_from_slice(&size.to_be_bytes());
        self.buf
    }

    /// Takes the bytes written so far (the frame continues in a new buffer).
    pub fn split(&mut self) -> BytesMut {
        self.buf.split()
    }

    /// Fills in the size of a frame made of pieces: each `(prefix, data)` pair of `parts`
    /// in order (prefixes from [`split`](Self::split), data sent as it is), then what was
    /// written after the last split.
    pub fn finish_parts(self, parts: Vec<(BytesMut, Bytes)>) -> Vec<Bytes> {
        if parts.is_empty() {
            return vec![self.finish().freeze()];
        }
        let total: usize =
            parts.iter().map(|(a, b)| a.len() + b.len()).sum::<usize>() + self.buf.len();
        let mut out = Vec::with_capacity(parts.len() * 2 + 1);
        for (i, (mut prefix, data)) in parts.into_iter().enumerate() {
            if i == 0 {
                prefix[..4].copy_from_slice(&((total - 4) as i32).to_be_bytes());
            }
            out.push(prefix.freeze());
            out.push(data);
        }
        if !self.buf.is_empty() {
            out.push(self.buf.freeze());
        }
        out
    }

    /// `int8`.
    pub fn i8(&mut self, v: i8) -> &mut Enc {
        self.buf.put_i8(v);
        self
    }

    /// `int16`.
    pub fn i16(&mut self, v: i16) -> &mut Enc {
        self.buf.put_i16(v);
        self
    }

    /// `int32`.
    pub fn i32(&mut self, v: i32) -> &mut Enc {
        self.buf.put_i32(v);
        self
    }

    /// `int64`.
    pub fn i64(&mut self, v: i64) -> &mut Enc {
        self.buf.put_i64(v);
        self
    }

    /// `boolean`.
    pub fn bool(&mut self, v: bool) -> &mut Enc {
        self.buf.put_u8(v as u8);
        self
    }

    /// `string`.
    pub fn string(&mut self, s: &str) -> &mut Enc {
        self.buf.put_i16(s.len() as i16);
        self.buf.put_slice(s.as_bytes());
        self
    }

    /// `nullable string`.
    pub fn nullable_string(&mut self, s: Option<&str>) -> &mut Enc {
        match s {
            None => self.buf.put_i16(-1),
            Some(s) => {
                self.string(s);
            }
        }
        self
    }

    /// `bytes` (`None` writes a null).
    pub fn bytes(&mut self, b: Option<&[u8]>) -> &mut Enc {
        match b {
            None => self.buf.put_i32(-1),
            Some(b) => {
                self.buf.put_i32(b.len() as i32);
                self.buf.put_slice(b);
            }
        }
        self
    }

    /// An array count.
    pub fn count(&mut self, n: usize) -> &mut Enc {
        self.buf.put_i32(n as i32);
        self
    }
}

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed response: {}", self.0)
    }
}

/// Reads a response body; bounded by the bytes it holds.
#[derive(Debug)]
pub struct Dec {
    buf: Bytes,
}

impl Dec {
    /// Reads `buf`.
    pub fn new(buf: Bytes) -> Dec {
        Dec { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self, n: usize, what: &str) -> Result<Bytes, DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError(format!(
                "{what}: {n} bytes wanted, {} left",
                self.buf.len()
            )));
        }
        Ok(self.buf.split_to(n))
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let b = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&b);
        Ok(a)
    }

    /// `int8`.
    pub fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(self.array::<1>("int8")?[0] as i8)
    }

    /// `boolean`.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.i8()? != 0)
    }

    /// `int16`.
    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array("int16")?))
    }

    /// `int32`.
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array("int32")?))
    }

    /// `int64`.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array("int64")?))
    }

    /// `nullable string`.
    pub fn nullable_string(&mut self) -> Result<Option<String>, DecodeError> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let b = self.take(n as usize, "string")?;
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| DecodeError("a string is not UTF-8".into()))
    }

    /// `string` (a null reads as empty).
    pub fn string(&mut self) -> Result<String, DecodeError> {
        Ok(self.nullable_string()?.unwrap_or_default())
    }

    /// `nullable bytes`, sharing the response buffer.
    pub fn nullable_bytes(&mut self) -> Result<Option<Bytes>, DecodeError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        self.take(n as usize, "bytes").map(Some)
    }

    /// An array count; a null array reads as empty. Each element takes at least
    /// `min_element_bytes`, so a count larger than the bytes left is refused here.
    pub fn count(&mut self, min_element_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(0);
        }
        let n = n as usize;
        if n.saturating_mul(min_element_bytes.max(1)) > self.buf.len() {
            return Err(DecodeError(format!(
                "an array of {n} elements in {} bytes",
                self.buf.len()
            )));
        }
        Ok(n)
    }

    /// The `topics [name string | partitions [...]]` array every per-partition response
    /// has: `row` reads one partition entry (of at least `min_partition_bytes`); topic
    /// names are skipped (the client asks about one topic per request).
    pub fn per_partition<T>(
        &mut self,
        min_partition_bytes: usize,
        mut row: impl FnMut(&mut Dec) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let mut out = Vec::new();
        for _ in 0..self.count(6)? {
            self.string()?;
            for _ in 0..self.count(min_partition_bytes)? {
                out.push(row(self)?);
            }
        }
        Ok(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n, "skip").map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_frame_has_size_and_v1_header() {
        let mut e = Enc::request(3, 8, 42, 0);
        e.i32(7);
        let f = e.finish();
        assert_eq!(
            i32::from_be_bytes(f[..4].try_into().unwrap()) as usize,
            f.len() - 4
        );
        assert_eq!(&f[4..8], &[0, 3, 0, 8]);
        assert_eq!(&f[8..12], &42i32.to_be_bytes());
        assert_eq!(&f[12..14], &(CLIENT_ID.len() as i16).to_be_bytes());
        assert_eq!(&f[f.len() - 4..], &7i32.to_be_bytes());
    }

    #[test]
    fn a_frame_in_parts_is_the_frame_in_one() {
        let data = Bytes::from_static(b"0123456789");
        let mut one = Enc::request(0, 7, 5, 0);
        one.i32(1).bytes(Some(&data)).i32(2);
        let one = one.finish();
        let mut e = Enc::request(0, 7, 5, 0);
        e.i32(1).i32(data.len() as i32);
        let prefix = e.split();
        e.i32(2);
        let parts = e.finish_parts(vec![(prefix, data)]);
        assert_eq!(parts.concat(), one.to_vec());
    }

    #[test]
    fn lengths_from_the_wire_are_bounded() {
        let mut d = Dec::new(Bytes::from_static(&[0, 0, 0, 9, 1, 2]));
        assert!(d.nullable_bytes().is_err());
        let mut d = Dec::new(Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0]));
        assert!(d.count(1).is_err());
        let mut d = Dec::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]));
        assert_eq!(d.count(4), Ok(0));
        let mut d = Dec::new(Bytes::from_static(&[0, 2, b'h', b'i', 0xff, 0xff]));
        assert_eq!(d.string().unwrap(), "hi");
        assert_eq!(d.nullable_string().unwrap(), None);
        assert!(d.i8().is_err());
    }
}
