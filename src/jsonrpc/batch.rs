//! The answers to one client batch, collected until every request in it is answered
//! (or will never be: a cancelled one), then sent as one JSON array line. Notifications
//! in a batch get no answer and are not counted.

use bytes::Bytes;

/// Answers collected for one batch.
#[derive(Debug)]
pub struct BatchAnswers {
    /// Requests still to be answered (or given up).
    remaining: usize,
    /// The answers so far, each without its newline.
    parts: Vec<Bytes>,
}

impl BatchAnswers {
    /// A batch of `requests` requests.
    #[must_use]
    pub fn new(requests: usize) -> Self {
        Self {
            remaining: requests,
            parts: Vec::with_capacity(requests),
        }
    }

    /// Counts one request as done, with its answer `line` (a complete line, with its
    /// `\n`) or none (cancelled). Returns the batch's answer line once every request is
    /// done; `None` before that, and when no request got an answer at all (nothing is
    /// sent for such a batch).
    pub fn answer(&mut self, line: Option<Bytes>) -> Option<Bytes> {
        if let Some(line) = line {
            self.parts.push(line.slice(..line.len().saturating_sub(1)));
        }
        self.remaining = self.remaining.saturating_sub(1);
        if self.remaining > 0 || self.parts.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(self.parts.iter().map(|p| p.len() + 1).sum::<usize>() + 2);
        out.push(b'[');
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(part);
        }
        out.extend_from_slice(b"]\n");
        Some(Bytes::from(out))
    }

    /// Whether every request has been counted.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_go_out_together_in_the_order_they_came() {
        let mut batch = BatchAnswers::new(3);
        assert_eq!(
            batch.answer(Some(Bytes::from_static(b"{\"id\":2}\n"))),
            None
        );
        assert_eq!(batch.answer(None), None);
        let line = batch.answer(Some(Bytes::from_static(b"{\"id\":1}\n")));
        assert_eq!(line.as_deref(), Some(&b"[{\"id\":2},{\"id\":1}]\n"[..]));
        assert!(batch.is_done());
    }

    #[test]
    fn a_batch_whose_requests_were_all_cancelled_sends_nothing() {
        let mut batch = BatchAnswers::new(2);
        assert_eq!(batch.answer(None), None);
        assert_eq!(batch.answer(None), None);
        assert!(batch.is_done());
    }
}
