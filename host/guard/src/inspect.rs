//! What a waiting system call will do, read from the caller: the program an exec
//! will run (resolved as the kernel will: relative to the caller's directory or
//! descriptor, through symlinks, through `#!`), its argv, and the address a connect
//! names.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::sys;

/// Longest path read from a caller.
pub const PATH_MAX: usize = 4096;
/// Most argv bytes judged; a longer argv is refused (`E2BIG`), not judged in part.
pub const ARGV_MAX: usize = 1 << 20;
/// `#!` nesting the kernel follows.
const SCRIPT_DEPTH: usize = 4;

/// Why a call cannot be judged.
#[derive(Debug)]
pub enum Unjudgeable {
    /// The caller's memory could not be read (it went away, or bad pointers):
    /// fail the call with this errno.
    Errno(i32),
}

impl From<io::Error> for Unjudgeable {
    fn from(e: io::Error) -> Self {
        Self::Errno(e.raw_os_error().unwrap_or(libc::EFAULT))
    }
}

/// Page size the reader works in.
const PAGE: u64 = 4096;

/// Reads a waiting caller's memory a page at a time, keeping the last page: an
/// argv's pointer array and its strings usually sit on a few pages, so a whole
/// command line costs a few system calls rather than two per argument.
pub struct Mem {
    pid: i32,
    page: u64,
    buf: Box<[u8; PAGE as usize]>,
    len: usize,
}

impl Mem {
    /// A reader of process (or thread) `pid`'s memory.
    pub fn new(pid: i32) -> Self {
        Self {
            pid,
            page: u64::MAX,
            buf: Box::new([0; PAGE as usize]),
            len: 0,
        }
    }

    /// The readable bytes from `addr` to the end of its page (empty when unmapped).
    fn at(&mut self, addr: u64) -> Result<&[u8], Unjudgeable> {
        let page = addr - addr % PAGE;
        if page != self.page {
            // A page is mapped whole or not at all: one read of it cannot fault
            // part-way.
            self.len = sys::read_mem(self.pid, page, &mut self.buf[..])?;
            self.page = page;
        }
        let off = usize::try_from(addr - page).unwrap_or(usize::MAX);
        Ok(self.buf.get(off..self.len).unwrap_or_default())
    }

    /// A NUL-terminated string at `addr`, at most `max` bytes.
    pub fn cstr(&mut self, addr: u64, max: usize) -> Result<Vec<u8>, Unjudgeable> {
        if addr == 0 {
            return Err(Unjudgeable::Errno(libc::EFAULT));
        }
        let mut out = Vec::new();
        let mut at = addr;
        loop {
            let got = self.at(at)?;
            if got.is_empty() {
                return Err(Unjudgeable::Errno(libc::EFAULT));
            }
            if let Some(end) = got.iter().position(|&b| b == 0) {
                out.extend_from_slice(got.get(..end).unwrap_or_default());
                return Ok(out);
            }
            out.extend_from_slice(got);
            if out.len() > max {
                return Err(Unjudgeable::Errno(libc::ENAMETOOLONG));
            }
            at += got.len() as u64;
        }
    }

    /// A pointer (8 bytes) at `addr`.
    fn ptr(&mut self, addr: u64) -> Result<u64, Unjudgeable> {
        let mut p = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            let chunk = self.at(addr + got as u64)?;
            if chunk.is_empty() {
                return Err(Unjudgeable::Errno(libc::EFAULT));
            }
            let n = chunk.len().min(8 - got);
            p.get_mut(got..got + n)
                .unwrap_or_default()
                .copy_from_slice(chunk.get(..n).unwrap_or_default());
            got += n;
        }
        Ok(u64::from_le_bytes(p))
    }

    /// The argv array at `addr`.
    pub fn argv(&mut self, addr: u64) -> Result<Vec<String>, Unjudgeable> {
        let mut argv = Vec::new();
        if addr == 0 {
            return Ok(argv);
        }
        let mut total = 0usize;
        let mut at = addr;
        loop {
            let ptr = self.ptr(at)?;
            if ptr == 0 {
                return Ok(argv);
            }
            let s = self.cstr(ptr, ARGV_MAX)?;
            total += s.len() + 1;
            if total > ARGV_MAX {
                return Err(Unjudgeable::Errno(libc::E2BIG));
            }
            argv.push(String::from_utf8_lossy(&s).into_owned());
            at += 8;
        }
    }
}

/// The program an exec will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The path as the caller wrote it.
    pub path: String,
    /// The real file: every symlink and `..` resolved, from the caller's view.
    pub exe: String,
    /// Device and inode of `exe`, to recognise it after the exec.
    pub id: (u64, u64),
    /// For a `#!` script: the interpreter that will really run (resolved), else None.
    pub interpreter: Option<String>,
    /// Device and inode of what the kernel will map (the interpreter for a script).
    pub runs: (u64, u64),
    /// The path is not a file on disk (a memfd or a deleted file).
    pub anonymous: bool,
}

/// Resolves an exec's target for thread `pid` of process `process`. `dirfd` is
/// `AT_FDCWD` for `execve`.
pub fn resolve(
    pid: i32,
    process: i32,
    dirfd: i32,
    path: &[u8],
    flags: u64,
) -> Result<Program, Unjudgeable> {
    let given = String::from_utf8_lossy(path).into_owned();
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    // `/proc/self` read from here would be the guard: name the caller instead. (A
    // symlink that leads there indirectly resolves to the guard's file; the exec
    // stop then sees another image than the one judged and kills the process.)
    let given_for_lookup = if let Some(rest) = given.strip_prefix("/proc/self/") {
        format!("/proc/{process}/{rest}")
    } else if let Some(rest) = given.strip_prefix("/proc/thread-self/") {
        format!("/proc/{process}/task/{pid}/{rest}")
    } else {
        given.clone()
    };
    let empty_path = flags & libc::AT_EMPTY_PATH as u64 != 0 && path.is_empty();
    let link: PathBuf = if empty_path {
        proc_dir.join(format!("fd/{dirfd}"))
    } else if given_for_lookup.starts_with("/proc/") {
        PathBuf::from(&given_for_lookup)
    } else if path.first() == Some(&b'/') {
        // Absolute: resolved against the caller's root.
        proc_dir.join("root").join(given.trim_start_matches('/'))
    } else if dirfd == libc::AT_FDCWD {
        proc_dir.join("cwd").join(&given)
    } else {
        proc_dir.join(format!("fd/{dirfd}")).join(&given)
    };
    // The file itself, reached as the kernel will reach it (every symlink followed);
    // its name is then the kernel's own for it: a real path, or a memfd's or deleted
    // file's name.
    let (file, meta) = open_path(&link)?;
    if !meta.is_file() {
        return Err(Unjudgeable::Errno(libc::EACCES));
    }
    let id = (meta.dev(), meta.ino());
    let exe = std::fs::read_link(fd_path(&file))?
        .to_string_lossy()
        .into_owned();
    let anonymous =
        !exe.starts_with('/') || exe.ends_with(" (deleted)") || exe.starts_with("/memfd:");
    let (interpreter, runs) = interpreter_of(pid, &fd_path(&file), id)?;
    Ok(Program {
        path: given,
        exe,
        id,
        interpreter,
        runs,
        anonymous,
    })
}

/// Opens `path` for its identity only (`O_PATH`: no read, no device opened, no FIFO
/// waited on), following every symlink; the file and its metadata.
fn open_path(path: &Path) -> io::Result<(std::fs::File, std::fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    Ok((file, meta))
}

/// The guard's own name for an open file (`/proc/self/fd/N`). Paths through
/// `/proc/PID/root` resolve in the guard's view; the caller shares the guard's root
/// (same mount namespace), so it is the same path.
fn fd_path(file: &std::fs::File) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Follows `#!` lines as the kernel does.
fn interpreter_of(
    pid: i32,
    file: &Path,
    id: (u64, u64),
) -> Result<(Option<String>, (u64, u64)), Unjudgeable> {
    let mut current = file.to_path_buf();
    let mut runs = id;
    let mut interpreter = None;
    for _ in 0..SCRIPT_DEPTH {
        let Some(next) = shebang(&current) else {
            return Ok((interpreter, runs));
        };
        let link = PathBuf::from(format!("/proc/{pid}/root")).join(next.trim_start_matches('/'));
        let (file, meta) = open_path(&link)?;
        let real = std::fs::read_link(fd_path(&file))?;
        runs = (meta.dev(), meta.ino());
        interpreter = Some(real.to_string_lossy().into_owned());
        current = real;
    }
    // Deeper than the kernel follows: the exec will fail with ELOOP anyway.
    Err(Unjudgeable::Errno(libc::ELOOP))
}

/// The interpreter path of a `#!` file, if it is one.
fn shebang(file: &Path) -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(file).ok()?;
    let mut head = [0u8; 256];
    let n = f.read(&mut head).ok()?;
    let head = head.get(..n)?;
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let interp = line.split_ascii_whitespace().next()?;
    Some(interp.to_owned())
}

/// The caller's working directory.
pub fn cwd(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/cwd"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Device and inode of the running image of `pid` (`/proc/PID/exe`).
pub fn running_id(pid: i32) -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata(format!("/proc/{pid}/exe"))?;
    Ok((meta.dev(), meta.ino()))
}

/// The running image of `pid` (`/proc/PID/exe`) and its device and inode.
pub fn running(pid: i32) -> io::Result<(String, (u64, u64))> {
    let path = std::fs::read_link(format!("/proc/{pid}/exe"))?;
    let meta = std::fs::metadata(format!("/proc/{pid}/exe"))?;
    Ok((
        path.to_string_lossy().into_owned(),
        (meta.dev(), meta.ino()),
    ))
}

/// The argv the kernel gave `pid` (`/proc/PID/cmdline`).
pub fn cmdline(pid: i32) -> io::Result<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline"))?;
    let mut v: Vec<String> = raw
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    // The area ends with a NUL, which leaves one empty element.
    if raw.last() == Some(&0) {
        v.pop();
    }
    Ok(v)
}

/// One process above the caller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ancestor {
    /// Process id.
    pub pid: i32,
    /// Its program.
    pub exe: String,
}

/// Process ids and programs from the parent of `process` up to (not including)
/// `stop`. `known` names the program of a process when the caller already knows it
/// (saves reading `/proc/PID/exe`).
pub fn ancestors(process: i32, stop: i32, known: impl Fn(i32) -> Option<String>) -> Vec<Ancestor> {
    let mut out = Vec::new();
    let mut at = ppid(process);
    while let Some(p) = at {
        if p == stop || p <= 1 || out.len() >= 32 {
            break;
        }
        out.push(Ancestor {
            pid: p,
            exe: known(p)
                .or_else(|| running(p).map(|(e, _)| e).ok())
                .unwrap_or_default(),
        });
        at = ppid(p);
    }
    out
}

fn status_field(pid: i32, name: &str) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// The parent of `pid`, from `/proc/PID/stat` (much cheaper for the kernel to write
/// than `status`): the field after the state, after the command name's last `)`.
fn ppid(pid: i32) -> Option<i32> {
    let s = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let after = s.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(s.get(after + 1..)?).ok()?;
    rest.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// The thread group (process) of thread `tid`: itself when it leads its group (one
/// system call), else read from `status`.
pub fn tgid(tid: i32) -> Option<i32> {
    match sys::leads_thread_group(tid)? {
        true => Some(tid),
        false => status_field(tid, "Tgid:"),
    }
}

/// A connect's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// IPv4 or IPv6 address and port.
    Inet {
        /// `inet` or `inet6`.
        family: &'static str,
        /// Address text.
        address: String,
        /// Port.
        port: u16,
    },
    /// A Unix socket path (`@name` for the abstract namespace).
    Unix(String),
    /// `AF_UNSPEC` (dissolves a UDP association) or netlink: local, not judged.
    Local,
    /// Any other family.
    Other(u16),
}

/// Reads the socket address a connect names.
pub fn read_sockaddr(pid: i32, addr: u64, len: u64) -> Result<(Vec<u8>, Destination), Unjudgeable> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if addr == 0 || !(2..=128).contains(&len) {
        return Err(Unjudgeable::Errno(libc::EINVAL));
    }
    let mut raw = vec![0u8; len];
    if sys::read_mem(pid, addr, &mut raw)? != len {
        return Err(Unjudgeable::Errno(libc::EFAULT));
    }
    let family = u16::from_ne_bytes([
        raw.first().copied().unwrap_or(0),
        raw.get(1).copied().unwrap_or(0),
    ]);
    let dest = match i32::from(family) {
        libc::AF_INET if len >= 8 => {
            let port = u16::from_be_bytes([
                raw.get(2).copied().unwrap_or(0),
                raw.get(3).copied().unwrap_or(0),
            ]);
            let mut a = [0u8; 4];
            a.copy_from_slice(raw.get(4..8).unwrap_or(&[0; 4]));
            Destination::Inet {
                family: "inet",
                address: std::net::Ipv4Addr::from(a).to_string(),
                port,
            }
        }
        libc::AF_INET6 if len >= 24 => {
            let port = u16::from_be_bytes([
                raw.get(2).copied().unwrap_or(0),
                raw.get(3).copied().unwrap_or(0),
            ]);
            let mut a = [0u8; 16];
            a.copy_from_slice(raw.get(8..24).unwrap_or(&[0; 16]));
            let ip = std::net::Ipv6Addr::from(a);
            // A v4-mapped address is the IPv4 host it maps.
            let address = ip
                .to_ipv4_mapped()
                .map_or_else(|| ip.to_string(), |v4| v4.to_string());
            Destination::Inet {
                family: "inet6",
                address,
                port,
            }
        }
        libc::AF_UNIX => {
            let path = raw.get(2..).unwrap_or_default();
            let text = if path.first() == Some(&0) {
                format!(
                    "@{}",
                    String::from_utf8_lossy(path.get(1..).unwrap_or_default())
                )
            } else {
                let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                String::from_utf8_lossy(path.get(..end).unwrap_or_default()).into_owned()
            };
            Destination::Unix(text)
        }
        libc::AF_UNSPEC | libc::AF_NETLINK => Destination::Local,
        _ => Destination::Other(family),
    };
    Ok((raw, dest))
}
