//! SPDY/3.1, as kubectl's fallback streaming protocol uses it: a passive reader of
//! data frames. Each SPDY stream (stdin, stdout, stderr, error, resize) is recorded
//! under its stream id; the direction is the side that sent the frame. Control
//! frames (stream set-up, with compressed headers) are relayed, not recorded.

use gatehouse_events::payload::DataDirection;

use super::Chunk;

/// A frame header: stream id or control word, flags and a 24-bit length.
const HEADER: usize = 8;

/// Reads one direction of a SPDY connection.
pub struct SpdyObserver {
    from_client: bool,
    buf: Vec<u8>,
}

impl SpdyObserver {
    /// An observer of the frames sent by the client (`from_client`) or the server.
    pub fn new(from_client: bool) -> Self {
        Self {
            from_client,
            buf: Vec::new(),
        }
    }

    /// Feeds relayed bytes; data frames are appended to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Chunk>) {
        self.buf.extend_from_slice(data);
        let mut at = 0;
        while let Some(h) = self
            .buf
            .get(at..at + HEADER)
            .and_then(|h| <[u8; HEADER]>::try_from(h).ok())
        {
            let len = usize::from(h[5]) << 16 | usize::from(h[6]) << 8 | usize::from(h[7]);
            let control = h[0] & 0x80 != 0;
            let stream = u32::from_be_bytes([h[0] & 0x7f, h[1], h[2], h[3]]);
            let Some(payload) = self.buf.get(at + HEADER..at + HEADER + len) else {
                break;
            };
            if !control && !payload.is_empty() {
                out.push(Chunk {
                    channel: stream,
                    direction: if self.from_client {
                        DataDirection::Input
                    } else {
                        DataDirection::Output
                    },
                    data: payload.to_vec(),
                });
            }
            at += HEADER + len;
        }
        self.buf.drain(..at);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, reason = "test code")]

    use super::*;

    fn frame(control: bool, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = stream.to_be_bytes().to_vec();
        if control {
            f[0] |= 0x80;
        }
        let n = payload.len() as u32;
        f.extend_from_slice(&[0, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn data_frames_are_recorded_per_stream() {
        let mut bytes = frame(true, 1, b"syn-stream headers");
        bytes.extend(frame(false, 3, b"ls -l\n"));
        bytes.extend(frame(false, 5, b""));
        let mut o = SpdyObserver::new(true);
        let mut out = Vec::new();
        for piece in bytes.chunks(5) {
            o.feed(piece, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].channel, out[0].data.as_slice()),
            (3, &b"ls -l\n"[..])
        );
        assert_eq!(out[0].direction, DataDirection::Input);
    }
}
