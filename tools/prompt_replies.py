"""Sphinx extension: the book build notices a cell's reply as soon as it is there.

The cause of the long waits. myst-nb executes a chapter with nbclient, which waits for a cell's
``execute_reply`` with ``await shell_channel.get_msg(timeout=<cell timeout>)``. jupyter_client
implements that as one pyzmq asyncio poll of the whole timeout. That poll waits for the event
loop to be woken by the socket's file descriptor, which ZeroMQ signals on an edge; when that
wake-up is lost (seen after cells that display ipywidgets, jupyter/nbclient issue 312: "execute
cell will sometimes block"), the reply sits in the socket until the timeout fires. Then pyzmq
checks the socket once more (``poll(0)`` in ``zmq._future._AsyncPoller.poll``), finds the reply,
and the build carries on: Chapter 3 once took 307 s instead of 8 under the 300 s cell timeout.

The fix. Wait in short slices instead of one long poll: each slice ends with that same check
of the socket, so a lost wake-up costs at most ``SLICE`` seconds, and the cell timeout keeps
its meaning (a cell that really runs longer than it still fails the build). Chapters need no
short timeouts of their own to bound the wait, which failed builds on slow machines.

Only ``AsyncZMQSocketChannel.get_msg`` changes, and only for a timeout longer than a slice.
``install()`` is idempotent; benchmarks and tools that run notebooks with nbclient call it too.
"""

from __future__ import annotations

import functools
from queue import Empty
from time import monotonic

SLICE = 1.0  # seconds; a lost wake-up delays a cell's reply by at most this


def sliced(get_msg):
    """``get_msg`` that waits for a message in polls of at most ``SLICE`` seconds."""

    @functools.wraps(get_msg)
    async def get_msg_sliced(self, timeout: float | None = None):
        if timeout is not None and timeout <= SLICE:
            return await get_msg(self, timeout)
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            left = SLICE if deadline is None else min(SLICE, deadline - monotonic())
            try:
                return await get_msg(self, max(left, 0.0))
            except Empty:
                if deadline is not None and monotonic() >= deadline:
                    raise

    get_msg_sliced.sliced = True
    return get_msg_sliced


def install() -> None:
    from jupyter_client.channels import AsyncZMQSocketChannel

    if not getattr(AsyncZMQSocketChannel.get_msg, "sliced", False):
        AsyncZMQSocketChannel.get_msg = sliced(AsyncZMQSocketChannel.get_msg)


def setup(app) -> dict:
    install()
    return {"parallel_read_safe": True, "parallel_write_safe": True}
