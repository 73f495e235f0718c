//! The request body before it is read as Segment messages, without IO: decompression bounded
//! by the batch limit, and the reason a body is not JSON (the nesting and key-count limits of
//! each message are `crate::raw::scan`'s).
//!
//! Contract: every function returns a [`RequestError`] with its own reason code instead of
//! failing in any other way; hostile input (compression bombs, deep nesting, huge maps) costs
//! at most the configured limits.

use crate::segment::RequestError;

/// The body as sent, decompressed per `Content-Encoding` (`gzip`, `deflate` or none), at most
/// `limit` bytes once decompressed (a small compressed body may not expand past the batch
/// limit: no decompression bomb).
pub fn decode_body<'a>(
    body: &'a [u8],
    content_encoding: Option<&str>,
    limit: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, RequestError> {
    use std::io::Read;
    let encoding = content_encoding.map(|e| e.trim().to_ascii_lowercase());
    let mut out = Vec::new();
    let (name, read) = match encoding.as_deref() {
        None | Some("") | Some("identity") => return Ok(std::borrow::Cow::Borrowed(body)),
        Some("gzip") | Some("x-gzip") => (
            "gzip",
            flate2::read::MultiGzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut out),
        ),
        Some("deflate") => (
            "deflate",
            flate2::read::ZlibDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut out),
        ),
        Some(other) => return Err(RequestError::UnsupportedEncoding(other.to_string())),
    };
    read.map_err(|e| RequestError::BadCompression {
        encoding: name,
        detail: e.to_string(),
    })?;
    if out.len() > limit {
        return Err(RequestError::BatchTooLarge {
            size: out.len(),
            limit,
        });
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// The rejection for a body serde_json cannot parse: truncated, bad Unicode, too deep (its
/// recursion limit), or otherwise invalid.
pub(crate) fn json_error(
    e: &serde_json::Error,
    shape: impl FnOnce() -> RequestError,
) -> RequestError {
    let text = e.to_string();
    if e.is_eof() {
        RequestError::TruncatedJson(text)
    } else if ["surrogate", "hex escape", "unicode", "UTF-8"]
        .iter()
        .any(|m| text.contains(m))
    {
        RequestError::InvalidUnicode(text)
    } else if text.contains("recursion limit") {
        RequestError::TooDeep {
            index: 0,
            limit: 127,
        }
    } else if e.is_data() {
        shape()
    } else {
        RequestError::InvalidJson(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_bodies_are_bounded() {
        use std::io::Write;
        let gz = |data: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).expect("write");
            e.finish().expect("finish")
        };
        let body = br#"{"batch":[]}"#;
        assert_eq!(
            &*decode_body(&gz(body), Some("gzip"), 100).expect("gzip"),
            body
        );
        assert_eq!(&*decode_body(body, None, 100).expect("plain"), body);
        assert_eq!(
            &*decode_body(body, Some("identity"), 100).expect("identity"),
            body
        );
        // 1 MB of zeros compresses to about 1 KB: refused once it expands past the limit.
        let bomb = gz(&vec![0u8; 1_000_000]);
        assert!(bomb.len() < 5_000);
        assert!(matches!(
            decode_body(&bomb, Some("gzip"), 500_000),
            Err(RequestError::BatchTooLarge { .. })
        ));
        assert_eq!(
            decode_body(b"not gzip", Some("gzip"), 100)
                .unwrap_err()
                .reason(),
            "bad_compression"
        );
        assert_eq!(
            decode_body(body, Some("br"), 100).unwrap_err().reason(),
            "unsupported_encoding"
        );
    }
}
