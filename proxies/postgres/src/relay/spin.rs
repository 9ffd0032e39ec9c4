//! Busy polling: when the gateway is otherwise idle, a session that has just
//! forwarded a message watches the socket its answer will come from for a short
//! while before parking its thread.
//!
//! Parking costs a wake-up per message: a futex or `epoll_wait` return, and on a
//! virtual machine an inter-processor interrupt to a halted vCPU, tens of
//! microseconds on the critical path of every statement. A quick statement's answer
//! often arrives sooner than that. Spinning only pays while nobody else needs the
//! CPU, so a session spins only when
//! - no other session of the proxy has handled a message for [`QUIET`],
//! - no other session has a statement in flight,
//! - and no other session is spinning;
//!
//! and it stops as soon as another session handles a message. Under load from
//! several sessions the proxy does not spin.
//!
//! The same gate ([`Spinner::alone`]) lets a lone session write its pending result
//! events right after its client has the answer, while the client reads it, instead
//! of ahead of its next request: the CPU is idle then, and the next statement's
//! critical path no longer encodes and hashes them.

use std::io::ErrorKind;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use socket2::Socket;

/// How long the proxy must have served only this session before it may spin.
pub const QUIET: Duration = Duration::from_millis(1);

/// Proxy-wide load, shared by its sessions.
#[derive(Debug, Default)]
pub struct Load {
    /// Sessions with a message forwarded upstream and not yet answered.
    busy: AtomicUsize,
    /// A session is spinning.
    spinning: AtomicBool,
    /// The session that handled the proxy's latest message.
    last: AtomicU64,
    /// Session numbers.
    next: AtomicU64,
    /// Reads made by busy polling (for tests and diagnosis).
    reads: AtomicU64,
    /// Log writes of results made while a lone session's client read its answer.
    idle_writes: AtomicU64,
}

impl Load {
    /// Sessions with a statement in flight.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// Reads made by busy polling since the proxy started.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Counts a read made by busy polling.
    pub fn count_read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Result writes made while a lone session's client read its answer.
    pub fn idle_writes(&self) -> u64 {
        self.idle_writes.load(Ordering::Relaxed)
    }

    /// Counts a result write made in idle time.
    pub fn count_idle_write(&self) {
        self.idle_writes.fetch_add(1, Ordering::Relaxed);
    }
}

/// One session's view of the load: whether it is busy itself.
#[derive(Debug)]
pub struct Spinner {
    load: std::sync::Arc<Load>,
    id: u64,
    /// When this session last found that another had handled a message since its
    /// own previous one.
    switched: Instant,
    busy: bool,
    budget: Duration,
}

impl Spinner {
    /// A session's spinner; a zero `budget` never spins.
    pub fn new(load: std::sync::Arc<Load>, budget: Duration) -> Self {
        let id = load.next.fetch_add(1, Ordering::Relaxed) + 1;
        Self {
            load,
            id,
            switched: Instant::now(),
            busy: false,
            budget,
        }
    }

    /// Records that this session handled a message.
    pub fn touch(&mut self) {
        if self.load.last.swap(self.id, Ordering::Relaxed) != self.id {
            self.switched = Instant::now();
        }
    }

    /// Whether another session handled a message, or has one in flight.
    fn others_active(&self) -> bool {
        self.load.last.load(Ordering::Relaxed) != self.id
            || self.load.busy() > usize::from(self.busy)
    }

    /// Records whether this session has a message in flight.
    pub fn set_busy(&mut self, busy: bool) {
        if busy != self.busy {
            if busy {
                self.load.busy.fetch_add(1, Ordering::Relaxed);
            } else {
                self.load.busy.fetch_sub(1, Ordering::Relaxed);
            }
            self.busy = busy;
        }
    }

    /// Whether this session has had the proxy to itself for [`QUIET`] and may use
    /// idle CPU (always false with a zero budget): spin, or write its pending
    /// results while its client reads an answer instead of before its next request.
    pub fn alone(&self) -> bool {
        !self.budget.is_zero() && self.switched.elapsed() >= QUIET && !self.others_active()
    }

    /// Spins until `socket` has bytes (or an end) to read, up to the budget, when
    /// no other session is busy and no other session spins. Returns whether the
    /// socket became readable.
    pub fn wait_readable(&self, socket: &Socket) -> bool {
        if !self.alone() {
            return false;
        }
        if self
            .load
            .spinning
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let started = Instant::now();
        let mut byte = [MaybeUninit::<u8>::uninit()];
        let readable = loop {
            match socket.peek(&mut byte) {
                // Bytes, or the end of the stream: either way the reader must run.
                Ok(_) => break true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // An error is the reader's to report.
                Err(_) => break true,
            }
            if started.elapsed() >= self.budget || self.others_active() {
                break false;
            }
            std::hint::spin_loop();
        };
        self.load.spinning.store(false, Ordering::Release);
        readable
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.set_busy(false);
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;

    use super::*;

    /// A connected loopback pair: (the side written to, the watched side).
    fn pair() -> (TcpStream, Socket) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let writer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (watched, _) = l.accept().unwrap();
        watched.set_nonblocking(true).unwrap();
        (writer, Socket::from(watched))
    }

    /// A spinner on `load` that has had the proxy to itself for longer than QUIET.
    fn quiet_spinner(load: &Arc<Load>, budget: Duration) -> Spinner {
        let mut s = Spinner::new(load.clone(), budget);
        s.touch();
        std::thread::sleep(QUIET * 3);
        s
    }

    #[test]
    fn spins_until_the_answer_arrives() {
        let load = Arc::new(Load::default());
        let (mut writer, watched) = pair();
        let s = quiet_spinner(&load, Duration::from_secs(5));
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            writer.write_all(b"Z").unwrap();
            writer
        });
        let started = Instant::now();
        assert!(s.wait_readable(&watched));
        assert!(started.elapsed() >= Duration::from_millis(25));
        assert!(
            !load.spinning.load(Ordering::Relaxed),
            "the spin slot is released"
        );
        drop(late.join());
    }

    #[test]
    fn gives_up_after_the_budget() {
        let load = Arc::new(Load::default());
        let (_writer, watched) = pair();
        let s = quiet_spinner(&load, Duration::from_millis(20));
        let started = Instant::now();
        assert!(!s.wait_readable(&watched));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn a_zero_budget_never_spins() {
        let load = Arc::new(Load::default());
        let (mut writer, watched) = pair();
        writer.write_all(b"Z").unwrap();
        let s = quiet_spinner(&load, Duration::ZERO);
        assert!(!s.wait_readable(&watched));
    }

    #[test]
    fn a_session_does_not_spin_while_others_are_active() {
        let load = Arc::new(Load::default());
        let (_writer, watched) = pair();
        let budget = Duration::from_secs(5);

        // Another session handled a message after this one's latest.
        let s = quiet_spinner(&load, budget);
        let mut other = Spinner::new(load.clone(), budget);
        other.touch();
        let started = Instant::now();
        assert!(!s.wait_readable(&watched));
        assert!(started.elapsed() < Duration::from_secs(1));

        // This session handled one since, but too recently after the other's.
        let mut s = s;
        s.touch();
        let started = Instant::now();
        assert!(!s.wait_readable(&watched));
        assert!(started.elapsed() < Duration::from_secs(1));

        // Quiet again, but the other has a statement in flight.
        std::thread::sleep(QUIET * 3);
        other.set_busy(true);
        assert_eq!(load.busy(), 1);
        let started = Instant::now();
        assert!(!s.wait_readable(&watched));
        assert!(started.elapsed() < Duration::from_secs(1));

        // Its statement answered (or its session gone): this one may spin again.
        drop(other);
        assert_eq!(load.busy(), 0);
        let mut s = s;
        s.budget = Duration::from_millis(10);
        let started = Instant::now();
        assert!(!s.wait_readable(&watched));
        assert!(started.elapsed() >= Duration::from_millis(10), "it spun");
    }

    #[test]
    fn a_spin_stops_when_another_session_handles_a_message() {
        let load = Arc::new(Load::default());
        let (_writer, watched) = pair();
        let s = quiet_spinner(&load, Duration::from_secs(5));
        let mut other = Spinner::new(load.clone(), Duration::ZERO);
        let interrupter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            other.touch();
        });
        let started = Instant::now();
        assert!(!s.wait_readable(&watched));
        let spun = started.elapsed();
        assert!(
            spun >= Duration::from_millis(25) && spun < Duration::from_secs(2),
            "{spun:?}"
        );
        interrupter.join().unwrap();
    }

    #[test]
    fn one_session_spins_at_a_time() {
        let load = Arc::new(Load::default());
        let (_writer, watched) = pair();
        let s = quiet_spinner(&load, Duration::from_secs(5));
        load.spinning.store(true, Ordering::Relaxed);
        let started = Instant::now();
        assert!(!s.wait_readable(&watched));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_session_is_alone_only_after_a_quiet_spell_of_its_own() {
        let load = Arc::new(Load::default());
        let mut fresh = Spinner::new(load.clone(), Duration::from_micros(50));
        fresh.touch();
        assert!(!fresh.alone(), "not before QUIET has passed");
        let mut s = quiet_spinner(&load, Duration::from_micros(50));
        assert!(s.alone());
        s.set_busy(true);
        assert!(s.alone(), "its own statement in flight does not count");
        let mut other = Spinner::new(load.clone(), Duration::from_micros(50));
        other.set_busy(true);
        assert!(!s.alone(), "another session has a statement in flight");
        other.set_busy(false);
        other.touch();
        assert!(!s.alone(), "another session handled a message");
        let off = quiet_spinner(&Arc::new(Load::default()), Duration::ZERO);
        assert!(!off.alone(), "busy_poll = 0 turns it off");
    }
}
