"""The ``pytcp-green`` command (also ``python -m pytcp_green``).

Sub-commands:

* ``serve`` — run a stack with the echo, discard and daytime services until Ctrl-C, or until the
  kernel-side ``--peer CMD`` (run in the lab) exits; then exit with CMD's status.
* ``demo`` — a lab in which an unmodified requests script (examples/fetch.py) fetches from the
  kernel's http.server over the stack and curl on the kernel side fetches from http.server running
  over the stack (examples/serve.py); bodies' hashes checked, with a report and the pcap's path.
* ``ping`` — ICMP echo from the stack's ping socket: ``pytcp-green ping [stack options] [-c N]
  [-i SEC] [-s SIZE] [-W SEC] HOST``; exits 0 when any reply came back.
* ``compare`` — run a Python program over the Linux kernel and over the stack, in a lab each, with
  the same peer and the same seeded impairment, and report what differs (exit 1) or not (exit 0).
* ``run`` — run a Python program with its sockets on the stack, patched from its first line:
  ``pytcp-green run [stack options] [--peer CMD] [--wait-port PORT] (script.py | -m module) [args]``.
  ``python -m pytcp_green [stack options] script.py [args]`` means the same: when the first
  argument is not a sub-command, ``run`` is implied.

Every sub-command takes the same stack options (see ``pytcp-green serve --help``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import gevent
from gevent.event import Event

from pytcp_green.green.services import start_services
from pytcp_green.host import LAB_KERNEL_IP4, LAB_STACK_IP4, Host, StackOptions

T = TypeVar("T")
log = logging.getLogger("pytcp_green")


def add_stack_options(parser: argparse.ArgumentParser) -> None:
    """The stack options every sub-command shares; later features add theirs here."""
    g = parser.add_argument_group("stack options")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--lab", action="store_true",
                       help=f"create a network namespace whose kernel side is {LAB_KERNEL_IP4} and attach "
                            f"the stack to its TAP as {LAB_STACK_IP4} (needs root); removed on exit")
    where.add_argument("--tap", metavar="NAME", help="attach to TAP device NAME (created if missing; needs root)")
    where.add_argument("--tun", metavar="NAME", help="attach to TUN device NAME (bare IP, no Ethernet)")
    g.add_argument("--ip4", metavar="ADDR/LEN", action="append", default=[],
                   help="an IPv4 address of the stack, e.g. 198.18.0.2/24 (repeatable)")
    g.add_argument("--gateway4", metavar="ADDR", help="IPv4 default gateway")
    g.add_argument("--ip6", metavar="ADDR/LEN", action="append", default=[],
                   help="an IPv6 address of the stack, e.g. fd00:77::2/64 (repeatable; DAD runs first)")
    g.add_argument("--gateway6", metavar="ADDR", help="IPv6 default gateway (a link-local one is fine)")
    g.add_argument("--slaac", action=argparse.BooleanOptionalAction, default=None,
                   help="router solicitation and addresses from router advertisements (default: on with a TAP)")
    g.add_argument("--mtu", type=int, default=1500, help="link MTU (default 1500)")
    g.add_argument("--pcap", metavar="FILE", help="write every frame in and out to FILE (pcap, Wireshark opens it)")
    g.add_argument("--impair", metavar="SPEC",
                   help="impair the link both ways, e.g. 'loss=5%%,delay=10ms,reorder=1%%,dup=1%%,"
                        "corrupt=0.1%%,rate=100mbit,seed=7'; ecn=5%% marks CE on ECN-capable packets instead")
    g.add_argument("--no-offload", dest="offload", action="store_false",
                   help="open the TAP without the virtio-net header: no TSO, no GRO, every checksum computed "
                        "and checked in Python (offloads are on by default and fall back to this when the "
                        "kernel refuses them)")
    g.add_argument("--log", metavar="LEVEL", default="warning",
                   choices=["debug", "info", "warning", "error"], help="log level (default warning)")
    g.add_argument("--sysctl", metavar="NAME=VALUE", action="append", default=[],
                   help="set a tunable, e.g. net.ipv4.tcp_sack=0 (repeatable)")
    g.add_argument("--dhcp", action="store_true",
                   help="lease an IPv4 address, router and DNS servers with DHCPv4 (with --lab, dnsmasq serves "
                        "them in the namespace); waits for the lease before going on")
    g.add_argument("--ctl", metavar="PATH", default="auto",
                   help="serve control requests (pytcp-green ctl) on the Unix socket PATH; 'auto' (default) is "
                        "/run/pytcp-green/<pid>.sock, 'none' for no socket; programs and peers see its path "
                        "in PYTCP_GREEN_CTL")
    g.add_argument("--dhcp-lease-file", metavar="FILE",
                   help="remember the lease in FILE and ask for the same address next time (INIT-REBOOT)")


def options_from_args(args: argparse.Namespace) -> StackOptions:
    sysctl = {}
    for item in args.sysctl:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--sysctl {item!r}: expected NAME=VALUE")
        sysctl[name.strip()] = value.strip()
    return StackOptions(lab=args.lab, tap=args.tap, tun=args.tun, ip4=list(args.ip4), gateway4=args.gateway4,
                        mtu=args.mtu, offload=args.offload, pcap=args.pcap, impair=args.impair, log=args.log,
                        sysctl=sysctl,
                        dhcp=args.dhcp, dhcp_lease_file=args.dhcp_lease_file,
                        ip6=list(args.ip6), gateway6=args.gateway6, slaac=args.slaac,
                        ctl=None if args.ctl == "none" else args.ctl)


def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking call (a subprocess wait) in gevent's threadpool so the stack keeps running."""
    result: T = gevent.get_hub().threadpool.apply(fn, args, kwargs)
    return result


def _stop_event() -> Event:
    stop = Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, stop.set)
    return stop


def cmd_serve(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    if args.peer and not options.lab:
        raise ValueError("--peer runs its command in the lab: add --lab")
    with Host(options) as host:
        services = start_services(host.runtime)
        where = f"lab {host.lab.netns}" if host.lab else (options.tap or options.tun or "loopback only")
        print(f"pytcp-green: stack {host.stack_ip4} on {where}; udp+tcp echo/7 discard/9 daytime/13", file=sys.stderr)
        stop = _stop_event()
        status = 0
        try:
            if args.peer:
                assert host.lab is not None
                env = dict(os.environ, **host.env())
                proc = host.lab.popen(["sh", "-c", args.peer], env=env)
                waiter = gevent.spawn(in_thread, proc.wait)
                gevent.wait([waiter, stop], count=1)
                if waiter.ready():
                    status = int(waiter.value)
                    print(f"pytcp-green: peer command exited with status {status}", file=sys.stderr)
                else:
                    status = 130
            else:
                print("pytcp-green: Ctrl-C to stop", file=sys.stderr)
                stop.wait()
        finally:
            gevent.killall(services)
            if options.log in ("info", "debug"):
                print(host.stack.stats.report(), file=sys.stderr)
    return status


def cmd_demo(args: argparse.Namespace) -> int:
    from pytcp_green.demo import run_demo

    options = options_from_args(args)
    options.lab = True
    if not options.pcap:
        options.pcap = os.path.join(tempfile.gettempdir(), "pytcp-green-demo.pcap")
    return run_demo(options)


def cmd_ping(args: argparse.Namespace) -> int:
    from pytcp_green.ping import ping

    options = options_from_args(args)
    with Host(options) as host:
        result = ping(host, args.host, count=args.count, interval=args.interval, size=args.size, wait=args.wait,
                      stop=_stop_event())
    return 0 if result.received else 1


RUN_EPILOG = """\
The program sees PYTCP_GREEN_STACK_IP4 (the stack's address) and PYTCP_GREEN_PEER_IP4 (the kernel
side of the lab). Everything after the script (or -m MODULE) is the program's own arguments.
Example: pytcp-green run --lab --peer 'python3 -m http.server 8000' --wait-port 8000 fetch.py"""


def split_program(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``run``'s arguments into (our options, [script|-m module, program args...]).

    argparse cannot do it alone: a program's own ``--flags`` after the script must not be parsed
    as ours, so the split happens at the first word that is not an option of ``run`` or its value.
    """
    actions = parser._option_string_actions
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return list(argv[:i]), list(argv[i + 1:])
        if word == "-m" or not word.startswith("-") or word == "-":
            return list(argv[:i]), list(argv[i:])
        name = word.split("=", 1)[0]
        action = actions.get(name)
        takes_value = action is not None and action.nargs != 0 and "=" not in word
        i += 2 if takes_value else 1
    return list(argv), []


def cmd_run(args: argparse.Namespace) -> int:
    from pytcp_green.patches.run import RunError, run_program

    program: list[str] = args.program
    if not program:
        raise ValueError("give a script or -m MODULE to run")
    if program[0] == "-m":
        if len(program) < 2:
            raise ValueError("-m needs a module name")
        target, module, rest = None, program[1], program[2:]
    else:
        target, module, rest = program[0], None, program[1:]
    options = options_from_args(args)
    try:
        return run_program(options, target=target, module=module, args=rest, peer=args.peer,
                           wait_port=args.wait_port, dns=args.dns)
    except RunError as exc:
        raise ValueError(str(exc)) from None


COMPARE_EPILOG = """\
Both runs see the same network: the --peer command runs in a namespace whose kernel is 198.18.0.1,
and the program has the address 198.18.0.2 and PYTCP_GREEN_STACK_IP4 / PYTCP_GREEN_PEER_IP4 set.
Over the kernel the program runs unpatched in a namespace of its own, joined to the peer's through
the same seeded --impair as the stack's link. Exit status: 0 same behaviour (exit status, stdout and
stderr identical in every run), 1 different, 2 usage error.
Example: pytcp-green compare --peer 'python3 -m http.server 8000' --wait-port 8000 --impair loss=2%,seed=1 \\
         -- examples/fetch.py"""


def cmd_compare(args: argparse.Namespace) -> int:
    from pytcp_green.compare.report import compare, write_json
    from pytcp_green.compare.runs import Program, stack_args_valid
    from pytcp_green.lab import needs_lab
    from pytcp_green.link.impair import ImpairSpec

    if not args.program or args.program == ["-m"]:
        raise ValueError("give a script or -m MODULE to compare")
    if args.runs < 1:
        raise ValueError("--runs must be at least 1")
    if args.wait_port is not None and not args.peer:
        raise ValueError("--wait-port waits for the --peer command: add --peer")
    stack_args_valid(args.stack_args)
    needs_lab()
    program = Program(list(args.program), peer=args.peer, wait_port=args.wait_port,
                      impair=ImpairSpec.parse(args.impair) if args.impair else None,
                      stack_args=list(args.stack_args), timeout=args.timeout)
    if args.report:
        report_dependencies()
    keep = args.report or args.keep
    with tempfile.TemporaryDirectory(prefix="pytcp-green-compare-") as scratch:
        workdir = Path(keep) if keep else Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        result = compare(program, workdir, runs=args.runs)
        print(result.text())
        if args.json:
            write_json(result, args.json)
        if args.report:
            from pytcp_green.compare.html_report import write_report

            print(f"report: {write_report(result, workdir)}")
    return 0 if result.same else 1


def report_dependencies() -> None:
    """Refuse --report before the runs when the plotting and templating libraries are missing."""
    import importlib.util

    missing = [name for name in ("matplotlib", "jinja2") if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"--report needs {' and '.join(missing)}: pip install 'pytcp-green[report]'")


CTL_EPILOG = """\
Requests:
  faults add KIND [key=value ...]   start a fault on the link; KIND is latency (delay, jitter), bandwidth
                                    (rate), timeout, down, slicer (size, delay), limit_data (bytes),
                                    reset_peer (after), slow_close (delay); every kind also takes
                                    direction=in|out|both, host=ADDR, port=N (the flows it touches)
  faults remove ID | faults clear | faults list
  address NEW/LEN [OLD/LEN]         renumber the link (the new address is announced, the old one goes)
  ss                                TCP connections and listeners
  tcpinfo                           each connection's TCP_INFO (struct tcp_info's fields: rtt, cwnd...)
  stats [PREFIX]                    counters, e.g. stats tcp.
  sysctl [NAME[=VALUE]]             read all, read one, or set one tunable
Exit status: 0 done, 1 the stack refused the request (its reason and errno are printed), 2 no stack.
Example: pytcp-green ctl faults add latency delay=100ms direction=in port=8000"""


def cmd_ctl(args: argparse.Namespace) -> int:
    from pytcp_green.control.client import main as ctl_main

    if not args.words:
        raise ValueError("give a request, e.g. `pytcp-green ctl stats` (see --help)")
    return ctl_main(list(args.words), socket_path=args.socket, as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytcp-green",
        description="A TCP/IP stack in Python on a TAP device, driven by gevent greenlets.",
        epilog="Lab addresses come from 198.18.0.0/15 inside a namespace the command creates and removes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run a stack with echo/discard/daytime services",
                           description="Run a stack with the UDP echo (7), discard (9) and daytime (13) services "
                                       "until Ctrl-C, or until the --peer command exits (then exit with its "
                                       "status). The peer sees PYTCP_GREEN_STACK_IP4 and PYTCP_GREEN_PEER_IP4.")
    add_stack_options(serve)
    serve.add_argument("--peer", metavar="CMD",
                       help="shell command to run on the kernel side of the lab once the stack is up")
    serve.set_defaults(func=cmd_serve)
    run = sub.add_parser("run", help="run a Python program with its sockets on the stack",
                         usage="%(prog)s [stack options] [--peer CMD] [--wait-port PORT] "
                               "(script.py | -m module) [args ...]",
                         description="Run a Python program patched from its first line, like python -m "
                                     "gevent.monkey: every AF_INET socket it opens is a pytcp_green socket.",
                         epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stack_options(run)
    run.add_argument("--peer", metavar="CMD", help="shell command to start on the kernel side of the lab first")
    run.add_argument("--wait-port", metavar="PORT", type=int,
                     help="start the program once the --peer command accepts TCP connections on PORT "
                          "(checked through the stack)")
    run.add_argument("--dns", metavar="ADDR", action="append", default=[],
                     help="a name server for the stub resolver (repeatable; default: $PYTCP_GREEN_DNS)")
    run.set_defaults(func=cmd_run, program=[])
    comp = sub.add_parser("compare", help="run a Python program over the kernel and over the stack; show what differs",
                          usage="%(prog)s [--peer CMD] [--wait-port PORT] [--impair SPEC] [--runs N] [--json FILE] "
                                "[--keep DIR] [--report DIR] [--stack ARG] -- (script.py | -m module) [args ...]",
                          description="Run a program twice with the same arguments, environment and kernel-side "
                                      "peer: once over the Linux kernel, once over the stack (needs root), and "
                                      "report exit status, output, wall time and what the captures show, side "
                                      "by side.", epilog=COMPARE_EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    comp.add_argument("--peer", metavar="CMD", help="shell command to start on the kernel side of both runs first")
    comp.add_argument("--wait-port", metavar="PORT", type=int,
                      help="start the program once the --peer command accepts TCP connections on PORT")
    comp.add_argument("--impair", metavar="SPEC", help="the same seeded impairment in both runs, e.g. "
                                                       "'loss=2%%,delay=5ms,seed=1' (see run --help)")
    comp.add_argument("--runs", metavar="N", type=int, default=1,
                      help="run N times over each and report median and spread of the wall time (default 1)")
    comp.add_argument("--json", metavar="FILE", help="also write the whole comparison as JSON to FILE")
    comp.add_argument("--keep", metavar="DIR", help="keep both runs' captures (kernel-N.pcap, stack-N.pcap) in DIR")
    comp.add_argument("--report", metavar="DIR",
                      help="write DIR/index.html (the comparison with a time-sequence graph per connection, "
                           "kernel beside stack), comparison.json and the captures; needs pytcp-green[report]")
    comp.add_argument("--stack", metavar="ARG", dest="stack_args", action="append", default=[],
                      help="a stack option for the stack run, e.g. --stack=--sysctl=net.ipv4.tcp_sack=0 (repeatable)")
    comp.add_argument("--timeout", metavar="SEC", type=float, default=300.0,
                      help="give up on a run after SEC seconds (default 300)")
    comp.add_argument("--log", metavar="LEVEL", default="warning", choices=["debug", "info", "warning", "error"],
                      help="log level (default warning)")
    comp.set_defaults(func=cmd_compare, program=[])
    ctl = sub.add_parser("ctl", help="ask a running stack (serve/run) to add or remove faults, list sockets, "
                                     "show counters or set sysctls",
                         usage="%(prog)s [--socket PATH] [--json] REQUEST ...",
                         description="Send one request to the control socket of a running stack and print the "
                                     "answer. The socket is --socket PATH, else $PYTCP_GREEN_CTL (set for "
                                     "programs and peer commands under a stack), else the only running stack's.",
                         epilog=CTL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ctl.add_argument("--socket", metavar="PATH", help="the stack's control socket")
    ctl.add_argument("--json", action="store_true", help="print the answer as JSON")
    ctl.add_argument("words", nargs=argparse.REMAINDER, metavar="REQUEST", help="the request, see below")
    ctl.set_defaults(func=cmd_ctl, log="warning")
    ping = sub.add_parser("ping", help="ping a host from the stack (ICMP echo through its ping socket)",
                          description="Send ICMP echo requests from the stack and print the replies like ping(8); "
                                      "exit 0 if any reply came back, 1 if none.")
    add_stack_options(ping)
    ping.add_argument("-c", dest="count", type=int, metavar="N", help="stop after N requests (default: until Ctrl-C)")
    ping.add_argument("-i", dest="interval", type=float, default=1.0, metavar="SEC",
                      help="seconds between requests (default 1)")
    ping.add_argument("-s", dest="size", type=int, default=56, metavar="SIZE",
                      help="data bytes per request (default 56)")
    ping.add_argument("-W", dest="wait", type=float, default=10.0, metavar="SEC",
                      help="seconds to wait for the last replies (default 10)")
    ping.add_argument("host", metavar="HOST", help="numeric IPv4 address")
    ping.set_defaults(func=cmd_ping)
    demo = sub.add_parser("demo", help="unmodified requests and http.server over the stack against the kernel's "
                                       "http.server and curl, in a lab (needs root)")
    add_stack_options(demo)
    demo.set_defaults(func=cmd_demo)
    return parser


COMMANDS = ("serve", "demo", "run", "ping", "compare", "ctl")


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices[name]
            return sub
    raise KeyError(name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] not in COMMANDS and words[0] not in ("-h", "--help"):
        words.insert(0, "run")  # python -m pytcp_green [stack options] script.py args
    if words and words[0] in ("run", "compare"):
        ours, program = split_program(_subparser(parser, words[0]), words[1:])
        args = parser.parse_args([words[0], *ours])
        args.program = program
    else:
        args = parser.parse_args(words)
    logging.basicConfig(level=getattr(logging, args.log.upper()), format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except (ValueError, OSError, subprocess.SubprocessError) as exc:
        print(f"pytcp-green {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
