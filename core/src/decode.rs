//! Body decoding by `Content-Encoding` only (protocol E2): gzip or identity.

#[cfg(feature = "gzip")]
use flate2::write::MultiGzDecoder;
#[cfg(feature = "gzip")]
use std::io::Write;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A `Content-Encoding` the engine does not speak.
    #[error("unsupported Content-Encoding {0:?}")]
    Unsupported(String),
    /// The compressed stream is corrupt or was cut short.
    #[error("corrupt or truncated gzip stream: {0}")]
    Corrupt(String),
}

/// Streams a response body through the decoder its `Content-Encoding` names.
#[derive(Debug)]
pub struct BodyDecoder {
    #[cfg(feature = "gzip")]
    gzip: Option<MultiGzDecoder<Vec<u8>>>,
}

impl BodyDecoder {
    /// A decoder for the given `Content-Encoding` header value (`None`,
    /// `identity`, `gzip`, `x-gzip`; gzip needs the `gzip` feature).
    pub fn new(content_encoding: Option<&str>) -> Result<Self, DecodeError> {
        let enc = content_encoding.map(|s| s.trim().to_ascii_lowercase()).unwrap_or_default();
        match enc.as_str() {
            "" | "identity" => Ok(BodyDecoder {
                #[cfg(feature = "gzip")]
                gzip: None,
            }),
            #[cfg(feature = "gzip")]
            "gzip" | "x-gzip" => Ok(BodyDecoder { gzip: Some(MultiGzDecoder::new(Vec::with_capacity(256 << 10))) }),
            other => Err(DecodeError::Unsupported(other.to_owned())),
        }
    }

    /// Whether bytes are decompressed (false: passed through).
    pub fn is_gzip(&self) -> bool {
        #[cfg(feature = "gzip")]
        return self.gzip.is_some();
        #[cfg(not(feature = "gzip"))]
        false
    }

    /// Decodes a chunk; `out` receives the decoded bytes (possibly none yet).
    pub fn decode<E>(
        &mut self,
        chunk: &[u8],
        mut out: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Result<(), E>, DecodeError> {
        #[cfg(feature = "gzip")]
        if let Some(d) = &mut self.gzip {
            d.write_all(chunk).map_err(|e| DecodeError::Corrupt(e.to_string()))?;
            let buf = d.get_mut();
            let r = if buf.is_empty() { Ok(()) } else { out(buf) };
            buf.clear();
            return Ok(r);
        }
        Ok(out(chunk))
    }

    /// Ends the body: a gzip stream must be complete (trailer and CRC).
    pub fn finish<E>(&mut self, mut out: impl FnMut(&[u8]) -> Result<(), E>) -> Result<Result<(), E>, DecodeError> {
        #[cfg(feature = "gzip")]
        if let Some(mut d) = self.gzip.take() {
            d.try_finish().map_err(|e| DecodeError::Corrupt(e.to_string()))?;
            let buf = d.finish().map_err(|e| DecodeError::Corrupt(e.to_string()))?;
            return Ok(if buf.is_empty() { Ok(()) } else { out(&buf) });
        }
        let _ = &mut out;
        Ok(Ok(()))
    }
}

#[cfg(all(test, feature = "gzip"))]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn run(enc: Option<&str>, body: &[u8], chunk: usize) -> Result<Vec<u8>, DecodeError> {
        let mut d = BodyDecoder::new(enc)?;
        let mut out = Vec::new();
        for c in body.chunks(chunk.max(1)) {
            d.decode(c, |b| -> Result<(), ()> {
                out.extend_from_slice(b);
                Ok(())
            })?
            .unwrap();
        }
        d.finish(|b| -> Result<(), ()> {
            out.extend_from_slice(b);
            Ok(())
        })?
        .unwrap();
        Ok(out)
    }

    // protocol E2: gzip and identity, decided by Content-Encoding only
    #[test]
    fn gzip_and_identity() {
        let data = b"{\"a\":1}\n".repeat(1000);
        assert_eq!(run(None, &data, 100).unwrap(), data);
        assert_eq!(run(Some("identity"), &data, 100).unwrap(), data);
        for chunk in [1, 7, 4096] {
            assert_eq!(run(Some("gzip"), &gz(&data), chunk).unwrap(), data);
        }
        assert!(matches!(BodyDecoder::new(Some("br")), Err(DecodeError::Unsupported(_))));
    }

    // a truncated gzip stream is a clear error, not silent data loss
    #[test]
    fn truncated_gzip_is_an_error() {
        let data = b"{\"a\":1}\n".repeat(1000);
        let z = gz(&data);
        for cut in [5, z.len() / 2, z.len() - 4] {
            assert!(matches!(run(Some("gzip"), &z[..cut], 64), Err(DecodeError::Corrupt(_))), "cut at {cut}");
        }
        assert!(matches!(run(Some("gzip"), b"not gzip at all", 4), Err(DecodeError::Corrupt(_))));
    }
}
