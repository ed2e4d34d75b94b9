"""A userspace TCP relay that adds a fixed one-way delay in each direction (netem is not in this kernel),
and counts the connections and bytes that go through it.

    with DelayProxy(("127.0.0.1", 2221), one_way_ms=12.5) as proxy:   # 25 ms round trip
        ... connect to 127.0.0.1:proxy.port ...
        proxy.connections, proxy.bytes_up, proxy.bytes_down

Every chunk is forwarded `one_way_ms` after it arrived, in order: a round trip costs twice that, as on a
link with that latency and no bandwidth limit.
"""

import asyncio
import contextlib
import threading
import time
from types import TracebackType


class DelayProxy:
    def __init__(self, target: tuple[str, int], *, one_way_ms: float) -> None:
        self.target = target
        self.delay = one_way_ms / 1000
        self.port = 0
        self.connections = 0
        self.bytes_up = 0  # client to server
        self.bytes_down = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> "DelayProxy":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the delay proxy did not start")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        # Connections still open (ssh masters that outlive a command) are cancelled, not left pending.
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            self._pipe(client_reader, server_writer, upstream=True),
            self._pipe(server_reader, client_writer, upstream=False),
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not chunk:
                    break
                writer.write(chunk)
                await writer.drain()
            writer.close()

        delivery = asyncio.ensure_future(deliver())
        try:
            while True:
                chunk = await reader.read(65536)
                if upstream:
                    self.bytes_up += len(chunk)
                else:
                    self.bytes_down += len(chunk)
                await queue.put((time.monotonic() + self.delay, chunk))
                if not chunk:
                    break
        except (ConnectionError, OSError):
            await queue.put((time.monotonic(), b""))
        with contextlib.suppress(ConnectionError, OSError):
            await delivery
