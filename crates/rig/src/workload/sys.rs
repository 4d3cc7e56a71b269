//! Checked wrappers around the few system calls the workload makes.
//!
//! Every wrapper turns a failure into an [`Error`] naming the call and its arguments, so the
//! one line the workload prints (and leaves in `SHARE_DIR/failed`) says what went wrong.
//! File descriptors are plain `c_int`s: the workload never closes its sockets, they must live
//! as long as the process.

use std::ffi::CString;
use std::io;
use std::mem;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use kql_rig::{Error, Result, rig_error};
use libc::c_int;

/// `what: <errno text>` for the last failed call.
fn os_error(what: impl std::fmt::Display) -> Error {
    rig_error!("{what}: {}", io::Error::last_os_error())
}

/// A TCP listener to create.
#[derive(Debug, Clone)]
pub struct ListenSpec {
    pub addr: IpAddr,
    pub port: u16,
    pub backlog: u32,
    /// `IPV6_V6ONLY` to set on an IPv6 socket; `None` keeps the kernel default.
    pub v6only: Option<bool>,
    pub reuseport: bool,
}

/// A listener once created.
#[derive(Debug, Clone, Copy)]
pub struct Listener {
    pub fd: c_int,
    /// Inode of the socket, as in `/proc/net/tcp` and `socket:[N]` links.
    pub inode: u64,
    /// `IPV6_V6ONLY` as read back from an IPv6 socket, `None` for IPv4.
    pub v6only: Option<bool>,
}

/// A `sockaddr_in` or `sockaddr_in6` and its length.
enum SockAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl SockAddr {
    fn new(addr: IpAddr, port: u16) -> SockAddr {
        match addr {
            IpAddr::V4(ip) => {
                // SAFETY: sockaddr_in is plain old data; all zeroes is a valid value.
                let mut sa: libc::sockaddr_in = unsafe { mem::zeroed() };
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = port.to_be();
                sa.sin_addr.s_addr = u32::from_ne_bytes(ip.octets());
                SockAddr::V4(sa)
            }
            IpAddr::V6(ip) => {
                // SAFETY: sockaddr_in6 is plain old data; all zeroes is a valid value.
                let mut sa: libc::sockaddr_in6 = unsafe { mem::zeroed() };
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = port.to_be();
                sa.sin6_addr.s6_addr = ip.octets();
                SockAddr::V6(sa)
            }
        }
    }

    fn as_ptr(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        match self {
            SockAddr::V4(sa) => {
                ((sa as *const libc::sockaddr_in).cast(), mem::size_of_val(sa) as libc::socklen_t)
            }
            SockAddr::V6(sa) => {
                ((sa as *const libc::sockaddr_in6).cast(), mem::size_of_val(sa) as libc::socklen_t)
            }
        }
    }
}

fn domain(addr: IpAddr) -> c_int {
    match addr {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    }
}

/// A new TCP socket for `addr`'s family.
fn tcp_socket(addr: IpAddr) -> Result<c_int> {
    // SAFETY: socket(2) with constant arguments; it only returns a new descriptor or -1.
    let fd = unsafe { libc::socket(domain(addr), libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(os_error(format_args!("socket(tcp, {addr})")));
    }
    Ok(fd)
}

fn set_int_option(fd: c_int, level: c_int, name: c_int, value: c_int, what: &str) -> Result<()> {
    // SAFETY: the option value points to a live c_int and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const c_int).cast(),
            mem::size_of::<c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(os_error(format_args!("setsockopt({what}={value})")));
    }
    Ok(())
}

fn get_int_option(fd: c_int, level: c_int, name: c_int, what: &str) -> Result<c_int> {
    let mut value: c_int = 0;
    let mut len = mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: value and len are live locals, len holds value's size.
    let rc = unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut c_int).cast(), &mut len) };
    if rc != 0 {
        return Err(os_error(format_args!("getsockopt({what})")));
    }
    Ok(value)
}

/// Inode of the file behind `fd`.
pub fn fd_inode(fd: c_int) -> Result<u64> {
    // SAFETY: stat is plain old data; all zeroes is a valid value.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: st is a live, writable stat buffer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(os_error(format_args!("fstat({fd})")));
    }
    Ok(st.st_ino)
}

/// The kernel's `sk_max_ack_backlog` and `sk_ack_backlog` (accept queue) of a listening
/// socket, from `TCP_INFO` (`tcpi_sacked` and `tcpi_unacked` for LISTEN sockets).
pub fn listen_queue(fd: c_int) -> Result<(u32, u32)> {
    // SAFETY: tcp_info is plain old data; all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info and len are live locals, len holds info's size; the kernel writes at most len bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(os_error("getsockopt(TCP_INFO)"));
    }
    Ok((info.tcpi_sacked, info.tcpi_unacked))
}

/// Creates, binds and starts a TCP listener, then checks the kernel kept the backlog asked for.
pub fn listen(spec: &ListenSpec) -> Result<Listener> {
    let what = format!("listener {}:{}", spec.addr, spec.port);
    let fd = tcp_socket(spec.addr).map_err(|e| rig_error!("{what}: {e}"))?;
    if spec.reuseport {
        set_int_option(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1, "SO_REUSEPORT")
            .map_err(|e| rig_error!("{what}: {e}"))?;
    }
    if let Some(v6only) = spec.v6only {
        set_int_option(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, v6only as c_int, "IPV6_V6ONLY")
            .map_err(|e| rig_error!("{what}: {e}"))?;
    }
    let sa = SockAddr::new(spec.addr, spec.port);
    let (ptr, len) = sa.as_ptr();
    // SAFETY: ptr/len describe the live sockaddr in `sa`.
    if unsafe { libc::bind(fd, ptr, len) } != 0 {
        return Err(os_error(format_args!("{what}: bind")));
    }
    // SAFETY: listen(2) on a descriptor we own.
    if unsafe { libc::listen(fd, spec.backlog as c_int) } != 0 {
        return Err(os_error(format_args!("{what}: listen(backlog {})", spec.backlog)));
    }
    let (max_backlog, _) = listen_queue(fd).map_err(|e| rig_error!("{what}: {e}"))?;
    if max_backlog != spec.backlog {
        return Err(rig_error!(
            "{what}: the kernel keeps a backlog of {max_backlog}, not {} (net.core.somaxconn?)",
            spec.backlog
        ));
    }
    let v6only = match spec.addr {
        IpAddr::V4(_) => None,
        IpAddr::V6(_) => Some(
            get_int_option(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, "IPV6_V6ONLY")
                .map_err(|e| rig_error!("{what}: {e}"))?
                != 0,
        ),
    };
    let inode = fd_inode(fd).map_err(|e| rig_error!("{what}: {e}"))?;
    Ok(Listener { fd, inode, v6only })
}

/// Connects a new TCP socket to `addr:port` (blocking) and returns it with its inode.
pub fn connect(addr: IpAddr, port: u16) -> Result<(c_int, u64)> {
    let fd = tcp_socket(addr)?;
    let sa = SockAddr::new(addr, port);
    let (ptr, len) = sa.as_ptr();
    // SAFETY: ptr/len describe the live sockaddr in `sa`.
    if unsafe { libc::connect(fd, ptr, len) } != 0 {
        return Err(os_error(format_args!("connect({addr}:{port})")));
    }
    Ok((fd, fd_inode(fd)?))
}

/// A pipe, both ends close-on-exec: (read, write).
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: fds is a live array of two c_ints, as pipe2 requires.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_error("pipe2"));
    }
    // SAFETY: pipe2 just returned these two descriptors; nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `fork(2)`: `Some(child pid)` in the parent, `None` in the child.
///
/// The workload is single-threaded, so the child may go on running ordinary Rust code.
pub fn fork() -> Result<Option<i32>> {
    // SAFETY: the workload never starts threads, so the child is a full copy of a
    // single-threaded process and no lock can be held by a thread that does not exist there.
    match unsafe { libc::fork() } {
        -1 => Err(os_error("fork")),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// An unused prctl(2) argument.
const NO_ARG: libc::c_ulong = 0;

/// Sets the calling process's name (`comm`, at most 15 bytes).
pub fn set_name(name: &str) -> Result<()> {
    if name.len() > 15 {
        return Err(rig_error!("process name `{name}` is longer than 15 bytes"));
    }
    let cname = CString::new(name).map_err(|_| rig_error!("process name `{name}` contains NUL"))?;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes; cname is live.
    if unsafe { libc::prctl(libc::PR_SET_NAME, cname.as_ptr() as libc::c_ulong, NO_ARG, NO_ARG, NO_ARG) } != 0
    {
        return Err(os_error(format_args!("prctl(PR_SET_NAME, {name:?})")));
    }
    Ok(())
}

/// Asks the kernel to SIGKILL the calling process when its parent dies, and checks the
/// parent did not die already (its pid is `parent`).
pub fn die_with_parent(parent: i32) -> Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; no memory is involved.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, NO_ARG, NO_ARG, NO_ARG) }
        != 0
    {
        return Err(os_error("prctl(PR_SET_PDEATHSIG)"));
    }
    // SAFETY: getppid(2) cannot fail.
    if unsafe { libc::getppid() } != parent {
        return Err(rig_error!("parent {parent} died before its child started"));
    }
    Ok(())
}

/// This process's pid.
pub fn getpid() -> i32 {
    // SAFETY: getpid(2) cannot fail.
    unsafe { libc::getpid() }
}

/// Moves the calling process into a new network namespace.
pub fn unshare_net() -> Result<()> {
    // SAFETY: unshare(2) with a constant flag; no memory is involved.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(os_error("unshare(CLONE_NEWNET)"));
    }
    Ok(())
}

/// Brings `lo` up in the current network namespace (`SIOCGIFFLAGS`, then `SIOCSIFFLAGS`).
pub fn loopback_up() -> Result<()> {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(os_error("socket(udp) for ioctl"));
    }
    // SAFETY: fd was just returned by socket(2) and nothing else owns it; dropping closes it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let fd = socket.as_raw_fd();
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: ifr is a live ifreq naming "lo"; SIOCGIFFLAGS fills its flags.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut ifr as *mut libc::ifreq) } != 0 {
        return Err(os_error("ioctl(lo, SIOCGIFFLAGS)"));
    }
    // SAFETY: SIOCGIFFLAGS wrote the flags member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    ifr.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: ifr is a live ifreq naming "lo" with the new flags.
    if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &ifr as *const libc::ifreq) } != 0 {
        return Err(os_error("ioctl(lo, SIOCSIFFLAGS)"));
    }
    Ok(())
}

/// Makes sure this process may open at least `needed` descriptors (raising the hard limit
/// too if it must, which root may do).
pub fn ensure_nofile(needed: u64) -> Result<()> {
    // SAFETY: rlimit is plain old data; all zeroes is a valid value.
    let mut limit: libc::rlimit = unsafe { mem::zeroed() };
    // SAFETY: limit is a live, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(os_error("getrlimit(RLIMIT_NOFILE)"));
    }
    if limit.rlim_cur >= needed {
        return Ok(());
    }
    let wanted = libc::rlimit { rlim_cur: needed, rlim_max: limit.rlim_max.max(needed) };
    // SAFETY: wanted is a live rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } != 0 {
        return Err(os_error(format_args!(
            "setrlimit(RLIMIT_NOFILE, {needed}) (was {}/{})",
            limit.rlim_cur, limit.rlim_max
        )));
    }
    Ok(())
}

/// Sleeps until killed.
pub fn pause_forever() -> ! {
    loop {
        // SAFETY: pause(2) only waits for a signal.
        unsafe { libc::pause() };
    }
}

/// Ends the calling process at once, without unwinding or running destructors
/// (used in forked children, which must never return into their parent's code).
pub fn exit_now(code: c_int) -> ! {
    // SAFETY: _exit(2) ends the process; nothing runs after it.
    unsafe { libc::_exit(code) }
}
