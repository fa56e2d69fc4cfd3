"""select.select, select.poll and selectors over a stack socket and a pipe together."""

from __future__ import annotations

from .helpers import run_patched


def test_select_mixes_a_stack_socket_and_a_pipe() -> None:
    out = run_patched("""
        import socket, select, os, gevent
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r, w = os.pipe()
        res = {"idle": select.select([a, r], [], [], 0) == ([], [], [])}
        res["writable"] = select.select([], [a, w], [], 0)[1] == [a, w]
        # A greenlet makes the socket readable while we block in select with no timeout.
        gevent.spawn(b.sendto, b"wake", a.getsockname())
        got = select.select([r, a], [], [])
        res["woke_by_socket"] = got[0] == [a]
        a.recv(10)
        gevent.spawn(os.write, w, b"p")
        got = select.select([a.fileno(), r], [], [])  # plain ints work too
        res["woke_by_pipe"] = got[0] == [r]
        os.read(r, 1)
        res["timeout_empty"] = select.select([a, r], [], [], 0.01) == ([], [], [])
        try:
            select.select([a], [], [], -1)
        except ValueError as e:
            res["negative"] = str(e)
        a.close()
        try:
            select.select([a], [], [], 0)
        except ValueError as e:
            res["closed"] = str(e)
        b.close(); os.close(r); os.close(w)
        report(res)
    """)
    assert out == {"idle": True, "writable": True, "woke_by_socket": True, "woke_by_pipe": True,
                   "timeout_empty": True, "negative": "timeout must be non-negative",
                   "closed": "file descriptor cannot be a negative integer (-1)"}


def test_poll_mixes_a_stack_socket_and_a_pipe() -> None:
    out = run_patched("""
        import socket, select, os, gevent
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r, w = os.pipe()
        p = select.poll()
        p.register(a, select.POLLIN)
        p.register(r, select.POLLIN)
        res = {"idle": p.poll(0)}
        gevent.spawn(b.sendto, b"wake", a.getsockname())
        res["socket"] = p.poll() == [(a.fileno(), select.POLLIN)]
        a.recv(10)
        gevent.spawn(os.write, w, b"p")
        res["pipe"] = p.poll(None) == [(r, select.POLLIN)]
        os.read(r, 1)
        p.modify(a, select.POLLOUT)
        res["out"] = p.poll(0) == [(a.fileno(), select.POLLOUT)]
        p.unregister(a)
        try:
            p.modify(a, select.POLLIN)
        except FileNotFoundError as e:
            res["modify_missing"] = e.errno
        res["timeout"] = p.poll(10)
        a.close(); b.close(); os.close(r); os.close(w)
        report(res)
    """)
    assert out == {"idle": [], "socket": True, "pipe": True, "out": True, "modify_missing": 2, "timeout": []}


def test_selectors_default_selector_mixes_both() -> None:
    out = run_patched("""
        import socket, selectors, os, gevent
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r, w = os.pipe()
        res = {}
        for cls in (selectors.DefaultSelector, selectors.SelectSelector, selectors.PollSelector):
            sel = cls()
            sel.register(a, selectors.EVENT_READ, "sock")
            sel.register(r, selectors.EVENT_READ, "pipe")
            seen = [sorted(k.data for k, _ in sel.select(0))]
            gevent.spawn(b.sendto, b"x", a.getsockname())
            seen.append(sorted(k.data for k, _ in sel.select()))
            gevent.spawn(os.write, w, b"y")
            a.recv(10)
            seen.append(sorted(k.data for k, _ in sel.select(5)))
            os.read(r, 1)
            seen.append(sorted(k.data for k, _ in sel.select(0.01)))
            sel.close()
            res[cls.__name__] = seen
        a.close(); b.close(); os.close(r); os.close(w)
        report(res)
    """)
    expected = [[], ["sock"], ["pipe"], []]
    assert out == {"PollSelector": expected, "SelectSelector": expected}


def test_select_and_poll_follow_cpython_details() -> None:
    """Found by CPython's test_select: a fileno() that shortens its list ends the walk (CPython reads the list
    live), each fileno() is called once, and the poll object's type cannot be instantiated."""
    out = run_patched("""
        import select, selectors, socket, sys
        a = []
        calls = []
        class F:
            def fileno(self):
                calls.append(1)
                del a[-1]
                return sys.__stdout__.fileno()
        a[:] = [F()] * 10
        res = {"mutated": select.select([], a, [], 0) == ([], a[:5], []), "calls": len(calls)}
        try:
            type(select.poll())()
        except TypeError as e:
            res["poll_type"] = str(e)
        with selectors.DefaultSelector() as sel, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            sel.register(s, selectors.EVENT_WRITE)
            res["selector"] = [key.fileobj is s for key, _ in sel.select(0)]
        report(res)
    """)
    assert out == {"mutated": True, "calls": 5,
                   "poll_type": "cannot create 'pytcp_green.patches.select.PollObject' instances",
                   "selector": [True]}


def test_select_and_poll_let_other_greenlets_run_when_ready_at_once() -> None:
    """Found by CPython's test_ftplib (TLS classes hung): an asyncore loop selecting on an always-writable
    stack socket never left its greenlet, so the client in the same process never ran."""
    out = run_patched("""
        import socket, select, selectors, gevent
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        res = {}
        for name, call in (("select", lambda: select.select([], [s], [], None)),
                           ("poll", lambda: p.poll()),
                           ("selector", lambda: sel.select())):
            p = select.poll(); p.register(s, select.POLLOUT)
            sel = selectors.DefaultSelector(); sel.register(s, selectors.EVENT_WRITE)
            ran = []
            gevent.spawn(ran.append, name)
            call()
            res[name] = ran
            sel.close()
        s.close()
        report(res)
    """)
    assert out == {"select": ["select"], "poll": ["poll"], "selector": ["selector"]}


def test_kernel_fds_closed_by_os_close_and_regular_files_answer_as_linux() -> None:
    """Found by CPython's test_poll and asyncio's test_read_pipe: gevent's os.close defers the close(2) to the
    hub's next turn, so a poll() right after it saw the fd open and a pipe's reader never saw EOF; a regular
    file has no poll method in Linux (always POLLIN|POLLOUT; epoll refuses it with EPERM)."""
    out = run_patched("""
        import socket, select, os, gevent, errno, tempfile
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a stack socket: our own wait, not gevent's
        s.fileno()  # its stand-in fd is made on first use: before the pipe's numbers are free again
        res = {}
        ep = select.epoll()  # made first, as s's fd: not on the pipe's freed number
        r, w = os.pipe(); os.close(r); os.close(w)
        p = select.poll(); p.register(r)
        res["poll_closed"] = p.poll(10_000)
        res["select_closed"] = attempt(lambda: select.select([r, s], [], [], 10))
        res["epoll_closed"] = attempt(lambda: ep.register(r))
        with tempfile.TemporaryFile() as f:
            p = select.poll(); p.register(f)
            res["poll_file"] = p.poll(10_000)
            p.modify(f, select.POLLPRI)
            res["poll_file_pri"] = p.poll(50)
            got = select.select([f, s], [f], [], 10)
            res["select_file"] = [len(got[0]), len(got[1])]
            res["epoll_file"] = attempt(lambda: ep.register(f))
        for name, wait in (("select", lambda r: select.select([r, s], [], [], 10)[0]),
                           ("gevent_select", lambda r: select.select([r], [], [], 10)[0]),
                           ("poll", lambda r: [fd for fd, _ in p.poll(10_000)]),
                           ("epoll", lambda r: [fd for fd, _ in ep.poll(10)])):
            r, w = os.pipe()
            p = select.poll(); p.register(r, select.POLLIN); ep.register(r, select.EPOLLIN)
            os.close(w)  # this greenlet: the wait starts before the hub turned
            res[name] = [wait(r) == [r], len(os.read(r, 1))]
            os.close(r)
            r, w = os.pipe()
            p = select.poll(); p.register(r, select.POLLIN); ep.register(r, select.EPOLLIN)
            gevent.spawn(os.close, w)  # another greenlet, while this one waits
            res[name] += [wait(r) == [r], len(os.read(r, 1))]  # 0: EOF
            os.close(r)
        s.close()
        report(res)
    """)
    pollin_out = 0x001 | 0x004
    assert out == {"poll_closed": [[out["poll_closed"][0][0], 0x020]], "select_closed": "errno 9",
                   "epoll_closed": "errno 9", "poll_file": [[out["poll_file"][0][0], pollin_out]],
                   "poll_file_pri": [], "select_file": [1, 1], "epoll_file": "errno 1",
                   **{name: [True, 0, True, 0] for name in ("select", "gevent_select", "poll", "epoll")}}


def test_zero_timeout_polls_let_the_stack_take_in_frames() -> None:
    """Found by asyncio's test_unhandled_exceptions: a loop polling with a zero timeout (asyncio with callbacks
    ready) never let the hub run the device readers, so a listener never saw the handshake's last ACK. The
    kernel takes packets in beside the caller; here a zero-timeout poll that finds nothing turns the hub once."""
    out = run_patched("""
        import select, socket
        res = {}
        for name in ("select", "poll", "epoll"):
            srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
            c = socket.socket(); c.setblocking(False)
            res[name] = [c.connect_ex(srv.getsockname())]
            p = select.poll(); p.register(srv, select.POLLIN)
            ep = select.epoll(); ep.register(srv, select.EPOLLIN)
            ready = {"select": lambda: select.select([srv], [], [], 0)[0],
                     "poll": lambda: p.poll(0), "epoll": lambda: ep.poll(0)}[name]
            rounds = 0
            while not ready() and rounds < 1000:  # no other greenlet runs, nothing else waits: only the polls
                rounds += 1
            res[name].append(rounds < 1000)
            conn, _ = srv.accept()
            conn.close(); c.close(); srv.close(); ep.close()
        report(res)
    """)
    assert out == {name: [115, True] for name in ("select", "poll", "epoll")}
