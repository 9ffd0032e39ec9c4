//! The kernel interfaces the guard needs, each wrapped once: seccomp user
//! notification, ptrace, pidfd, SCM_RIGHTS, process memory. Everything unsafe in the
//! crate is in this file; every function checks the return value and turns failures
//! into `io::Error`.

#![allow(
    unsafe_code,
    reason = "system calls without safe wrappers in std; ADR 0023"
)]

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn check_int(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// One classic-BPF instruction.
pub type Insn = libc::sock_filter;

/// Sets `no_new_privs` and installs `program` as a seccomp filter with a new user
/// notification listener, returning the listener. Runs in the child between fork and
/// exec, so it only makes system calls (no allocation).
pub fn install_filter(program: &[Insn]) -> io::Result<RawFd> {
    let len = u16::try_from(program.len()).map_err(|_| io::Error::other("filter too long"))?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: prctl with integer arguments.
    check_int(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies it.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &raw const prog,
        )
    })?;
    RawFd::try_from(fd).map_err(|_| io::Error::other("listener fd out of range"))
}

/// A system call waiting for the guard's answer.
#[derive(Debug, Clone, Copy)]
pub struct Notification {
    /// The notification's cookie.
    pub id: u64,
    /// The calling thread (as seen from the guard's PID namespace).
    pub pid: i32,
    /// System call number.
    pub nr: i32,
    /// Audit architecture.
    pub arch: u32,
    /// Arguments.
    pub args: [u64; 6],
}

/// Waits for the next notification on `listener`.
pub fn notif_recv(listener: RawFd) -> io::Result<Notification> {
    // SAFETY: the kernel requires a zeroed struct; all-zero is valid for it.
    let mut n: libc::seccomp_notif = unsafe { zeroed() };
    // SAFETY: `n` is a valid, writable seccomp_notif.
    check_int(unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &raw mut n) })?;
    Ok(Notification {
        id: n.id,
        pid: i32::try_from(n.pid).unwrap_or(0),
        nr: n.data.nr,
        arch: n.data.arch,
        args: n.data.args,
    })
}

/// Whether the notification `id` is still pending (its caller alive and waiting).
pub fn notif_id_valid(listener: RawFd, id: u64) -> bool {
    // SAFETY: reads one u64 from `id`.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &raw const id) == 0 }
}

/// The answer to a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Let the kernel run the system call as the caller made it.
    Continue,
    /// Fail it with this errno.
    Fail(i32),
    /// Complete it with this return value (the guard did the work).
    Value(i64),
}

/// Sends the answer for notification `id`. `ENOENT` (the caller went away) is not an
/// error.
pub fn notif_send(listener: RawFd, id: u64, answer: Answer) -> io::Result<()> {
    // SAFETY: all-zero is a valid seccomp_notif_resp.
    let mut r: libc::seccomp_notif_resp = unsafe { zeroed() };
    r.id = id;
    match answer {
        Answer::Continue => {
            r.flags = u32::try_from(libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE).unwrap_or(1)
        }
        Answer::Fail(errno) => r.error = -errno,
        Answer::Value(v) => r.val = v,
    }
    // SAFETY: `r` is a valid seccomp_notif_resp.
    match check_int(unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &raw mut r) }) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads `buf.len()` bytes of process `pid`'s memory at `addr`; returns how many were
/// read (short at the end of a mapping).
pub fn read_mem(pid: i32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: usize::try_from(addr).unwrap_or(0) as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, writable for its length; `remote` is only read by
    // the kernel, in the other process.
    let n = unsafe { libc::process_vm_readv(pid, &raw const local, 1, &raw const remote, 1, 0) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `prctl(PR_SET_DUMPABLE, 0)`: other processes of the same user can no longer read
/// the guard's memory or environment, or attach to it.
pub fn set_not_dumpable() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    check_int(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(drop)
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphaned descendants are re-parented to the
/// guard, which keeps tracing them.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    check_int(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(drop)
}

/// Sends `fd` over the Unix socket `sock`, with `payload` (the sender's pid).
pub fn send_fd(sock: RawFd, fd: RawFd, payload: i32) -> io::Result<()> {
    let mut bytes = payload.to_ne_bytes();
    let mut iov = libc::iovec {
        iov_base: bytes.as_mut_ptr().cast(),
        iov_len: 4,
    };
    // Room for one cmsghdr with one int, aligned.
    let mut space = [0u64; 4];
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<RawFd>() as u32) } as usize;
    // SAFETY: msg_control points at `space`, large enough for one cmsghdr with an int.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&raw const msg);
        if c.is_null() {
            return Err(io::Error::other("no room for SCM_RIGHTS"));
        }
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
    }
    // SAFETY: `msg` and everything it points at are valid for the call.
    check(unsafe { libc::sendmsg(sock, &raw const msg, 0) } as libc::c_long).map(drop)
}

/// Receives one fd and its payload sent with [`send_fd`].
pub fn recv_fd(sock: RawFd) -> io::Result<(OwnedFd, i32)> {
    let mut bytes = [0u8; 4];
    let mut iov = libc::iovec {
        iov_base: bytes.as_mut_ptr().cast(),
        iov_len: 4,
    };
    let mut space = [0u64; 4];
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 4]>();
    // SAFETY: `msg` and everything it points at are valid for the call.
    let n = check(
        unsafe { libc::recvmsg(sock, &raw mut msg, libc::MSG_CMSG_CLOEXEC) } as libc::c_long,
    )?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the session's process exited before installing its filter",
        ));
    }
    // SAFETY: the kernel filled msg_control; CMSG_* walk it within msg_controllen.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&raw const msg);
        if c.is_null() || (*c).cmsg_level != libc::SOL_SOCKET || (*c).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::other("no descriptor in the message"));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>());
        Ok((OwnedFd::from_raw_fd(fd), i32::from_ne_bytes(bytes)))
    }
}

/// A Unix socket pair (close-on-exec).
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for two descriptors.
    check_int(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    let [a, b] = fds;
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(a), OwnedFd::from_raw_fd(b)) })
}

/// Reads exactly one byte (blocking); used as a go signal between fork and exec.
pub fn read_byte(fd: RawFd) -> io::Result<u8> {
    let mut b = [0u8];
    loop {
        // SAFETY: reads at most one byte into `b`.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        if n == 1 {
            return Ok(b[0]);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "guard went away",
            ));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Writes one byte.
pub fn write_byte(fd: RawFd, b: u8) -> io::Result<()> {
    // SAFETY: writes one byte from `b`.
    let n = unsafe { libc::write(fd, (&raw const b).cast(), 1) };
    if n == 1 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `PTRACE_SEIZE` with `options`.
pub fn ptrace_seize(pid: i32, options: libc::c_int) -> io::Result<()> {
    // SAFETY: ptrace with integer arguments; `data` carries the options.
    check(unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0usize, options as usize) }).map(drop)
}

/// Resumes a stopped tracee, delivering `signal` (0 for none).
pub fn ptrace_cont(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: ptrace with integer arguments.
    check(unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0usize, signal as usize) }).map(drop)
}

/// `PTRACE_LISTEN`: leaves a tracee in its group-stop (job control) until it is
/// continued by a signal.
pub fn ptrace_listen(pid: i32) -> io::Result<()> {
    // SAFETY: ptrace with integer arguments.
    check(unsafe { libc::ptrace(libc::PTRACE_LISTEN, pid, 0usize, 0usize) }).map(drop)
}

/// `PTRACE_GETEVENTMSG` (for an exec stop: the thread id that called exec).
pub fn ptrace_event_msg(pid: i32) -> io::Result<u64> {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: the kernel writes one c_ulong to `msg`.
    check(unsafe { libc::ptrace(libc::PTRACE_GETEVENTMSG, pid, 0usize, &raw mut msg) })?;
    Ok(msg)
}

/// A wait status.
#[derive(Debug, Clone, Copy)]
pub struct Status(pub libc::c_int);

impl Status {
    /// Exit code, if the process exited.
    pub fn exited(self) -> Option<i32> {
        libc::WIFEXITED(self.0).then(|| libc::WEXITSTATUS(self.0))
    }
    /// Terminating signal, if the process was killed.
    pub fn signaled(self) -> Option<i32> {
        libc::WIFSIGNALED(self.0).then(|| libc::WTERMSIG(self.0))
    }
    /// Stop signal and ptrace event, if the process stopped.
    pub fn stopped(self) -> Option<(i32, i32)> {
        libc::WIFSTOPPED(self.0).then(|| (libc::WSTOPSIG(self.0), self.0 >> 16))
    }
}

/// `waitpid(-1, __WALL)`: the next event of any child or tracee.
pub fn wait_any() -> io::Result<(i32, Status)> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &raw mut status, libc::__WALL) };
        if pid > 0 {
            return Ok((pid, Status(status)));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Sends `signal` to process `pid`.
pub fn kill(pid: i32, signal: i32) {
    // SAFETY: kill with integer arguments; failure (already gone) is fine.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Whether task `tid` leads its thread group (is a process, not one of its other
/// threads): `pidfd_open` accepts only leaders. `None` when it is gone.
pub fn leads_thread_group(tid: i32) -> Option<bool> {
    // SAFETY: pidfd_open with integer arguments.
    match check(unsafe { libc::syscall(libc::SYS_pidfd_open, tid, 0) }) {
        Ok(fd) => {
            // SAFETY: the descriptor was just opened and is closed once here.
            unsafe {
                libc::close(RawFd::try_from(fd).unwrap_or(-1));
            }
            Some(true)
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Some(false),
        Err(_) => None,
    }
}

/// A duplicate of descriptor `fd` of process `pid` (`pidfd_getfd`).
pub fn steal_fd(pid: i32, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open with integer arguments.
    let pidfd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    let pidfd = RawFd::try_from(pidfd).map_err(|_| io::Error::other("pidfd out of range"))?;
    // SAFETY: `pidfd` was just opened and is owned here.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // SAFETY: pidfd_getfd with integer arguments.
    let dup = check(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) })?;
    let dup = RawFd::try_from(dup).map_err(|_| io::Error::other("fd out of range"))?;
    // SAFETY: the new descriptor is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// `connect(fd, addr)` with a raw socket address; returns the errno on failure.
pub fn connect_raw(fd: RawFd, addr: &[u8]) -> Result<(), i32> {
    let len = libc::socklen_t::try_from(addr.len()).map_err(|_| libc::EINVAL)?;
    // SAFETY: `addr` is readable for `len` bytes; the kernel validates its contents.
    let rc = unsafe { libc::connect(fd, addr.as_ptr().cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    }
}

/// The login shell of the current user from the password database.
pub fn login_shell() -> Option<String> {
    // SAFETY: getpwuid returns a pointer into static storage or null; read at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() || (*pw).pw_shell.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr((*pw).pw_shell)
            .to_str()
            .ok()
            .map(str::to_owned)
    }
}

/// Makes `cmd`'s child install `program` (see [`install_filter`]) between fork and
/// exec, send the listener to the guard over `sock`, and wait for the guard's go
/// byte (sent once it traces the child) before it execs. The exec itself is then the
/// first call the guard judges.
pub fn filter_before_exec(cmd: &mut std::process::Command, program: Vec<Insn>, sock: RawFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child and only makes system calls on
    // memory it owns (`program`), without allocating or taking locks.
    unsafe {
        cmd.pre_exec(move || {
            let listener = install_filter(&program)?;
            send_fd(sock, listener, libc::getpid())?;
            libc::close(listener);
            match read_byte(sock)? {
                1 => Ok(()),
                _ => Err(io::Error::other("the guard refused to start the session")),
            }
        });
    }
}

/// The process id of the caller.
pub fn getpid() -> i32 {
    std::process::id().try_into().unwrap_or(0)
}
