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
use nix::errno::Errno;
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::prctl;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

/// `what: <errno text>` for the last failed call.
pub fn os_error(what: impl std::fmt::Display) -> Error {
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
pub enum SockAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl SockAddr {
    pub fn new(addr: IpAddr, port: u16) -> SockAddr {
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

    pub fn as_ptr(&self) -> (*const libc::sockaddr, libc::socklen_t) {
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

pub fn set_int_option(fd: c_int, level: c_int, name: c_int, value: c_int, what: &str) -> Result<()> {
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

/// Inode of the file behind `fd`, from `/proc/self/fd/<fd>` (the inode of what it names).
pub fn fd_inode(fd: c_int) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let path = format!("/proc/self/fd/{fd}");
    Ok(std::fs::metadata(&path).map_err(|e| rig_error!("stat({path}): {e}"))?.ino())
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
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| rig_error!("pipe2: {e}"))
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

/// Sets the calling process's name (`comm`, at most 15 bytes).
pub fn set_name(name: &str) -> Result<()> {
    if name.len() > 15 {
        return Err(rig_error!("process name `{name}` is longer than 15 bytes"));
    }
    let cname = CString::new(name).map_err(|_| rig_error!("process name `{name}` contains NUL"))?;
    prctl::set_name(&cname).map_err(|e| rig_error!("prctl(PR_SET_NAME, {name:?}): {e}"))
}

/// Asks the kernel to SIGKILL the calling process when its parent dies, and checks the
/// parent did not die already (its pid is `parent`).
pub fn die_with_parent(parent: i32) -> Result<()> {
    prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| rig_error!("prctl(PR_SET_PDEATHSIG): {e}"))?;
    if getppid() != parent {
        return Err(rig_error!("parent {parent} died before its child started"));
    }
    Ok(())
}

/// This process's pid.
pub fn getpid() -> i32 {
    nix::unistd::getpid().as_raw()
}

/// This process's parent's pid.
pub fn getppid() -> i32 {
    nix::unistd::getppid().as_raw()
}

/// Moves the calling process into a new network namespace.
pub fn unshare_net() -> Result<()> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| rig_error!("unshare(CLONE_NEWNET): {e}"))
}

/// Brings `lo` up in the current network namespace.
pub fn loopback_up() -> Result<()> {
    link_up("lo")
}

/// A datagram socket of the current network namespace, for interface ioctls.
fn ioctl_socket() -> Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(os_error("socket(udp) for ioctl"));
    }
    // SAFETY: fd was just returned by socket(2) and nothing else owns it; dropping closes it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `ifreq` naming interface `name`.
fn ifreq(name: &str) -> Result<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(rig_error!("bad interface name {name:?}"));
    }
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(ifr)
}

/// Brings interface `name` up in the current network namespace (`SIOCGIFFLAGS`, then
/// `SIOCSIFFLAGS`).
pub fn link_up(name: &str) -> Result<()> {
    let socket = ioctl_socket()?;
    let fd = socket.as_raw_fd();
    let mut ifr = ifreq(name)?;
    // SAFETY: ifr is a live ifreq naming the interface; SIOCGIFFLAGS fills its flags.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut ifr as *mut libc::ifreq) } != 0 {
        return Err(os_error(format_args!("ioctl({name}, SIOCGIFFLAGS)")));
    }
    // SAFETY: SIOCGIFFLAGS wrote the flags member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    ifr.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: ifr is a live ifreq naming the interface with the new flags.
    if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &ifr as *const libc::ifreq) } != 0 {
        return Err(os_error(format_args!("ioctl({name}, SIOCSIFFLAGS)")));
    }
    Ok(())
}

/// Appends netlink attribute `kind` holding `payload` to `message`, padded to 4 bytes.
fn push_attr(message: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = (4 + payload.len()) as u16;
    message.extend_from_slice(&len.to_ne_bytes());
    message.extend_from_slice(&kind.to_ne_bytes());
    message.extend_from_slice(payload);
    message.resize(message.len().next_multiple_of(4), 0);
}

/// Creates a `dummy` interface `name` with `mtu` and MAC address `mac` in the current network
/// namespace, with one rtnetlink `RTM_NEWLINK` request (the `dummy` module must be loaded or
/// loadable), and waits for the kernel's acknowledgement.
pub fn create_dummy(name: &str, mtu: u32, mac: [u8; 6]) -> Result<()> {
    const IFLA_ADDRESS: u16 = 1;
    const IFLA_IFNAME: u16 = 3;
    const IFLA_MTU: u16 = 4;
    const IFLA_LINKINFO: u16 = 18;
    const IFLA_INFO_KIND: u16 = 1;
    const NLA_F_NESTED: u16 = 1 << 15;
    const RTM_NEWLINK: u16 = 16;
    const NLMSG_ERROR: u16 = 2;
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_ACK: u16 = 0x4;
    const NLM_F_EXCL: u16 = 0x200;
    const NLM_F_CREATE: u16 = 0x400;

    ifreq(name)?; // checks the name
    let what = format!("RTM_NEWLINK dummy {name}");
    let mut attrs = Vec::new();
    push_attr(&mut attrs, IFLA_IFNAME, format!("{name}\0").as_bytes());
    push_attr(&mut attrs, IFLA_MTU, &mtu.to_ne_bytes());
    push_attr(&mut attrs, IFLA_ADDRESS, &mac);
    let mut kind = Vec::new();
    push_attr(&mut kind, IFLA_INFO_KIND, b"dummy\0");
    push_attr(&mut attrs, IFLA_LINKINFO | NLA_F_NESTED, &kind);
    // nlmsghdr (len, type, flags, seq, pid), then ifinfomsg (family, pad, type, index, flags,
    // change: 16 bytes, all zero), then the attributes.
    let mut message = Vec::new();
    message.extend_from_slice(&((16 + 16 + attrs.len()) as u32).to_ne_bytes());
    message.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL).to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes());
    message.extend_from_slice(&[0u8; 16]);
    message.extend_from_slice(&attrs);

    // SAFETY: socket(2) with constant arguments.
    let fd =
        unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(os_error(format_args!("{what}: socket(AF_NETLINK)")));
    }
    // SAFETY: fd was just returned by socket(2) and nothing else owns it; dropping closes it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain old data; all zeroes (pid 0: the kernel) is a valid value.
    let mut kernel: libc::sockaddr_nl = unsafe { mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: message and kernel are live for the call, their exact sizes are passed.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent != message.len() as isize {
        return Err(os_error(format_args!("{what}: sendto")));
    }
    let mut reply = [0u8; 4096];
    // SAFETY: reply is a live, writable buffer of the length passed.
    let got = unsafe { libc::recv(socket.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
    if got < 0 {
        return Err(os_error(format_args!("{what}: recv")));
    }
    let reply = &reply[..got as usize];
    // nlmsghdr, then for NLMSG_ERROR a negative errno (0: the acknowledgement).
    if reply.len() < 20 || u16::from_ne_bytes([reply[4], reply[5]]) != NLMSG_ERROR {
        return Err(rig_error!("{what}: unexpected reply {reply:?}"));
    }
    let error = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
    if error != 0 {
        return Err(rig_error!("{what}: {}", io::Error::from_raw_os_error(-error)));
    }
    Ok(())
}

/// `bpf(cmd, attr, attr.len())`: the raw system call; `attr` is a `union bpf_attr` laid out by
/// the caller, zero beyond what it sets (the kernel rejects non-zero bytes it does not know).
pub fn bpf(cmd: c_int, attr: &mut [u8]) -> io::Result<c_int> {
    // SAFETY: attr is a live, writable buffer of the length passed; the kernel reads and writes
    // at most that many bytes of it, and follows only the pointers the caller put in it.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len() as libc::c_uint) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc as c_int) }
}

/// Moves the calling process into the network namespace of `/proc/<pid>/ns/net`.
pub fn enter_netns_of(pid: i32) -> Result<()> {
    let path = format!("/proc/{pid}/ns/net");
    let file = std::fs::File::open(&path).map_err(|e| rig_error!("{path}: {e}"))?;
    setns(file, CloneFlags::CLONE_NEWNET).map_err(|e| rig_error!("setns({path}): {e}"))
}

/// Moves the calling process into a private copy of its mount namespace: nothing it mounts
/// afterwards is seen by any other process.
pub fn private_mount_namespace() -> Result<()> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| rig_error!("unshare(CLONE_NEWNS): {e}"))?;
    // Stop mount propagation to the namespace it came from.
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE)
}

/// mount(2) with no data.
pub fn mount(source: Option<&str>, target: &str, fstype: Option<&str>, flags: libc::c_ulong) -> Result<()> {
    let what = format!("mount({source:?}, {target}, {fstype:?})");
    let cstring = |s: &str| CString::new(s).map_err(|_| rig_error!("{what}: NUL in an argument"));
    let source = source.map(cstring).transpose()?;
    let fstype = fstype.map(cstring).transpose()?;
    let target = cstring(target)?;
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is NULL or a live NUL-terminated string; no data argument.
    let rc = unsafe { libc::mount(ptr(&source), target.as_ptr(), ptr(&fstype), flags, std::ptr::null()) };
    if rc != 0 {
        return Err(os_error(what));
    }
    Ok(())
}

/// Runs `body` in a forked child and returns what it returned. The child ends right after
/// (it never returns into the caller's code), so whatever `body` changes about the process
/// (namespaces, mounts) dies with it.
pub fn in_child(body: impl FnOnce() -> Result<Vec<u8>>) -> Result<Vec<u8>> {
    use std::io::{Read, Write};
    let (read_end, write_end) = pipe()?;
    let Some(pid) = fork()? else {
        drop(read_end);
        let mut pipe = std::fs::File::from(write_end);
        let written = match body() {
            Ok(bytes) => pipe.write_all(b"o").and_then(|()| pipe.write_all(&bytes)),
            Err(error) => pipe.write_all(b"e").and_then(|()| pipe.write_all(error.0.as_bytes())),
        };
        exit_now(if written.is_ok() { 0 } else { 1 });
    };
    drop(write_end);
    let mut bytes = Vec::new();
    let read = std::fs::File::from(read_end).read_to_end(&mut bytes);
    let status = loop {
        match waitpid(Pid::from_raw(pid), None) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(rig_error!("waitpid({pid}): {e}")),
            Ok(status) => break status,
        }
    };
    read.map_err(|e| rig_error!("child {pid}: read: {e}"))?;
    match bytes.split_first() {
        Some((b'o', rest)) => Ok(rest.to_vec()),
        Some((b'e', rest)) => Err(Error(String::from_utf8_lossy(rest).into_owned())),
        _ => Err(rig_error!("child {pid} ended ({status:?}) without an answer")),
    }
}

/// Makes sure this process may open at least `needed` descriptors (raising the hard limit
/// too if it must, which root may do).
pub fn ensure_nofile(needed: u64) -> Result<()> {
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| rig_error!("getrlimit(RLIMIT_NOFILE): {e}"))?;
    if soft >= needed {
        return Ok(());
    }
    setrlimit(Resource::RLIMIT_NOFILE, needed, hard.max(needed))
        .map_err(|e| rig_error!("setrlimit(RLIMIT_NOFILE, {needed}) (was {soft}/{hard}): {e}"))
}

/// Sleeps until killed.
pub fn pause_forever() -> ! {
    loop {
        nix::unistd::pause();
    }
}

/// Ends the calling process at once, without unwinding or running destructors
/// (used in forked children, which must never return into their parent's code).
pub fn exit_now(code: c_int) -> ! {
    std::process::exit(code)
}
