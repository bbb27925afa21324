//! Capabilities: which one each privileged step needs, the hint that names it, and passing
//! CAP_NET_ADMIN on to the commands `audit` and the knock reader spawn.
//!
//! A file capability (`setcap cap_net_admin+ep`) lands in the process's permitted and
//! effective sets only; `execve` of `nft` or `iptables-save` then drops it, because a
//! child keeps a capability only through the ambient set. Raising CAP_NET_ADMIN into the
//! inheritable and ambient sets (allowed whenever it is permitted) makes the children read
//! the ruleset too. Under sudo (uid 0) the children are root anyway and nothing changes.

/// `CAP_NET_ADMIN` (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAP_VERSION_3: u32 = 0x2008_0522;

/// Advice (rendered by `error::Hint`) for a refused ctnetlink socket (open, bind, dump, change).
pub const NET_ADMIN_HINT: &str = "this step needs CAP_NET_ADMIN: run with sudo, or once: sudo setcap cap_net_admin+ep \"$(command -v ctscope)\"";

/// Hint for a refused `setns` (`--netns`): the kernel wants CAP_SYS_ADMIN as well.
pub const SYS_ADMIN_HINT: &str = "entering a namespace needs CAP_SYS_ADMIN: run with sudo, or once: sudo setcap cap_net_admin,cap_sys_admin+ep \"$(command -v ctscope)\"";

/// Hint for a namespace file only root can open.
pub const NETNS_OPEN_HINT: &str =
    "run with sudo, or pass a namespace file you can read (/proc/PID/ns/net of your own process)";

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Let children spawned from the calling thread keep CAP_NET_ADMIN when this process holds
/// it only through a file capability. Capability sets are per thread (and `--netns` work
/// runs in its own thread), so this is called right before each spawn: two cheap syscalls,
/// idempotent. Does nothing for root or when the capability is not permitted (the children
/// then fail and their own message says what they could not read).
pub fn pass_net_admin_to_children() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        return;
    }
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and a two-element data array as capget(2) wants for version 3.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    let bit = 1u32 << CAP_NET_ADMIN;
    if r != 0 || data[0].permitted & bit == 0 {
        return;
    }
    data[0].inheritable |= bit;
    // SAFETY: as above; capset only adds a permitted capability to the inheritable set.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if r != 0 {
        return;
    }
    // SAFETY: plain prctl; fails harmlessly (EPERM) if the set change did not take.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            CAP_NET_ADMIN as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
    }
}
