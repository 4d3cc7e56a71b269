#!/usr/bin/env python3
"""`ss -nlpt` for every network namespace of a vmcore, the plain drgn way.

The baseline kql's `-q ss-nlpt-all --core VMCORE` is benchmarked against (benches/vs-drgn.sh):
what a kernel engineer would write with drgn's Python helpers, nothing tuned.

Run it either way (needs drgn, e.g. `pip install drgn==0.3.0`):

    python3 benches/ss_nlpt_drgn.py -c VMCORE -s VMLINUX [--timing]
    drgn -c VMCORE -s VMLINUX benches/ss_nlpt_drgn.py [--timing]

It prints a header, then one line per listening TCP socket, ordered as kql's `ss-nlpt-all`
orders them (netns, family, address, port, inode):

    Netns  State  Recv-Q  Send-Q  Local Address:Port  Peer Address:Port  Process

Recv-Q is sk_ack_backlog, Send-Q sk_max_ack_backlog; addresses and the Process column
(`users:(("comm",pid=P,fd=F),...)`, highest pid then highest fd first) are as `ss -n`
prints them. `--timing` writes how long each phase took to standard error.
"""

import argparse
import ipaddress
import socket
import stat
import sys
import time

from drgn import Program
from drgn.helpers.linux.fs import for_each_file
from drgn.helpers.linux.net import SOCK_INODE, netdev_get_by_index, netdev_name, sk_nulls_for_each
from drgn.helpers.linux.pid import for_each_task


def listening_sockets(prog):
    """Every listening TCP socket: `struct sock *`."""
    hashinfo = prog["tcp_hashinfo"]
    if any(member.name == "listening_hash" for member in hashinfo.type_.members):
        # Before 5.19: INET_LHTABLE_SIZE (32) buckets, hashed by port.
        for bucket in hashinfo.listening_hash:
            yield from sk_nulls_for_each(bucket.nulls_head.address_of_())
    else:
        # 5.19 and later: lhash2, hashed by port and address.
        for i in range(hashinfo.lhash2_mask + 1):
            yield from sk_nulls_for_each(hashinfo.lhash2[i].nulls_head.address_of_())


def ss_address(family, raw, v6only):
    """An address as `ss -n` prints it: 127.0.0.1, [::1], * for a dual-stack ::."""
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(raw))
    addr = ipaddress.IPv6Address(raw)
    if addr.is_unspecified and not v6only:
        return "*"
    return f"[{addr}]"


def listener_row(prog, sk):
    common = sk.__sk_common
    family = common.skc_family.value_()
    if family == socket.AF_INET:
        local = common.skc_rcv_saddr.to_bytes_()
        peer = common.skc_daddr.to_bytes_()
        v6only = False
    else:
        local = common.skc_v6_rcv_saddr.to_bytes_()
        peer = common.skc_v6_daddr.to_bytes_()
        v6only = bool(common.skc_ipv6only)
    net = common.skc_net.net
    local_addr = ss_address(family, local, v6only)
    ifindex = common.skc_bound_dev_if.value_()
    if ifindex:
        dev = netdev_get_by_index(net, ifindex)
        if dev:
            local_addr += "%" + netdev_name(dev).decode()
    peer_port = socket.ntohs(common.skc_dport.value_())
    return {
        "netns": net.ns.inum.value_(),
        "family": family,
        "recv_q": sk.sk_ack_backlog.value_(),
        "send_q": sk.sk_max_ack_backlog.value_(),
        "local_addr": local_addr,
        "local_port": common.skc_num.value_(),
        "peer": f"{ss_address(family, peer, v6only)}:{peer_port or '*'}",
        "inode": SOCK_INODE(sk.sk_socket).i_ino.value_() if sk.sk_socket else 0,
    }


def socket_holders(prog):
    """Socket inode number -> [(pid, fd, comm)] over every process's descriptors."""
    holders = {}
    for task in for_each_task(prog):
        if task.pid != task.tgid:
            continue  # threads share their leader's descriptor table
        pid = task.pid.value_()
        comm = task.comm.string_().decode(errors="replace")
        for fd, file in for_each_file(task):
            if not file:
                continue  # fd reserved but not installed yet
            inode = file.f_inode
            if stat.S_ISSOCK(inode.i_mode.value_()):
                holders.setdefault(inode.i_ino.value_(), []).append((pid, fd, comm))
    return holders


def ss_users(holders):
    holders = sorted(holders, key=lambda h: (h[0], h[1]), reverse=True)
    return "users:(" + ",".join(f'("{comm}",pid={pid},fd={fd})' for pid, fd, comm in holders) + ")"


def main(prog, timing):
    start = time.perf_counter()
    rows = [listener_row(prog, sk) for sk in listening_sockets(prog)]
    walked = time.perf_counter()
    holders = socket_holders(prog)
    joined = time.perf_counter()

    rows.sort(key=lambda r: (r["netns"], r["family"], r["local_addr"], r["local_port"], r["inode"]))
    out = [
        f"{'Netns':<11} {'State':<7} {'Recv-Q':>6} {'Send-Q':>6} "
        f"{'Local Address:Port':<28} {'Peer Address:Port':<20} Process"
    ]
    for r in rows:
        users = ss_users(holders[r["inode"]]) if r["inode"] in holders else ""
        local = f"{r['local_addr']}:{r['local_port']}"
        out.append(
            f"{r['netns']:<11} {'LISTEN':<7} {r['recv_q']:>6} {r['send_q']:>6} "
            f"{local:<28} {r['peer']:<20} {users}"
        )
    print("\n".join(out))
    if timing:
        done = time.perf_counter()
        print(
            f"listeners: {len(rows)} walked in {(walked - start) * 1000:.0f} ms "
            f"({(walked - start) / max(len(rows), 1) * 1e6:.1f} us each); "
            f"tasks and fds: {(joined - walked) * 1000:.0f} ms; "
            f"sort and print: {(done - joined) * 1000:.0f} ms",
            file=sys.stderr,
        )


if __name__ == "__main__":
    if "prog" in globals():  # run by `drgn -c VMCORE -s VMLINUX this.py`
        main(prog, "--timing" in sys.argv[1:])  # noqa: F821
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("-c", "--core", required=True, help="vmcore (ELF or kdump)")
        parser.add_argument("-s", "--symbols", required=True, help="vmlinux with debug info")
        parser.add_argument("--timing", action="store_true", help="phase timings on stderr")
        args = parser.parse_args()
        t0 = time.perf_counter()
        prog = Program()
        prog.set_core_dump(args.core)
        prog.load_debug_info([args.symbols])
        if args.timing:
            print(f"load: {(time.perf_counter() - t0) * 1000:.0f} ms", file=sys.stderr)
        main(prog, args.timing)
