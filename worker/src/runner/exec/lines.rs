//! Line framing for the child's pipes, bounded per line.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

pub(crate) enum Line {
    Text(Vec<u8>),
    /// A line longer than the limit; only its length is kept.
    TooLong(usize),
}

/// Splits a byte stream into lines without ever buffering more than `max`
/// bytes of one line. Cancel-safe: all state lives in `self` and is only
/// changed after the single await point.
pub(crate) struct BoundedLines<R> {
    pub(crate) reader: BufReader<R>,
    pub(crate) buf: Vec<u8>,
    pub(crate) max: usize,
    /// Bytes of the current line beyond what we kept (0 = not overlong).
    pub(crate) overflow: usize,
    pub(crate) done: bool,
}

impl<R: AsyncRead + Unpin> BoundedLines<R> {
    pub(crate) fn new(reader: R, max: usize) -> Self {
        BoundedLines {
            reader: BufReader::with_capacity(64 << 10, reader),
            buf: Vec::new(),
            max,
            overflow: 0,
            done: false,
        }
    }

    pub(crate) fn done(&self) -> bool {
        self.done
    }

    pub(crate) fn give_up(&mut self) {
        self.done = true;
        self.buf = Vec::new();
    }

    pub(crate) fn take_line(&mut self) -> Line {
        let line = if self.overflow > 0 {
            Line::TooLong(self.buf.len() + self.overflow)
        } else {
            let mut v = std::mem::take(&mut self.buf);
            if v.last() == Some(&b'\r') {
                v.pop();
            }
            Line::Text(v)
        };
        self.buf.clear();
        self.overflow = 0;
        line
    }

    pub(crate) fn append(&mut self, chunk: &[u8]) {
        if self.overflow > 0 || self.buf.len() + chunk.len() > self.max {
            // Keep counting, stop keeping.
            self.overflow += self.buf.len() + chunk.len();
            self.buf = Vec::new();
        } else {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// The next line, `Ok(None)` at end of stream (after which `done()`).
    pub(crate) async fn next(&mut self) -> io::Result<Option<Line>> {
        loop {
            if self.done {
                return Ok(None);
            }
            let avail = match self.reader.fill_buf().await {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            };
            if avail.is_empty() {
                self.done = true;
                if self.buf.is_empty() && self.overflow == 0 {
                    return Ok(None);
                }
                return Ok(Some(self.take_line()));
            }
            match avail.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let chunk = avail[..i].to_vec();
                    self.reader.consume(i + 1);
                    self.append(&chunk);
                    return Ok(Some(self.take_line()));
                }
                None => {
                    let n = avail.len();
                    let chunk = avail.to_vec();
                    self.reader.consume(n);
                    self.append(&chunk);
                }
            }
        }
    }
}
