//! The seccomp filter every process of a guarded session runs under (ADR 0023).
//!
//! - `execve`, `execveat` and `connect` go to the guard (user notification).
//! - Ways around the guard fail: another user-notification listener (`seccomp` with
//!   `NEW_LISTENER`, which would take precedence over the guard's), children that
//!   escape tracing (`clone` with `CLONE_UNTRACED`; `clone3`, whose flags a filter
//!   cannot read, fails with `ENOSYS` and libc falls back to `clone`), writing
//!   another process's memory (`ptrace`, `process_vm_writev`), `io_uring` (it
//!   connects without a system call the filter sees), TCP Fast Open (`sendto` and
//!   `sendmsg` with `MSG_FASTOPEN` connect too), `uselib`, `userfaultfd` (memory
//!   whose reads never finish would stall the guard reading an exec's argv).
//! - Any other architecture's system calls (32-bit `int 0x80`) kill the process;
//!   x32 calls fail with `ENOSYS`.

use crate::sys::Insn;

// Classic BPF opcodes.
const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
/// Low 32 bits of argument `i` (little-endian).
const fn arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const fn ret_errno(e: i32) -> u32 {
    0x0005_0000 | (e as u32 & 0xffff)
}

/// System call numbers (x86_64).
pub mod nr {
    /// `execve`.
    pub const EXECVE: i32 = 59;
    /// `execveat`.
    pub const EXECVEAT: i32 = 322;
    /// `connect`.
    pub const CONNECT: i32 = 42;
    pub(super) const CLONE: u32 = 56;
    pub(super) const CLONE3: u32 = 435;
    pub(super) const SECCOMP: u32 = 317;
    pub(super) const PTRACE: u32 = 101;
    pub(super) const PROCESS_VM_WRITEV: u32 = 311;
    pub(super) const IO_URING_SETUP: u32 = 425;
    pub(super) const SENDTO: u32 = 44;
    pub(super) const SENDMSG: u32 = 46;
    pub(super) const SENDMMSG: u32 = 307;
    pub(super) const USELIB: u32 = 134;
    pub(super) const USERFAULTFD: u32 = 323;
}

const CLONE_UNTRACED: u32 = 0x0080_0000;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 8;
const MSG_FASTOPEN: u32 = 0x2000_0000;

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// `nr == n → ret action`.
fn on(p: &mut Vec<Insn>, n: u32, action: u32) {
    p.push(jump(JEQ_K, n, 0, 1));
    p.push(stmt(RET_K, action));
}

/// `nr == n && (arg & bits) != 0 → ret action`, otherwise allow that call. Leaves the
/// accumulator holding the system call number again for the next test.
fn on_flag(p: &mut Vec<Insn>, n: u32, arg: u32, bits: u32, action: u32) {
    p.push(jump(JEQ_K, n, 0, 4));
    p.push(stmt(LD_W_ABS, arg_lo(arg)));
    p.push(jump(JSET_K, bits, 0, 1));
    p.push(stmt(RET_K, action));
    p.push(stmt(RET_K, RET_ALLOW));
}

/// The filter program.
#[cfg(target_arch = "x86_64")]
pub fn program() -> Vec<Insn> {
    use nr::*;
    let mut p = vec![
        stmt(LD_W_ABS, ARCH),
        jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(RET_K, RET_KILL_PROCESS),
        stmt(LD_W_ABS, NR),
        jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, ret_errno(libc::ENOSYS)),
    ];
    on(&mut p, EXECVE as u32, RET_USER_NOTIF);
    on(&mut p, EXECVEAT as u32, RET_USER_NOTIF);
    on(&mut p, CONNECT as u32, RET_USER_NOTIF);
    on_flag(&mut p, CLONE, 0, CLONE_UNTRACED, ret_errno(libc::EPERM));
    on(&mut p, CLONE3, ret_errno(libc::ENOSYS));
    on_flag(
        &mut p,
        SECCOMP,
        1,
        SECCOMP_FILTER_FLAG_NEW_LISTENER,
        ret_errno(libc::EPERM),
    );
    on(&mut p, PTRACE, ret_errno(libc::EPERM));
    on(&mut p, PROCESS_VM_WRITEV, ret_errno(libc::EPERM));
    on(&mut p, IO_URING_SETUP, ret_errno(libc::EPERM));
    on(&mut p, USELIB, ret_errno(libc::EPERM));
    on(&mut p, USERFAULTFD, ret_errno(libc::EPERM));
    on_flag(&mut p, SENDTO, 3, MSG_FASTOPEN, ret_errno(libc::EOPNOTSUPP));
    on_flag(
        &mut p,
        SENDMSG,
        2,
        MSG_FASTOPEN,
        ret_errno(libc::EOPNOTSUPP),
    );
    on_flag(
        &mut p,
        SENDMMSG,
        3,
        MSG_FASTOPEN,
        ret_errno(libc::EOPNOTSUPP),
    );
    p.push(stmt(RET_K, RET_ALLOW));
    p
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, reason = "test code")]
    use super::*;

    /// Runs the program over one `seccomp_data` the way the kernel does (only the
    /// opcodes the program uses).
    fn run(p: &[Insn], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let Some(i) = p.get(pc) else { return 0 };
            pc += 1;
            match i.code {
                LD_W_ABS => {
                    let k = i.k as usize;
                    let mut w = [0u8; 4];
                    w.copy_from_slice(data.get(k..k + 4).unwrap_or(&[0; 4]));
                    acc = u32::from_le_bytes(w);
                }
                RET_K => return i.k,
                JEQ_K | JGE_K | JSET_K => {
                    let taken = match i.code {
                        JEQ_K => acc == i.k,
                        JGE_K => acc >= i.k,
                        _ => acc & i.k != 0,
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                _ => return 0,
            }
        }
    }

    #[test]
    fn the_filter_routes_and_refuses() {
        let p = program();
        let x = AUDIT_ARCH_X86_64;
        let z = [0; 6];
        assert_eq!(run(&p, 59, x, z), RET_USER_NOTIF);
        assert_eq!(run(&p, 322, x, z), RET_USER_NOTIF);
        assert_eq!(run(&p, 42, x, z), RET_USER_NOTIF);
        assert_eq!(run(&p, 0, x, z), RET_ALLOW, "read");
        assert_eq!(run(&p, 59, 0x4000_0003, z), RET_KILL_PROCESS, "i386");
        assert_eq!(run(&p, 59 | X32_SYSCALL_BIT, x, z), ret_errno(libc::ENOSYS));
        // fork-like clone is fine; CLONE_UNTRACED is not.
        assert_eq!(run(&p, 56, x, [0x0120_0011, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            run(&p, 56, x, [u64::from(CLONE_UNTRACED | 0x11), 0, 0, 0, 0, 0]),
            ret_errno(libc::EPERM)
        );
        assert_eq!(run(&p, 435, x, z), ret_errno(libc::ENOSYS));
        assert_eq!(run(&p, 317, x, [1, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, 317, x, [1, 8, 0, 0, 0, 0]), ret_errno(libc::EPERM));
        assert_eq!(run(&p, 101, x, z), ret_errno(libc::EPERM));
        assert_eq!(run(&p, 425, x, z), ret_errno(libc::EPERM));
        assert_eq!(run(&p, 323, x, z), ret_errno(libc::EPERM), "userfaultfd");
        assert_eq!(run(&p, 44, x, z), RET_ALLOW);
        assert_eq!(
            run(&p, 44, x, [3, 0, 0, u64::from(MSG_FASTOPEN), 0, 0]),
            ret_errno(libc::EOPNOTSUPP)
        );
        assert_eq!(
            run(&p, 46, x, [3, 0, u64::from(MSG_FASTOPEN), 0, 0, 0]),
            ret_errno(libc::EOPNOTSUPP)
        );
        // After a flag test that passes, later rules still apply.
        assert_eq!(run(&p, 1, x, z), RET_ALLOW, "write");
    }
}
