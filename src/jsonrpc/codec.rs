//! The newline framer: splits a byte stream into lines with a bounded length.
//!
//! A line longer than the limit is not buffered: its bytes are skipped up to the next
//! newline and reported once as [`Line::Overlong`], so memory stays bounded whatever
//! the peer sends and the stream resynchronises on the next line. CRLF endings, a UTF-8
//! byte order mark and blank lines are tolerated.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// The largest line accepted by default: 8 MiB, the SPEC's default
/// `max_message_bytes`. Tool results of that size are rare but real (images, files).
pub const DEFAULT_MAX_LINE: usize = 8 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One framed unit of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its `\n`/`\r\n` and without a leading BOM; never empty.
    Frame(Bytes),
    /// A line over the limit was skipped; `skipped` counts its bytes (newline
    /// excluded), `head` keeps its first [`HEAD_LEN`] bytes so the id of an oversized
    /// message can still be found and answered.
    Overlong { skipped: usize, head: Bytes },
}

/// How much of an overlong line is kept to recover its id.
pub const HEAD_LEN: usize = 256;

/// A [`Decoder`] for newline-delimited frames with a maximum length.
#[derive(Debug)]
pub struct LineCodec {
    max_len: usize,
    /// Bytes of the current overlong line skipped so far, and its head; `Some` while
    /// discarding.
    discarding: Option<(usize, Bytes)>,
    /// How far into the buffer the newline search has already looked.
    scanned: usize,
}

impl LineCodec {
    /// A codec that accepts lines of at most `max_len` bytes.
    #[must_use]
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len,
            discarding: None,
            scanned: 0,
        }
    }

    /// The limit this codec enforces.
    #[must_use]
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

impl Default for LineCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE)
    }
}

/// Strips `\r` at the end and a BOM at the start; `None` for a blank line.
fn clean(mut line: BytesMut) -> Option<Bytes> {
    if line.last() == Some(&b'\r') {
        line.truncate(line.len() - 1);
    }
    if line.starts_with(BOM) {
        line.advance(BOM.len());
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(line.freeze())
}

impl Decoder for LineCodec {
    type Item = Line;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, Self::Error> {
        loop {
            if let Some((skipped, head)) = self.discarding.take() {
                if let Some(pos) = memchr(b'\n', buf) {
                    buf.advance(pos + 1);
                    self.scanned = 0;
                    return Ok(Some(Line::Overlong {
                        skipped: skipped + pos,
                        head,
                    }));
                }
                self.discarding = Some((skipped + buf.len(), head));
                buf.clear();
                return Ok(None);
            }
            let Some(offset) = memchr(b'\n', &buf[self.scanned..]) else {
                // The `\r` of a CRLF and a BOM are not part of the limit's meaning,
                // but counting them keeps the rule simple and the bound strict.
                if buf.len() > self.max_len {
                    let head = Bytes::copy_from_slice(&buf[..HEAD_LEN.min(buf.len())]);
                    self.discarding = Some((buf.len(), head));
                    buf.clear();
                    self.scanned = 0;
                    continue;
                }
                self.scanned = buf.len();
                return Ok(None);
            };
            let pos = self.scanned + offset;
            self.scanned = 0;
            let mut line = buf.split_to(pos + 1);
            line.truncate(pos);
            if line.len() > self.max_len {
                let skipped = line.len();
                line.truncate(HEAD_LEN);
                return Ok(Some(Line::Overlong {
                    skipped,
                    head: line.freeze(),
                }));
            }
            if let Some(frame) = clean(line) {
                return Ok(Some(Line::Frame(frame)));
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, Self::Error> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        if let Some((skipped, head)) = self.discarding.take() {
            return Ok(Some(Line::Overlong { skipped, head }));
        }
        // A last line without a newline still counts: some peers end that way.
        if buf.is_empty() {
            return Ok(None);
        }
        self.scanned = 0;
        let line = buf.split();
        Ok(clean(line).map(Line::Frame))
    }
}

/// The first `needle` in `haystack`, searched a vector at a time: every byte of every
/// line passes here (a byte-by-byte loop was ~1.7k instructions a `tools/call`).
fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    memchr::memchr(needle, haystack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(codec: &mut LineCodec, chunks: &[&[u8]]) -> Vec<Line> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(line) = codec.decode(&mut buf).expect("decode never fails") {
                out.push(line);
            }
        }
        while let Some(line) = codec.decode_eof(&mut buf).expect("decode never fails") {
            out.push(line);
        }
        out
    }

    /// Overlong lines with their heads blanked, for comparing line structure.
    fn no_heads(lines: Vec<Line>) -> Vec<Line> {
        lines
            .into_iter()
            .map(|l| match l {
                Line::Overlong { skipped, .. } => overlong(skipped),
                other @ Line::Frame(_) => other,
            })
            .collect()
    }

    fn overlong(skipped: usize) -> Line {
        Line::Overlong {
            skipped,
            head: Bytes::new(),
        }
    }

    fn frame(s: &str) -> Line {
        Line::Frame(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn splits_lines_and_tolerates_crlf_bom_and_blank_lines() {
        let mut codec = LineCodec::new(64);
        let out = decode_all(
            &mut codec,
            &[b"\xEF\xBB\xBF{\"a\":1}\r\n\n  \r\n{\"b\":2}\n"],
        );
        assert_eq!(out, vec![frame("{\"a\":1}"), frame("{\"b\":2}")]);
    }

    #[test]
    fn overlong_line_is_skipped_and_the_next_line_works() {
        let mut codec = LineCodec::new(8);
        let long = [b'x'; 100];
        let out = decode_all(&mut codec, &[&long[..50], &long[50..], b"\n{}\n"]);
        assert_eq!(no_heads(out), vec![overlong(100), frame("{}")]);
    }

    #[test]
    fn overlong_line_in_one_chunk_is_reported_with_its_length() {
        let mut codec = LineCodec::new(4);
        let out = decode_all(&mut codec, &[b"123456789\nabc\n"]);
        assert_eq!(
            out,
            vec![
                Line::Overlong {
                    skipped: 9,
                    head: Bytes::from_static(b"123456789")
                },
                frame("abc")
            ]
        );
    }

    #[test]
    fn an_overlong_line_keeps_its_head_to_recover_the_id() {
        let mut codec = LineCodec::new(8);
        let line = format!("{{\"id\":7,\"x\":\"{}\"}}\n", "y".repeat(1000));
        let out = decode_all(
            &mut codec,
            &[&line.as_bytes()[..20], &line.as_bytes()[20..]],
        );
        let [Line::Overlong { head, .. }] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert!(
            head.starts_with(b"{\"id\":7,") && head.len() <= HEAD_LEN,
            "{head:?}"
        );
    }

    #[test]
    fn memory_stays_bounded_while_discarding() {
        let mut codec = LineCodec::new(16);
        let mut buf = BytesMut::new();
        for _ in 0..1000 {
            buf.extend_from_slice(&[b'y'; 1024]);
            assert_eq!(codec.decode(&mut buf).expect("decode"), None);
            assert!(buf.len() <= 1024);
        }
    }

    #[test]
    fn last_line_without_newline_counts_at_eof() {
        let mut codec = LineCodec::new(64);
        assert_eq!(
            decode_all(&mut codec, &[b"{}\n[1]"]),
            vec![frame("{}"), frame("[1]")]
        );
    }

    proptest! {
        /// Law: however the stream is split, the same lines come out (FAULTS rows 1, 2).
        #[test]
        fn framing_is_independent_of_split_points(
            lines in proptest::collection::vec("[ -~]{0,40}", 0..20),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
            crlf in any::<bool>(),
        ) {
            let end = if crlf { "\r\n" } else { "\n" };
            let text: String = lines.iter().flat_map(|l| [l.as_str(), end]).collect();
            let bytes = text.as_bytes();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&bytes[last..p]);
                last = p;
            }
            chunks.push(&bytes[last..]);
            let whole = decode_all(&mut LineCodec::new(32), &[bytes]);
            let split = decode_all(&mut LineCodec::new(32), &chunks);
            prop_assert_eq!(no_heads(whole.clone()), no_heads(split));
            let whole = no_heads(whole);
            let expected: Vec<Line> = lines
                .iter()
                .map(|l| if l.len() + usize::from(crlf) > 32 {
                    overlong(l.len() + usize::from(crlf))
                } else {
                    frame(l)
                })
                .filter(|l| !matches!(l, Line::Frame(b) if b.iter().all(u8::is_ascii_whitespace)))
                .collect();
            prop_assert_eq!(whole, expected);
        }

        /// A byte at a time gives the same result as one write (FAULTS row 1).
        #[test]
        fn byte_at_a_time_equals_one_write(text in "[ -~\n]{0,200}") {
            let bytes = text.as_bytes();
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            prop_assert_eq!(
                no_heads(decode_all(&mut LineCodec::new(16), &[bytes])),
                no_heads(decode_all(&mut LineCodec::new(16), &singles))
            );
        }
    }
}
