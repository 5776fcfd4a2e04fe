//! The last bytes a step wrote to its standard output and error, interleaved as they arrived.

use std::collections::VecDeque;

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// How much of a step's output its ENDED report carries.
pub const OUTPUT_TAIL_BYTES: usize = 4096;

/// A buffer that keeps only the last [`OUTPUT_TAIL_BYTES`] bytes pushed into it.
#[derive(Debug, Default)]
pub struct OutputTail {
    bytes: VecDeque<u8>,
}

impl OutputTail {
    /// Appends `chunk`, dropping the oldest bytes beyond the limit.
    pub fn push(&mut self, chunk: &[u8]) {
        let chunk = &chunk[chunk.len().saturating_sub(OUTPUT_TAIL_BYTES)..];
        let overflow = (self.bytes.len() + chunk.len()).saturating_sub(OUTPUT_TAIL_BYTES);
        self.bytes.drain(..overflow);
        self.bytes.extend(chunk);
    }

    /// The tail as text: invalid UTF-8 becomes U+FFFD, except a character cut in half at the
    /// start (the cut is ours, not the step's), and the result is at most
    /// [`OUTPUT_TAIL_BYTES`] long even where replacement characters are longer than the bytes
    /// they replace.
    pub fn into_string(self) -> String {
        let bytes = Vec::from(self.bytes);
        let cut_char = bytes
            .iter()
            .take(3)
            .take_while(|b| (**b & 0b1100_0000) == 0b1000_0000)
            .count();
        let text = String::from_utf8_lossy(&bytes[cut_char..]).into_owned();
        if text.len() <= OUTPUT_TAIL_BYTES {
            return text;
        }
        let mut start = text.len() - OUTPUT_TAIL_BYTES;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_string()
    }
}

/// Reads both pipes until each ends, pushing every chunk into `tail` as it arrives, so the
/// tail interleaves the two streams as they were written (to the chunk; two chunks waiting at
/// the same moment go in either order).
pub async fn read_interleaved(
    mut stdout: Option<impl AsyncRead + Unpin>,
    mut stderr: Option<impl AsyncRead + Unpin>,
    tail: &mut OutputTail,
) {
    let mut out_buf = [0u8; 4096];
    let mut err_buf = [0u8; 4096];
    loop {
        let (got, from_stdout) = match (stdout.as_mut(), stderr.as_mut()) {
            (None, None) => return,
            (Some(out), None) => (out.read(&mut out_buf).await, true),
            (None, Some(err)) => (err.read(&mut err_buf).await, false),
            (Some(out), Some(err)) => tokio::select! {
                got = out.read(&mut out_buf) => (got, true),
                got = err.read(&mut err_buf) => (got, false),
            },
        };
        match (got, from_stdout) {
            // A read error on a pipe is its end as far as the tail is concerned.
            (Ok(0) | Err(_), true) => stdout = None,
            (Ok(0) | Err(_), false) => stderr = None,
            (Ok(n), true) => tail.push(&out_buf[..n]),
            (Ok(n), false) => tail.push(&err_buf[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_bytes() {
        let mut tail = OutputTail::default();
        tail.push(b"hello ");
        tail.push(b"world");
        assert_eq!(tail.into_string(), "hello world");
        let mut tail = OutputTail::default();
        for i in 0..2_000 {
            tail.push(format!("line{i}\n").as_bytes());
        }
        let text = tail.into_string();
        assert_eq!(text.len(), OUTPUT_TAIL_BYTES);
        assert!(text.ends_with("line1999\n"));
        assert!(!text.contains("line0\n"));
        let mut tail = OutputTail::default();
        tail.push(&[b'x'; 3 * OUTPUT_TAIL_BYTES]);
        tail.push(b"end");
        let text = tail.into_string();
        assert_eq!(text.len(), OUTPUT_TAIL_BYTES);
        assert!(text.ends_with("xend"));
    }

    #[test]
    fn a_character_cut_at_the_start_is_dropped_and_invalid_bytes_stay_within_the_limit() {
        let mut tail = OutputTail::default();
        // "é" is two bytes: the first falls off the front.
        tail.push("é".as_bytes());
        tail.push(&[b'a'; OUTPUT_TAIL_BYTES - 1]);
        let text = tail.into_string();
        assert_eq!(text.len(), OUTPUT_TAIL_BYTES - 1);
        assert!(text.starts_with('a'));
        let mut tail = OutputTail::default();
        tail.push(&[0xff; OUTPUT_TAIL_BYTES]);
        let text = tail.into_string();
        assert!(text.len() <= OUTPUT_TAIL_BYTES);
        assert!(text.chars().all(|c| c == char::REPLACEMENT_CHARACTER));
    }

    #[tokio::test]
    async fn reads_both_pipes_until_both_end() {
        use tokio::io::AsyncWriteExt as _;
        let (mut out_w, out_r) = tokio::io::duplex(64);
        let (mut err_w, err_r) = tokio::io::duplex(64);
        let mut tail = OutputTail::default();
        let writer = async move {
            out_w.write_all(b"out\n").await.unwrap();
            drop(out_w);
            // More than one pipe buffer: the reader must keep draining stderr alone.
            for _ in 0..100 {
                err_w.write_all(b"err\n").await.unwrap();
            }
        };
        tokio::join!(
            read_interleaved(Some(out_r), Some(err_r), &mut tail),
            writer
        );
        let text = tail.into_string();
        assert!(text.contains("out\n"), "{text}");
        assert_eq!(text.matches("err\n").count(), 100);
    }
}
