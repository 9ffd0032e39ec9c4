//! WebSocket, as exec/attach/port-forward use it: a passive frame reader that turns
//! the relayed bytes into recorded messages (client frames unmasked, the Kubernetes
//! channel byte read), and the few server frames Gatehouse writes itself to refuse
//! an exec inside the stream.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gatehouse_events::payload::DataDirection;

use super::Chunk;

/// Frames larger than this are relayed but not recorded.
const MAX_FRAME: u64 = 16 * 1024 * 1024;

/// Reads one direction of a WebSocket connection.
pub struct WsObserver {
    from_client: bool,
    channels: Channels,
    buf: Vec<u8>,
    /// The message being reassembled from fragments.
    message: Option<Vec<u8>>,
    broken: bool,
}

/// How a subprotocol frames Kubernetes channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// `v5.channel.k8s.io` and friends: the first byte of a message is the channel.
    Binary,
    /// `base64.channel.k8s.io`: an ASCII digit, then base64.
    Base64,
    /// Anything else (port-forward tunnels): recorded as is on channel 0.
    None,
}

impl Channels {
    /// The channel framing of a negotiated `Sec-WebSocket-Protocol`.
    pub fn of(protocol: Option<&str>) -> Self {
        match protocol {
            Some(p) if p.starts_with("base64.") => Channels::Base64,
            Some(p) if p.contains("channel.k8s.io") || p == "portforward.k8s.io" => {
                Channels::Binary
            }
            _ => Channels::None,
        }
    }
}

impl WsObserver {
    /// An observer of the frames sent by the client (`from_client`) or the server.
    pub fn new(from_client: bool, channels: Channels) -> Self {
        Self {
            from_client,
            channels,
            buf: Vec::new(),
            message: None,
            broken: false,
        }
    }

    /// Feeds relayed bytes; complete messages are appended to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Chunk>) {
        if self.broken {
            return;
        }
        self.buf.extend_from_slice(data);
        let mut at = 0;
        while let Some((used, frame)) = parse_frame(self.buf.get(at..).unwrap_or_default()) {
            at += used;
            match frame {
                Frame::TooLarge => {
                    self.broken = true;
                    out.push(Chunk::note(
                        self.direction(0),
                        "[gatehouse: a WebSocket frame too large to record; recording stopped]",
                    ));
                    self.buf.clear();
                    return;
                }
                Frame::Data {
                    fin,
                    opcode,
                    payload,
                } => {
                    // Control frames (close, ping, pong) are not recorded; they may
                    // come between the fragments of a message.
                    if opcode >= 8 {
                        continue;
                    }
                    let message = match (opcode, self.message.take()) {
                        (0, Some(mut m)) => {
                            m.extend_from_slice(&payload);
                            m
                        }
                        _ => payload,
                    };
                    if fin {
                        self.emit(message, out);
                    } else {
                        self.message = Some(message);
                    }
                }
            }
        }
        self.buf.drain(..at);
    }

    fn direction(&self, channel: u8) -> DataDirection {
        match (self.from_client, channel) {
            (true, _) => DataDirection::Input,
            (false, 2 | 3) => DataDirection::Error,
            (false, _) => DataDirection::Output,
        }
    }

    fn emit(&self, message: Vec<u8>, out: &mut Vec<Chunk>) {
        let (channel, data) = match self.channels {
            Channels::None => (0, message),
            Channels::Binary => match message.split_first() {
                Some((c, rest)) => (*c, rest.to_vec()),
                None => return,
            },
            Channels::Base64 => match message.split_first() {
                Some((c, rest)) => {
                    let channel = c.wrapping_sub(b'0');
                    (
                        channel,
                        STANDARD.decode(rest).unwrap_or_else(|_| rest.to_vec()),
                    )
                }
                None => return,
            },
        };
        // An empty message opens a channel; channel 255 carries v5 close signals.
        if data.is_empty() || (channel == 255 && self.channels == Channels::Binary) {
            return;
        }
        out.push(Chunk {
            channel: u32::from(channel),
            direction: self.direction(channel),
            data,
        });
    }
}

enum Frame {
    Data {
        fin: bool,
        opcode: u8,
        payload: Vec<u8>,
    },
    TooLarge,
}

/// One complete frame at the start of `b`: (bytes used, frame), or `None` if more
/// bytes are needed.
fn parse_frame(b: &[u8]) -> Option<(usize, Frame)> {
    let b0 = *b.first()?;
    let b1 = *b.get(1)?;
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0f;
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?])),
            4usize,
        ),
        127 => {
            let bytes: [u8; 8] = b.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes), 10)
        }
        n => (u64::from(n), 2),
    };
    if len > MAX_FRAME {
        return Some((0, Frame::TooLarge));
    }
    let key = if masked {
        let k: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(k)
    } else {
        None
    };
    let len = usize::try_from(len).ok()?;
    let mut payload = b.get(at..at + len)?.to_vec();
    if let Some(k) = key {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= k.get(i % 4).copied().unwrap_or(0);
        }
    }
    Some((
        at + len,
        Frame::Data {
            fin,
            opcode,
            payload,
        },
    ))
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.trim().as_bytes());
    ctx.update(GUID.as_bytes());
    STANDARD.encode(ctx.finish().as_ref())
}

/// An unmasked (server) frame.
pub fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 10);
    f.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => f.push(n as u8),
        n @ 126..=0xffff => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

    use super::*;

    fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let key = [0x12, 0x34, 0x56, 0x78];
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        assert!(payload.len() < 126);
        f.push(0x80 | payload.len() as u8);
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    #[test]
    fn accept_key_matches_rfc_6455() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn channels_are_read_from_split_and_fragmented_frames() {
        let mut bytes = client_frame(2, false, b"\x00ec");
        bytes.extend(client_frame(0, true, b"ho hi\n"));
        bytes.extend(client_frame(9, true, b"ping"));
        bytes.extend(client_frame(2, true, b"\x04{\"Width\":80}"));
        let mut o = WsObserver::new(true, Channels::Binary);
        let mut out = Vec::new();
        for piece in bytes.chunks(3) {
            o.feed(piece, &mut out);
        }
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].channel, out[0].data.as_slice()),
            (0, &b"echo hi\n"[..])
        );
        assert_eq!(out[1].channel, 4);
        assert!(out.iter().all(|c| c.direction == DataDirection::Input));

        let mut o = WsObserver::new(false, Channels::Binary);
        let mut out = Vec::new();
        let mut long = vec![1u8];
        long.extend(std::iter::repeat_n(b'x', 300));
        o.feed(&server_frame(2, &long), &mut out);
        o.feed(&server_frame(2, b"\x02oops"), &mut out);
        assert_eq!(
            (out[0].channel, out[0].data.len(), out[0].direction),
            (1, 300, DataDirection::Output)
        );
        assert_eq!(
            (out[1].channel, out[1].direction),
            (2, DataDirection::Error)
        );
    }
}
