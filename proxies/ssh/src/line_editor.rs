//! Reconstructs command lines from the keystrokes of an interactive shell, so each
//! line can be judged before its Enter reaches the target.
//!
//! It models a readline-style editor: printable input, backspace, Ctrl-U/K/W/A/E/B/F/D,
//! left/right/home/end/delete keys, Ctrl-V and bracketed paste. What it cannot see —
//! history recall (up/down, Ctrl-P/N/R), completion (Tab), yank (Ctrl-Y), Alt-key
//! word motions, undo — makes the line *unreliable*: the proxy refuses to send its
//! Enter (fail closed) and tells the user to retype it. Limits are in `docs/ssh.md`.

/// Longest line kept; longer input marks the line unreliable.
const MAX_LINE: usize = 16 * 1024;

/// A completed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The reconstructed text.
    pub text: String,
    /// False when editing keys the model cannot follow were used.
    pub reliable: bool,
    /// Why the line is unreliable (the first key that made it so).
    pub why: Option<&'static str>,
    /// The cursor was at the end of the line when Enter was pressed.
    pub at_end: bool,
    /// The Enter was a newline inside a bracketed paste.
    pub pasted: bool,
}

/// What [`LineEditor::feed`] consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fed {
    /// Keys to forward as they are.
    Keys,
    /// The rest of a paste being discarded: not to be forwarded.
    Discarded,
    /// Keys ending with an Enter that completes `Line` (the Enter is the last byte).
    Line(Line),
}

/// The end of a bracketed paste.
const PASTE_END: &[u8] = b"\x1b[201~";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Esc,
    /// After `ESC [` (collecting parameters).
    Csi,
    /// After `ESC O`.
    Ss3,
}

/// The editor state of one PTY channel.
#[derive(Debug)]
pub struct LineEditor {
    line: Vec<char>,
    cursor: usize,
    unreliable: Option<&'static str>,
    escape: Escape,
    csi: Vec<u8>,
    literal_next: bool,
    pasting: bool,
    /// Discarding the rest of a paste: how much of [`PASTE_END`] was seen.
    discarding: Option<usize>,
    utf8: Vec<u8>,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    /// An empty line.
    pub fn new() -> Self {
        Self {
            line: Vec::new(),
            cursor: 0,
            unreliable: None,
            escape: Escape::None,
            csi: Vec::new(),
            literal_next: false,
            pasting: false,
            discarding: None,
            utf8: Vec::new(),
        }
    }

    /// The line typed so far.
    pub fn current(&self) -> String {
        self.line.iter().collect()
    }

    /// Consumes input up to and including the first Enter, or, while discarding a
    /// paste, up to and including its end. Returns how many bytes were consumed and
    /// what they were.
    pub fn feed(&mut self, data: &[u8]) -> (usize, Fed) {
        if let Some(seen) = self.discarding {
            let mut seen = seen;
            for (i, &b) in data.iter().enumerate() {
                seen = if PASTE_END.get(seen) == Some(&b) {
                    seen + 1
                } else {
                    usize::from(b == 0x1b)
                };
                if seen == PASTE_END.len() {
                    self.discarding = None;
                    self.pasting = false;
                    return (i + 1, Fed::Discarded);
                }
            }
            self.discarding = Some(seen);
            return (data.len(), Fed::Discarded);
        }
        for (i, &b) in data.iter().enumerate() {
            if self.byte(b) {
                let line = Line {
                    text: self.line.iter().collect(),
                    reliable: self.unreliable.is_none(),
                    why: self.unreliable,
                    at_end: self.cursor >= self.line.len(),
                    pasted: self.pasting,
                };
                self.clear();
                return (i + 1, Fed::Line(line));
            }
        }
        (data.len(), Fed::Keys)
    }

    /// Takes `line` back as the start of a command that spans lines: its text and a
    /// newline, the cursor at the end. The target got the same newline quoted
    /// (Ctrl-V Ctrl-J), so its editor holds the same text and has run nothing.
    /// Editing keys whose meaning differs between line editors on a buffer of several
    /// lines (Ctrl-A/E/U/K/W, Home, End, deleting a newline) make the line unreliable.
    pub fn reopen(&mut self, line: &Line) {
        self.clear();
        self.line = line.text.chars().collect();
        self.unreliable = line.why;
        if !line.at_end && line.text.contains('\n') {
            self.taint("moving the cursor within a command of several lines");
        }
        self.cursor = self.line.len();
        self.insert('\n');
    }

    /// Drops the rest of the current bracketed paste (after one of its lines was
    /// refused and the target's editor was told the paste ended).
    pub fn discard_paste(&mut self) {
        if self.pasting {
            self.discarding = Some(0);
        }
    }

    fn multiline(&self) -> bool {
        self.line.contains(&'\n')
    }

    /// A key whose meaning on a buffer of several lines differs between editors.
    fn across_lines(&mut self) -> bool {
        if self.multiline() {
            self.taint("an editing key within a command of several lines");
            return true;
        }
        false
    }

    /// Forgets the current line (after a blocked line was cancelled upstream).
    pub fn clear(&mut self) {
        self.line.clear();
        self.cursor = 0;
        self.unreliable = None;
        self.literal_next = false;
    }

    fn taint(&mut self, why: &'static str) {
        if self.unreliable.is_none() {
            self.unreliable = Some(why);
        }
    }

    fn insert(&mut self, c: char) {
        if self.line.len() >= MAX_LINE {
            self.taint("the line is too long");
            return;
        }
        self.line.insert(self.cursor.min(self.line.len()), c);
        self.cursor = (self.cursor + 1).min(self.line.len());
    }

    fn backspace(&mut self) {
        if self.cursor > 0 && self.line.get(self.cursor - 1) == Some(&'\n') {
            self.taint("deleting the newline of a command of several lines");
        }
        if self.cursor > 0 {
            self.cursor -= 1;
            self.line.remove(self.cursor);
        }
    }

    fn delete(&mut self) {
        if self.line.get(self.cursor) == Some(&'\n') {
            self.taint("deleting the newline of a command of several lines");
        }
        if self.cursor < self.line.len() {
            self.line.remove(self.cursor);
        }
    }

    /// Returns true when `b` is an Enter that completes the line.
    fn byte(&mut self, b: u8) -> bool {
        match self.escape {
            Escape::Esc => {
                self.escape = match b {
                    b'[' => {
                        self.csi.clear();
                        Escape::Csi
                    }
                    b'O' => Escape::Ss3,
                    _ => {
                        self.taint("an Alt/Meta editing key");
                        Escape::None
                    }
                };
                return false;
            }
            Escape::Csi => {
                if (0x40..=0x7e).contains(&b) {
                    self.escape = Escape::None;
                    let params = String::from_utf8_lossy(&self.csi).into_owned();
                    self.csi_final(&params, b);
                } else if self.csi.len() < 16 {
                    self.csi.push(b);
                } else {
                    self.escape = Escape::None;
                    self.taint("an unknown escape sequence");
                }
                return false;
            }
            Escape::Ss3 => {
                self.escape = Escape::None;
                self.csi_final("", b);
                return false;
            }
            Escape::None => {}
        }
        if self.literal_next {
            self.literal_next = false;
            self.insert(char::from(b));
            return false;
        }
        if b >= 0x80 || !self.utf8.is_empty() {
            self.utf8.push(b);
            match std::str::from_utf8(&self.utf8) {
                Ok(s) => {
                    let chars: Vec<char> = s.chars().collect();
                    self.utf8.clear();
                    for c in chars {
                        self.insert(c);
                    }
                }
                Err(e) if e.error_len().is_some() || self.utf8.len() >= 4 => {
                    self.utf8.clear();
                    self.taint("invalid UTF-8 input");
                }
                Err(_) => {}
            }
            return false;
        }
        match b {
            // A pasted newline is judged like an Enter: some editors run it.
            b'\r' | b'\n' => return true,
            0x1b => self.escape = Escape::Esc,
            0x7f | 0x08 => self.backspace(),
            0x01 | 0x05 | 0x0b | 0x15 | 0x17 if self.across_lines() => {}
            0x01 => self.cursor = 0,                             // Ctrl-A
            0x05 => self.cursor = self.line.len(),               // Ctrl-E
            0x02 => self.cursor = self.cursor.saturating_sub(1), // Ctrl-B
            0x06 => self.cursor = (self.cursor + 1).min(self.line.len()), // Ctrl-F
            0x04 => self.delete(),                               // Ctrl-D
            0x0b => self.line.truncate(self.cursor),             // Ctrl-K
            0x15 => {
                // Ctrl-U: kill backwards from the cursor.
                self.line.drain(..self.cursor.min(self.line.len()));
                self.cursor = 0;
            }
            0x17 => {
                // Ctrl-W: kill the previous whitespace-delimited word.
                let mut i = self.cursor.min(self.line.len());
                while i > 0 && self.line.get(i - 1).is_some_and(|c| c.is_whitespace()) {
                    i -= 1;
                }
                while i > 0 && self.line.get(i - 1).is_some_and(|c| !c.is_whitespace()) {
                    i -= 1;
                }
                self.line.drain(i..self.cursor.min(self.line.len()));
                self.cursor = i;
            }
            0x03 => self.clear(), // Ctrl-C abandons the line.
            0x16 => self.literal_next = true,
            0x09 => self.taint("Tab completion"),
            0x10 | 0x0e | 0x12 | 0x13 => self.taint("history recall"),
            0x19 => self.taint("yank (Ctrl-Y)"),
            0x14 => self.taint("transpose (Ctrl-T)"),
            0x1f | 0x18 => self.taint("undo or a Ctrl-X sequence"),
            0x0f => self.taint("operate-and-get-next (Ctrl-O)"),
            0x1d => self.taint("character search (Ctrl-])"),
            0x0c | 0x07 | 0x00 | 0x11 | 0x1a | 0x1c | 0x1e => {}
            c if c >= 0x20 => self.insert(char::from(c)),
            _ => {}
        }
        false
    }

    fn csi_final(&mut self, params: &str, b: u8) {
        match (params, b) {
            ("" | "1", b'A' | b'B') => self.taint("history recall (up/down)"),
            ("", b'C') => self.cursor = (self.cursor + 1).min(self.line.len()),
            ("", b'D') => self.cursor = self.cursor.saturating_sub(1),
            ("", b'H' | b'F') | ("1" | "7" | "4" | "8", b'~') if self.across_lines() => {}
            ("", b'H') | ("1" | "7", b'~') => self.cursor = 0,
            ("", b'F') | ("4" | "8", b'~') => self.cursor = self.line.len(),
            ("3", b'~') => self.delete(),
            ("200", b'~') => self.pasting = true,
            ("201", b'~') => self.pasting = false,
            ("2", b'~') => self.taint("overwrite mode (Insert)"),
            ("5" | "6", b'~') => self.taint("history recall (page up/down)"),
            _ => self.taint("an editing key the gateway cannot follow"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn line(input: &[u8]) -> Line {
        let mut e = LineEditor::new();
        let (n, l) = e.feed(input);
        assert_eq!(n, input.len());
        fed_line(l).unwrap()
    }

    fn fed_line(f: Fed) -> Option<Line> {
        match f {
            Fed::Line(l) => Some(l),
            _ => None,
        }
    }

    #[test]
    fn plain_and_edited_lines() {
        assert_eq!(line(b"uptime\r").text, "uptime");
        assert_eq!(line(b"uptimx\x7fe\r").text, "uptime");
        assert_eq!(line(b"rm -rf /\x15ls\r").text, "ls");
        assert_eq!(line(b"echo foo bar\x17baz\r").text, "echo foo baz");
        assert_eq!(line(b"cat \x1b[D\x1b[Da\r").text, "caat ");
        assert_eq!(line(b"ls\x01s\x05 -l\r").text, "sls -l");
        assert_eq!(line(b"abc\x1b[H\x1b[3~\r").text, "bc");
        assert_eq!(line(b"abc\x1bOH\x0b\r").text, "");
        assert_eq!(line("echo héllo\r".as_bytes()).text, "echo héllo");
        assert_eq!(line(b"rm x\x03ls\r").text, "ls");
    }

    #[test]
    fn history_and_completion_are_unreliable() {
        let l = line(b"\x1b[A\r");
        assert!(!l.reliable);
        let l = line(b"cat /etc/pas\t\r");
        assert!(!l.reliable);
        assert_eq!(l.why, Some("Tab completion"));
        let l = line(b"\x12ssh\r");
        assert!(!l.reliable);
        // Reliability resets on the next line.
        let mut e = LineEditor::new();
        let (n, l) = e.feed(b"\t\rls\r");
        assert_eq!(n, 2);
        assert!(!fed_line(l).unwrap().reliable);
        let (_, l) = e.feed(b"ls\r");
        assert!(fed_line(l).unwrap().reliable);
    }

    #[test]
    fn feed_stops_at_enter_and_keeps_partial_input() {
        let mut e = LineEditor::new();
        assert_eq!(e.feed(b"ec"), (2, Fed::Keys));
        let (n, l) = e.feed(b"ho hi\recho 2\r");
        assert_eq!(n, 6);
        assert_eq!(fed_line(l).unwrap().text, "echo hi");
        let (n, l) = e.feed(b"echo 2\r");
        assert_eq!((n, fed_line(l).unwrap().text.as_str()), (7, "echo 2"));
        // Bracketed paste of two lines: each newline completes a line.
        let mut e = LineEditor::new();
        let (_, l) = e.feed(b"\x1b[200~ls\nid\x1b[201~");
        let l = fed_line(l).unwrap();
        assert_eq!(l.text, "ls");
        assert!(l.pasted);
    }

    #[test]
    fn a_refused_paste_is_discarded_to_its_end() {
        let mut e = LineEditor::new();
        let input = b"\x1b[200~rm x\nls\nid\x1b[20\x1b[201~ok\r";
        let (n, l) = e.feed(input);
        assert!(fed_line(l).unwrap().pasted);
        e.discard_paste();
        // The rest of the paste, split anywhere, is dropped up to its end.
        let rest = input.get(n..).unwrap();
        let (m, f) = e.feed(rest.get(..4).unwrap());
        assert_eq!((m, f), (4, Fed::Discarded));
        let (k, f) = e.feed(rest.get(4..).unwrap());
        assert_eq!(f, Fed::Discarded);
        assert_eq!(rest.get(4 + k..).unwrap(), b"ok\r");
        let l = line(b"ok\r");
        assert!(!l.pasted);
    }

    #[test]
    fn a_reopened_line_continues_with_a_newline() {
        let mut e = LineEditor::new();
        let (_, l) = e.feed(b"for i in 1 2; do\r");
        let l = fed_line(l).unwrap();
        assert!(l.at_end);
        e.reopen(&l);
        let (_, l) = e.feed(b"echo $i\r");
        let l = fed_line(l).unwrap();
        e.reopen(&l);
        let (_, l) = e.feed(b"done\r");
        let l = fed_line(l).unwrap();
        assert_eq!(l.text, "for i in 1 2; do\necho $i\ndone");
        assert!(l.reliable);
        // Keys that act on "the line" are not followed once there are several.
        for keys in [&b"x\x15\r"[..], b"\x01x\r", b"\x1b[Hx\r", b"\x7f\x7f\r"] {
            let mut e = LineEditor::new();
            let (_, l) = e.feed(b"echo 'a\r");
            e.reopen(&fed_line(l).unwrap());
            let (_, l) = e.feed(keys);
            assert!(!fed_line(l).unwrap().reliable, "{keys:?}");
        }
        // Within one line of the buffer, plain editing is followed.
        let mut e = LineEditor::new();
        let (_, l) = e.feed(b"echo 'a\r");
        e.reopen(&fed_line(l).unwrap());
        let (_, l) = e.feed(b"bx\x7fc'\r");
        let l = fed_line(l).unwrap();
        assert_eq!((l.text.as_str(), l.reliable), ("echo 'a\nbc'", true));
    }
}
