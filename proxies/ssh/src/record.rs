//! Session recordings: the first bytes of each channel direction become
//! `session_data` events with their timing; the rest is only counted.

use base64::Engine as _;
use gatehouse_events::payload::{DataDirection, SessionData};

/// Recording state of one channel direction.
#[derive(Debug)]
pub struct Recorder {
    channel: u32,
    direction: DataDirection,
    cap: u64,
    /// Bytes recorded.
    pub recorded: u64,
    /// Bytes seen.
    pub total: u64,
}

impl Recorder {
    /// Records up to `cap` bytes of `direction` on `channel`.
    pub fn new(channel: u32, direction: DataDirection, cap: u64) -> Self {
        Self {
            channel,
            direction,
            cap,
            recorded: 0,
            total: 0,
        }
    }

    /// Counts `data`; returns the event payload for the part still under the cap.
    pub fn take(&mut self, data: &[u8], elapsed_us: u64) -> Option<SessionData> {
        self.total += data.len() as u64;
        let room = self.cap.saturating_sub(self.recorded);
        if room == 0 || data.is_empty() {
            return None;
        }
        let n = (data.len() as u64).min(room) as usize;
        let part = data.get(..n).unwrap_or(data);
        self.recorded += n as u64;
        let (text, base64) = match std::str::from_utf8(part) {
            Ok(t) => (Some(t.to_owned()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(part)),
            ),
        };
        Some(SessionData {
            channel: self.channel,
            direction: self.direction,
            elapsed_us,
            text,
            base64,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn caps_and_counts() {
        let mut r = Recorder::new(0, DataDirection::Output, 5);
        assert_eq!(r.take(b"abc", 1).unwrap().text.as_deref(), Some("abc"));
        assert_eq!(r.take(b"defg", 2).unwrap().text.as_deref(), Some("de"));
        assert!(r.take(b"hij", 3).is_none());
        assert_eq!((r.recorded, r.total), (5, 10));
        let mut r = Recorder::new(0, DataDirection::Output, 100);
        assert!(r.take(&[0xff, 0], 1).unwrap().base64.is_some());
    }
}
