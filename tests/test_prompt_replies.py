"""tools/prompt_replies.py: a reply whose wake-up was lost is read within a slice, not at the
cell timeout. Real ZeroMQ sockets and jupyter_client's own channel and session; the only
stand-in is the lost wake-up itself: a socket whose timed poll sees a waiting message only when
its timeout fires, which is what pyzmq's asyncio poll does when the descriptor's edge is missed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from queue import Empty
from time import monotonic

import zmq
import zmq.asyncio
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.session import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import prompt_replies  # noqa: E402


class MissedWakeUp(zmq.asyncio.Socket):
    """A timed poll that notices a waiting message only when the timeout fires."""

    async def _late_poll(self, timeout=None, flags=zmq.POLLIN):
        if timeout:
            await asyncio.sleep(timeout / 1000)
        return await zmq.asyncio.Socket.poll(self, 0, flags)

    def poll(self, timeout=None, flags=zmq.POLLIN):
        return self._late_poll(timeout, flags)


def channel_pair(ctx: zmq.asyncio.Context, session: Session):
    reader = MissedWakeUp(ctx, zmq.PAIR)
    writer = ctx.socket(zmq.PAIR)
    reader.bind("inproc://replies")
    writer.connect("inproc://replies")
    return AsyncZMQSocketChannel(reader, session), writer


async def wait_for_reply(get_msg, timeout: float, send: bool) -> tuple[dict | None, float]:
    ctx, session = zmq.asyncio.Context(), Session()
    channel, writer = channel_pair(ctx, session)
    try:
        if send:
            session.send(writer, "execute_reply", {"status": "ok"})
        start = monotonic()
        try:
            msg = await get_msg(channel, timeout)
        except Empty:
            msg = None
        return msg, monotonic() - start
    finally:
        channel.socket.close(linger=0)
        writer.close(linger=0)
        ctx.term()


def test_a_reply_with_a_lost_wake_up_is_read_within_a_slice() -> None:
    get_msg = prompt_replies.sliced(AsyncZMQSocketChannel.get_msg)
    msg, waited = asyncio.run(wait_for_reply(get_msg, timeout=30.0, send=True))
    assert msg is not None and msg["header"]["msg_type"] == "execute_reply"
    # Returned in the first slice, long before the 30 s cell timeout the unpatched get_msg
    # waits out (see the next test); this is about which poll finds it, not about speed.
    assert waited < 10 * prompt_replies.SLICE


def test_the_stand_in_reproduces_the_wait_without_the_fix() -> None:
    msg, waited = asyncio.run(wait_for_reply(AsyncZMQSocketChannel.get_msg, timeout=3.0, send=True))
    assert msg is not None and waited >= 3.0


def test_without_a_reply_the_cell_timeout_still_holds() -> None:
    get_msg = prompt_replies.sliced(AsyncZMQSocketChannel.get_msg)
    msg, waited = asyncio.run(wait_for_reply(get_msg, timeout=2.5, send=False))
    assert msg is None and waited >= 2.5


def test_short_timeouts_pass_through_and_install_is_idempotent(monkeypatch) -> None:
    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", AsyncZMQSocketChannel.get_msg)
    original = AsyncZMQSocketChannel.get_msg
    prompt_replies.install()
    once = AsyncZMQSocketChannel.get_msg
    prompt_replies.install()
    assert once is AsyncZMQSocketChannel.get_msg and once is not original
    msg, waited = asyncio.run(wait_for_reply(once, timeout=0.2, send=False))
    assert msg is None


def test_the_book_build_loads_the_fix_and_no_chapter_shortens_its_timeout() -> None:
    root = Path(__file__).resolve().parents[1]
    assert "prompt_replies: tools/" in (root / "_config.yml").read_text()
    for path in sorted(root.glob("chapters/*.ipynb")):
        execution = json.loads(path.read_text())["metadata"].get("execution", {})
        assert "timeout" not in execution, f"{path.name} sets its own cell timeout"
