//! The sink side of the legacy scp protocol (`scp -t DEST`, what `scp -O` and
//! `scp` before OpenSSH 9.0 run on the target for an upload): the records in the
//! client's stream are read so that every file and directory the upload writes is
//! judged by its name, not only the destination on the command line.
//!
//! The protocol is lock-step. The client sends one item — a times record
//! (`T…\n`), a file header (`C<mode> <size> <name>\n`) and then, once the target
//! accepted it, the contents and one status byte, a directory (`D<mode> 0
//! <name>\n`), the end of a directory (`E\n`) — and waits for the target's reply:
//! `\0`, or `\x01message\n` (an error; the client goes on with the next item) or
//! `\x02message\n` (fatal). Client lines `\x01…`/`\x02…` report its own errors and
//! get no reply.
//!
//! The gateway's view must stay the target's view, or names could slip past: bytes
//! that arrive while a reply is due are held until it arrives (a header the target
//! refused is followed by no contents), lines longer than the target would read
//! whole and anything that is not a record close the channel, and a name is cut at
//! a NUL byte as the target's C code cuts it. A refused header is never sent: the
//! client gets `\x01gatehouse: …\n`, reports it and goes on with its next file; a
//! refused directory is skipped with everything in it.

use super::shell::normalize;

/// The longest record line accepted, newline included. OpenSSH's sink reads a line
/// into a 2048-byte buffer; a longer one would be read in parts.
pub const MAX_LINE: usize = 1024;

/// The stream is not the scp protocol: the channel is closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed scp stream: {0}")]
pub struct ScpError(pub String);

/// A record that writes a file or makes a directory, to be judged before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `write` (a file) or `mkdir` (a directory, `-r`).
    pub op: &'static str,
    /// The path written: the name joined to the directory it goes into (resolved
    /// like `ssh.writes`; `~` is the login directory).
    pub path: String,
    /// At the top level, the destination itself: written instead of `path` when it is
    /// not a directory on the target.
    pub or_dest: Option<String>,
    /// Why the record cannot be sent whatever the policy says (a name the target
    /// would refuse, with `/` or `..`, or empty).
    pub bad_name: Option<String>,
    /// The record line as received.
    pub line: Vec<u8>,
}

/// What to do next with the client's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes to the target as they are.
    Forward(Vec<u8>),
    /// Judge this record, then call [`Sink::sent`] (and send its line) or
    /// [`Sink::refused`] (and tell the client).
    Judge(Record),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Due {
    /// The target's first `\0`.
    Start,
    /// A reply to a times record or to an error line after contents.
    Plain,
    /// A reply to a file header: `\0` means the contents follow.
    File(u64),
    /// A reply to a directory record: `\0` means the client goes into it.
    Dir(String),
    /// A reply to the end of a directory.
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// A reply from the target is due; client bytes wait.
    Waiting(Due),
    /// At the start of a record line.
    Record,
    /// This many bytes of file contents still to pass.
    Contents(u64),
    /// The status byte after the contents.
    Status,
    /// A record is being judged.
    Judging(Due),
}

/// The sink's stream, as the gateway follows it.
#[derive(Debug)]
pub struct Sink {
    dest: String,
    dirs: Vec<String>,
    state: State,
    held: Vec<u8>,
    /// A reply from the target, when it is split across reads.
    reply: Vec<u8>,
}

impl Sink {
    /// A sink writing into `dest` (resolved; `None` is the login directory).
    pub fn new(dest: Option<String>) -> Self {
        Self {
            dest: dest.unwrap_or_else(|| "~".into()),
            dirs: Vec::new(),
            state: State::Waiting(Due::Start),
            held: Vec::new(),
            reply: Vec::new(),
        }
    }

    /// Bytes from the client.
    pub fn push(&mut self, data: &[u8]) {
        self.held.extend_from_slice(data);
    }

    /// Client bytes held (file contents pass through; this stays below a line, or
    /// whatever a client sends while a reply is due).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// How many leading bytes of `len` new client bytes are file contents that can go
    /// to the target as they are, without being held (nothing is held before them).
    /// The caller sends those and pushes the rest.
    pub fn contents_prefix(&mut self, len: usize) -> usize {
        match self.state {
            State::Contents(n) if self.held.is_empty() => {
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(len);
                let left = n - take as u64;
                self.state = if left == 0 {
                    State::Status
                } else {
                    State::Contents(left)
                };
                take
            }
            _ => 0,
        }
    }

    /// Whether held client bytes wait for a reply from the target (or a judgement).
    pub fn waiting(&self) -> bool {
        matches!(self.state, State::Waiting(_) | State::Judging(_))
    }

    /// The next thing to do with the client's bytes, or `None` until more arrive (or a
    /// reply from the target does).
    pub fn next_step(&mut self) -> Result<Option<Step>, ScpError> {
        match self.state.clone() {
            State::Waiting(_) | State::Judging(_) => Ok(None),
            State::Contents(n) => {
                if self.held.is_empty() {
                    return Ok(None);
                }
                let take = usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .min(self.held.len());
                let out: Vec<u8> = self.held.drain(..take).collect();
                let left = n - take as u64;
                self.state = if left == 0 {
                    State::Status
                } else {
                    State::Contents(left)
                };
                Ok(Some(Step::Forward(out)))
            }
            State::Status => match self.held.first() {
                None => Ok(None),
                Some(0) => {
                    self.held.remove(0);
                    self.state = State::Waiting(Due::Plain);
                    Ok(Some(Step::Forward(vec![0])))
                }
                Some(1 | 2) => {
                    let Some(line) = self.line()? else {
                        return Ok(None);
                    };
                    self.state = State::Waiting(Due::Plain);
                    Ok(Some(Step::Forward(line)))
                }
                Some(b) => Err(ScpError(format!(
                    "byte {b:#04x} where the status after a file's contents belongs"
                ))),
            },
            State::Record => {
                let Some(line) = self.line()? else {
                    return Ok(None);
                };
                self.record(line).map(Some)
            }
        }
    }

    /// One whole line from the held bytes (newline included), if there.
    fn line(&mut self) -> Result<Option<Vec<u8>>, ScpError> {
        match self.held.iter().position(|b| *b == b'\n') {
            Some(i) if i < MAX_LINE => Ok(Some(self.held.drain(..=i).collect())),
            Some(_) => Err(ScpError(format!("a record line over {MAX_LINE} bytes"))),
            None if self.held.len() >= MAX_LINE => {
                Err(ScpError(format!("a record line over {MAX_LINE} bytes")))
            }
            None => Ok(None),
        }
    }

    fn record(&mut self, line: Vec<u8>) -> Result<Step, ScpError> {
        // The target reads the line as a C string.
        let text_end = line
            .iter()
            .position(|b| *b == 0 || *b == b'\n')
            .unwrap_or(line.len());
        let text = line.get(..text_end).unwrap_or_default();
        match text.first() {
            // The client's own error: no reply.
            Some(1 | 2) => Ok(Step::Forward(line)),
            Some(b'T') => {
                self.state = State::Waiting(Due::Plain);
                Ok(Step::Forward(line))
            }
            Some(b'E') => {
                self.state = State::Waiting(Due::End);
                Ok(Step::Forward(line))
            }
            Some(kind @ (b'C' | b'D')) => {
                let (size, name) = header(text.get(1..).unwrap_or_default())?;
                let name = String::from_utf8_lossy(name).into_owned();
                let bad_name = (name.is_empty() || name.contains('/') || name == "..")
                    .then(|| format!("the target refuses the file name `{name}`"));
                let (path, or_dest) = match self.dirs.last() {
                    Some(dir) => (normalize(&format!("{dir}/{name}")), None),
                    None => (
                        normalize(&format!("{}/{name}", self.dest)),
                        Some(self.dest.clone()),
                    ),
                };
                let due = if *kind == b'C' {
                    Due::File(size)
                } else {
                    Due::Dir(path.clone())
                };
                self.state = State::Judging(due);
                Ok(Step::Judge(Record {
                    op: if *kind == b'C' { "write" } else { "mkdir" },
                    path,
                    or_dest,
                    bad_name,
                    line,
                }))
            }
            _ => Err(ScpError(format!(
                "`{}` is not an scp record",
                String::from_utf8_lossy(text.get(..text.len().min(40)).unwrap_or_default())
            ))),
        }
    }

    /// The judged record was sent to the target: its reply is due.
    pub fn sent(&mut self) {
        if let State::Judging(due) = std::mem::replace(&mut self.state, State::Record) {
            self.state = State::Waiting(due);
        }
    }

    /// The judged record was not sent (the client was told): the client goes on with
    /// its next item.
    pub fn refused(&mut self) {
        if matches!(self.state, State::Judging(_)) {
            self.state = State::Record;
        }
    }

    /// Bytes from the target (passed to the client unchanged). Returns whether a due
    /// reply arrived, so held client bytes may now go on.
    pub fn from_target(&mut self, data: &[u8]) -> Result<bool, ScpError> {
        let mut progressed = false;
        for &b in data {
            if self.reply.is_empty() {
                if b == 0 {
                    self.replied(true)?;
                    progressed = true;
                    continue;
                }
                if b != 1 && b != 2 {
                    return Err(ScpError(format!(
                        "the target sent {b:#04x} where a reply belongs"
                    )));
                }
            }
            self.reply.push(b);
            if b == b'\n' {
                self.reply.clear();
                self.replied(false)?;
                progressed = true;
            } else if self.reply.len() > 64 * 1024 {
                return Err(ScpError("a reply from the target without an end".into()));
            }
        }
        Ok(progressed)
    }

    fn replied(&mut self, ok: bool) -> Result<(), ScpError> {
        let State::Waiting(due) = std::mem::replace(&mut self.state, State::Record) else {
            return Err(ScpError("the target replied when no reply was due".into()));
        };
        match (due, ok) {
            (Due::File(size), true) => self.state = State::Contents(size),
            (Due::Dir(path), true) => self.dirs.push(path),
            (Due::End, true) => {
                self.dirs.pop();
            }
            _ => {}
        }
        if matches!(self.state, State::Contents(0)) {
            self.state = State::Status;
        }
        Ok(())
    }
}

/// `<mode> <size> <name>` after the record's letter, as OpenSSH's sink reads it.
fn header(rest: &[u8]) -> Result<(u64, &[u8]), ScpError> {
    let bad = |what: &str| ScpError(format!("a file record with {what}"));
    let digits = rest
        .iter()
        .take_while(|b| (b'0'..=b'7').contains(b))
        .count();
    let rest = rest.get(digits..).unwrap_or_default();
    let rest = rest
        .strip_prefix(b" ")
        .ok_or_else(|| bad("a mode not followed by a space"))?;
    let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 {
        return Err(bad("no size"));
    }
    let size: u64 = std::str::from_utf8(rest.get(..n).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s| i64::try_from(*s).is_ok())
        .ok_or_else(|| bad("a size out of range"))?;
    let name = rest
        .get(n..)
        .unwrap_or_default()
        .strip_prefix(b" ")
        .ok_or_else(|| bad("a size not followed by a space"))?;
    Ok((size, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(s: &mut Sink) -> Vec<Step> {
        let mut out = Vec::new();
        while let Some(step) = s.next_step().unwrap() {
            let judge = matches!(step, Step::Judge(_));
            out.push(step);
            if judge {
                break;
            }
        }
        out
    }

    /// The one step next, which must be a record to judge.
    fn judged(s: &mut Sink) -> Record {
        match drain(s).as_slice() {
            [Step::Judge(r)] => r.clone(),
            other => panic!("expected one record to judge, got {other:?}"),
        }
    }

    #[test]
    fn a_file_is_judged_then_its_contents_pass() {
        let mut s = Sink::new(Some("~/up".into()));
        s.push(b"C0644 5 notes.txt\n");
        assert!(
            drain(&mut s).is_empty(),
            "nothing before the target's start"
        );
        assert!(s.from_target(b"\0").unwrap());
        let r = judged(&mut s);
        assert_eq!(
            (r.op, r.path.as_str(), r.or_dest.as_deref()),
            ("write", "~/up/notes.txt", Some("~/up"))
        );
        s.sent();
        assert_eq!(
            s.contents_prefix(6),
            0,
            "no contents before the target's yes"
        );
        s.push(b"hello\0");
        assert!(
            drain(&mut s).is_empty(),
            "contents wait for the target's yes"
        );
        s.from_target(b"\0").unwrap();
        assert_eq!(
            drain(&mut s),
            vec![Step::Forward(b"hello".to_vec()), Step::Forward(vec![0])]
        );
        s.from_target(b"\0").unwrap();
        assert_eq!(s.state, State::Record);
        // Contents that arrive with nothing held pass without being held.
        s.push(b"C0644 10 big\n");
        judged(&mut s);
        s.sent();
        s.from_target(b"\0").unwrap();
        assert_eq!(s.contents_prefix(4), 4);
        assert_eq!(s.contents_prefix(100), 6);
        assert_eq!(s.state, State::Status);
        assert_eq!(s.contents_prefix(1), 0);
    }

    #[test]
    fn after_a_refused_header_the_next_bytes_are_a_record() {
        let mut s = Sink::new(None);
        s.from_target(b"\0").unwrap();
        // The client sends no contents after a refusal: what follows is a header.
        s.push(b"C0600 20 harmless\nC0600 5 authorized_keys\n");
        judged(&mut s);
        s.refused();
        let r = judged(&mut s);
        assert_eq!(r.path, "~/authorized_keys");
    }

    #[test]
    fn a_header_the_target_refuses_is_followed_by_no_contents() {
        let mut s = Sink::new(Some("/srv".into()));
        s.from_target(b"\0").unwrap();
        // A client that sends contents before the reply: held, then read as records
        // when the target says no.
        s.push(b"C0644 22 x\nD0755 0 .ssh\nC0600 1 y\n");
        judged(&mut s);
        s.sent();
        assert!(drain(&mut s).is_empty());
        s.from_target(b"\x01scp: /srv/x: Permission denied\n")
            .unwrap();
        let r = judged(&mut s);
        assert_eq!((r.op, r.path.as_str()), ("mkdir", "/srv/.ssh"));
    }

    #[test]
    fn directories_nest_and_end() {
        let mut s = Sink::new(Some("~".into()));
        s.from_target(b"\0").unwrap();
        s.push(b"D0700 0 tree\n");
        let r = judged(&mut s);
        assert_eq!(r.path, "~/tree");
        s.sent();
        s.from_target(b"\0").unwrap();
        s.push(b"D0700 0 .ssh\n");
        let r = judged(&mut s);
        assert_eq!(
            (r.path.as_str(), r.or_dest.as_deref()),
            ("~/tree/.ssh", None)
        );
        s.sent();
        s.from_target(b"\0").unwrap();
        s.push(b"C0600 3 authorized_keys\n");
        let r = judged(&mut s);
        assert_eq!(r.path, "~/tree/.ssh/authorized_keys");
        s.refused();
        s.push(b"E\nE\nC0644 1 top\n");
        assert_eq!(drain(&mut s), vec![Step::Forward(b"E\n".to_vec())]);
        s.from_target(b"\0").unwrap();
        assert_eq!(drain(&mut s), vec![Step::Forward(b"E\n".to_vec())]);
        s.from_target(b"\0").unwrap();
        let r = judged(&mut s);
        assert_eq!(r.path, "~/top");
    }

    #[test]
    fn names_are_read_as_the_target_reads_them() {
        let mut s = Sink::new(Some("~/.".into()));
        s.from_target(b"\0").unwrap();
        s.push(b"C0644 1 .bashrc\0ignored\n");
        let r = judged(&mut s);
        assert_eq!(r.path, "~/.bashrc");
        s.refused();
        for bad in [&b"C0644 1 ../x\n"[..], b"C0644 1 ..\n", b"C0644 1 \n"] {
            s.push(bad);
            let r = judged(&mut s);
            assert!(r.bad_name.is_some(), "{r:?}");
            s.refused();
        }
    }

    #[test]
    fn what_is_not_the_protocol_closes_the_stream() {
        for bad in [
            &b"X0644 1 a\n"[..],
            b"C0644 a\n",
            b"C0644 1a\n",
            b"C 99999999999999999999 a\n",
            b"C0644 18446744073709551615 a\n",
            &[b'C'; MAX_LINE],
        ] {
            let mut s = Sink::new(None);
            s.from_target(b"\0").unwrap();
            s.push(bad);
            assert!(s.next_step().is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut s = Sink::new(None);
        assert!(s.from_target(b"\0\0").is_err(), "a reply nobody waited for");
        let mut s = Sink::new(None);
        assert!(s.from_target(b"hello").is_err());
    }

    #[test]
    fn times_errors_and_split_replies() {
        let mut s = Sink::new(None);
        s.from_target(b"\0").unwrap();
        s.push(b"T1 0 1 0\n\x01scp: a: not a regular file\nC06");
        assert_eq!(drain(&mut s), vec![Step::Forward(b"T1 0 1 0\n".to_vec())]);
        assert!(!s.from_target(b"\x01scp: bad").unwrap());
        assert!(s.from_target(b" time\n").unwrap());
        assert_eq!(
            drain(&mut s),
            vec![Step::Forward(b"\x01scp: a: not a regular file\n".to_vec())]
        );
        s.push(b"44 0 empty\n");
        judged(&mut s);
        s.sent();
        s.from_target(b"\0").unwrap();
        // An empty file: only the status byte follows.
        s.push(b"\0");
        assert_eq!(drain(&mut s), vec![Step::Forward(vec![0])]);
    }
}
