//! SFTP (draft-ietf-secsh-filexfer-02, as OpenSSH speaks it): client requests are
//! framed and the ones that name a path are turned into events; server responses are
//! only framed, so a refusal can be slipped in between two of them. Bytes are never
//! altered: an allowed packet is forwarded exactly as received.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest SFTP packet accepted (OpenSSH's limit is 256 KiB).
pub const MAX_PACKET: usize = 1024 * 1024;

/// `SSH_FX_PERMISSION_DENIED`.
const FX_PERMISSION_DENIED: u32 = 3;
const FXP_STATUS: u8 = 101;

/// A malformed SFTP stream.
#[derive(Debug, thiserror::Error)]
#[error("malformed sftp packet: {0}")]
pub struct SftpError(pub &'static str);

/// Splits a byte stream into whole SFTP packets (length prefix included).
#[derive(Debug, Default)]
pub struct Framer {
    buf: BytesMut,
}

impl Framer {
    /// Adds bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole packet, if buffered.
    pub fn next_packet(&mut self) -> Result<Option<Bytes>, SftpError> {
        let Some(len) = self.buf.get(..4).map(|b| {
            let mut a = [0u8; 4];
            a.copy_from_slice(b);
            u32::from_be_bytes(a) as usize
        }) else {
            return Ok(None);
        };
        if len > MAX_PACKET || len == 0 {
            return Err(SftpError("length out of range"));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        Ok(Some(self.buf.split_to(4 + len).freeze()))
    }

    /// Bytes buffered (bounded by one packet).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Tracks packet boundaries in the server-to-client stream without buffering it.
#[derive(Debug, Default)]
pub struct Boundary {
    header: Vec<u8>,
    remaining: usize,
}

impl Boundary {
    /// Accounts for `data`; true when the stream is between two packets afterwards.
    pub fn advance(&mut self, mut data: &[u8]) -> Result<bool, SftpError> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = data.get(n..).unwrap_or(&[]);
                continue;
            }
            let need = 4 - self.header.len();
            let n = need.min(data.len());
            self.header.extend_from_slice(data.get(..n).unwrap_or(&[]));
            data = data.get(n..).unwrap_or(&[]);
            if self.header.len() == 4 {
                let mut a = [0u8; 4];
                a.copy_from_slice(&self.header);
                self.header.clear();
                let len = u32::from_be_bytes(a) as usize;
                if len > MAX_PACKET || len == 0 {
                    return Err(SftpError("length out of range"));
                }
                self.remaining = len;
            }
        }
        Ok(self.at_boundary())
    }

    /// True between packets.
    pub fn at_boundary(&self) -> bool {
        self.remaining == 0 && self.header.is_empty()
    }
}

/// A client request that names a path, as judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Request id (to answer a refusal).
    pub id: u32,
    /// `read`, `write`, `remove`, `rename`, `mkdir`, `rmdir`, `setstat`, `symlink`,
    /// `link`, `list`.
    pub op: &'static str,
    /// The path.
    pub path: String,
    /// The second path (rename and link targets).
    pub path2: Option<String>,
}

fn string(b: &mut &[u8]) -> Result<String, SftpError> {
    if b.remaining() < 4 {
        return Err(SftpError("truncated string"));
    }
    let len = b.get_u32() as usize;
    if b.remaining() < len {
        return Err(SftpError("truncated string"));
    }
    let s = String::from_utf8_lossy(b.get(..len).unwrap_or(&[])).into_owned();
    b.advance(len);
    Ok(s)
}

/// Decodes a client packet (with its length prefix). `None`: the packet is not judged
/// (handle reads/writes, stat, realpath, init...).
pub fn operation(packet: &[u8]) -> Result<Option<Operation>, SftpError> {
    let mut b = packet.get(4..).unwrap_or(&[]);
    if b.remaining() < 1 {
        return Err(SftpError("empty packet"));
    }
    let kind = b.get_u8();
    if kind == 1 {
        return Ok(None); // INIT has no id.
    }
    if b.remaining() < 4 {
        return Err(SftpError("missing request id"));
    }
    let id = b.get_u32();
    let one = |op: &'static str, b: &mut &[u8]| -> Result<Option<Operation>, SftpError> {
        Ok(Some(Operation {
            id,
            op,
            path: string(b)?,
            path2: None,
        }))
    };
    let two = |op: &'static str, b: &mut &[u8]| -> Result<Option<Operation>, SftpError> {
        let path = string(b)?;
        let path2 = string(b)?;
        Ok(Some(Operation {
            id,
            op,
            path,
            path2: Some(path2),
        }))
    };
    match kind {
        3 => {
            let path = string(&mut b)?;
            if b.remaining() < 4 {
                return Err(SftpError("truncated open"));
            }
            let pflags = b.get_u32();
            // WRITE | APPEND | CREAT | TRUNC
            let op = if pflags & (0x02 | 0x04 | 0x08 | 0x10) != 0 {
                "write"
            } else {
                "read"
            };
            Ok(Some(Operation {
                id,
                op,
                path,
                path2: None,
            }))
        }
        9 => one("setstat", &mut b),
        11 => one("list", &mut b),
        13 => one("remove", &mut b),
        14 => one("mkdir", &mut b),
        15 => one("rmdir", &mut b),
        18 => two("rename", &mut b),
        20 => two("symlink", &mut b),
        200 => {
            let name = string(&mut b)?;
            match name.as_str() {
                "posix-rename@openssh.com" => two("rename", &mut b),
                "hardlink@openssh.com" => two("link", &mut b),
                "lsetstat@openssh.com" => one("setstat", &mut b),
                _ => Ok(None),
            }
        }
        _ => Ok(None),
    }
}

/// An `SSH_FXP_STATUS` permission-denied answer to request `id`.
pub fn permission_denied(id: u32, message: &str) -> Bytes {
    let msg = message.as_bytes();
    let body_len = 1 + 4 + 4 + 4 + msg.len() + 4;
    let mut out = BytesMut::with_capacity(4 + body_len);
    out.put_u32(body_len as u32);
    out.put_u8(FXP_STATUS);
    out.put_u32(id);
    out.put_u32(FX_PERMISSION_DENIED);
    out.put_u32(msg.len() as u32);
    out.put_slice(msg);
    out.put_u32(0);
    out.freeze()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn packet(kind: u8, id: u32, strings: &[&str], tail: &[u8]) -> Vec<u8> {
        let mut body = vec![kind];
        body.extend_from_slice(&id.to_be_bytes());
        for s in strings {
            body.extend_from_slice(&(s.len() as u32).to_be_bytes());
            body.extend_from_slice(s.as_bytes());
        }
        body.extend_from_slice(tail);
        let mut p = (body.len() as u32).to_be_bytes().to_vec();
        p.extend(body);
        p
    }

    #[test]
    fn framing_across_chunks_and_operations() {
        let a = packet(13, 7, &["/srv/protected/x"], &[]);
        let b = packet(3, 8, &["/tmp/f"], &[0, 0, 0, 0x1a, 0, 0, 0, 0]);
        let c = packet(18, 9, &["/a", "/b"], &[]);
        let stream: Vec<u8> = [a.clone(), b.clone(), c.clone()].concat();
        let mut f = Framer::default();
        let mut got = Vec::new();
        for chunk in stream.chunks(5) {
            f.push(chunk);
            while let Some(p) = f.next_packet().unwrap() {
                got.push(p);
            }
        }
        assert_eq!(got.len(), 3);
        assert_eq!(&got[0][..], &a[..]);
        let ops: Vec<_> = got.iter().map(|p| operation(p).unwrap().unwrap()).collect();
        assert_eq!(
            (ops[0].op, ops[0].path.as_str(), ops[0].id),
            ("remove", "/srv/protected/x", 7)
        );
        assert_eq!(ops[1].op, "write");
        assert_eq!((ops[2].op, ops[2].path2.as_deref()), ("rename", Some("/b")));
        let mut bd = Boundary::default();
        assert!(!bd.advance(&stream[..3]).unwrap());
        assert!(bd.advance(&stream[3..a.len()]).unwrap());
        assert!(bd.advance(&stream[a.len()..]).unwrap());
    }

    #[test]
    fn malformed_packets_are_errors_not_panics() {
        let mut f = Framer::default();
        f.push(&[0xff, 0xff, 0xff, 0xff]);
        assert!(f.next_packet().is_err());
        assert!(operation(&[0, 0, 0, 5, 13, 0, 0, 0, 1]).is_err());
        assert!(operation(&[0, 0, 0, 1]).is_err());
        assert!(operation(&packet(13, 1, &[], &[0, 0, 0, 9])).is_err());
        let d = permission_denied(5, "no");
        assert_eq!(d.len(), 4 + 1 + 4 + 4 + 4 + 2 + 4);
    }
}
