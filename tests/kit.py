"""The tests' one kit: the wait bound, polling, ports, tools, `ocpp-gateway serve` as a process.

Every test module takes these from here (pytest's prepend import mode puts tests/ on sys.path):
one `WAIT` for every bounded await, one `poll` for state with no event to await, one launcher of
the gateway as a subprocess. A helper used by one harness only stays in that harness's
`_support.py` or `conftest.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import pytest
from aiohttp import web

import ocpp_gateway
from ocpp_gateway.bench.procs import free_port

__all__ = [
    "WAIT",
    "GatewayProcess",
    "child_process",
    "free_port",
    "gateway_process",
    "listening_port",
    "missing_tool",
    "poll",
    "require_tool",
    "serve_app",
    "subprocess_env",
]

#: Seconds a test waits for anything at most (the machine is shared: generous, never a timed
#: assertion; a wait that needs longer says so as a multiple of it).
WAIT = 30.0

_T = TypeVar("_T")

#: The line `ocpp-gateway serve` prints once its charge point port listens (each worker prints
#: its own).
LISTENING = r"listening on (ws://\S+)"


async def poll(
    condition: Callable[[], Any], what: str, within: float = WAIT, every: float = 0.02
) -> Any:
    """Wait until `condition()` is truthy, at most `within` seconds.

    Args:
        condition: what to check; it may return an awaitable (an `async def` probe), which is
            awaited each time (within the same bound).
        what: said in the failure.
        within: seconds allowed.
        every: seconds between two checks (a probe that asks a server: a few tenths).

    Returns:
        The truthy value.

    Raises:
        AssertionError: not within `within` seconds (the last value is in the message).
    """
    value: Any = None
    bound = asyncio.timeout(within)
    try:
        async with bound:
            while True:
                value = condition()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return value
                await asyncio.sleep(every)
    except TimeoutError:
        if not bound.expired():
            raise  # the condition's own
        raise AssertionError(f"not within {within} s: {what} (last: {value!r})") from None


class _Listening(Protocol):
    """A server with listening sockets: asyncio's or websockets' `Server`."""

    @property
    def sockets(self) -> Iterable[Any]: ...


def listening_port(server: _Listening) -> int:
    """The port a server bound to port 0 got.

    Args:
        server: an `asyncio.Server` or a websockets `Server`.

    Returns:
        The port of its first socket.
    """
    return int(next(iter(server.sockets)).getsockname()[1])


async def serve_app(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve an aiohttp application on a free loopback port.

    Args:
        app: the application.

    Returns:
        Its runner (the caller cleans it up) and the port.
    """
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server  # aiohttp keeps the asyncio server private
    assert isinstance(server, asyncio.Server)
    return runner, listening_port(server)


def require_tool(name: str) -> str:
    """The path of a binary a test needs; skip without it, or fail where the tools are required
    (REQUIRE_TEST_TOOLS, set by .ci/run).

    Args:
        name: the binary (its Debian package has the same name).

    Returns:
        Its path.
    """
    path = shutil.which(name)
    if path is None:
        missing_tool(f"{name} is not installed (apt-get install {name})")
    return path


def missing_tool(message: str) -> NoReturn:
    """Skip the test for want of a tool, or fail it where the tools are required
    (REQUIRE_TEST_TOOLS, set by .ci/run).

    Args:
        message: what is missing and how to install it.

    Raises:
        pytest.fail.Exception: REQUIRE_TEST_TOOLS is set.
        pytest.skip.Exception: otherwise.
    """
    if os.environ.get("REQUIRE_TEST_TOOLS"):
        pytest.fail(f"REQUIRE_TEST_TOOLS is set but {message}")
    pytest.skip(message)


def subprocess_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child Python: it imports the same ocpp_gateway as the tests
    (installed, editable or the checkout on PYTHONPATH).

    Args:
        extra: variables set on top (OCPP_GATEWAY_* settings, for example).

    Returns:
        A copy of this process's environment with PYTHONPATH leading to the package.
    """
    env = dict(os.environ)
    python_dir = str(Path(ocpp_gateway.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (python_dir, env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


class GatewayProcess:
    """`ocpp-gateway serve` in a subprocess (its own process group), its stderr read into
    `lines` as it comes, so that a full pipe never blocks it.

    Args:
        proc: the started process, stderr a pipe.
    """

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.url = ""  #: ws://127.0.0.1:PORT once it listens (`gateway_process` waits for it)
        self._changed = asyncio.Event()
        self._ended = False
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        try:
            while raw := await self.proc.stderr.readline():
                self.lines.append(raw.decode(errors="replace"))
                self._changed.set()
        finally:
            self._ended = True
            self._changed.set()

    @property
    def pid(self) -> int:
        """The process id (the supervisor's, with workers)."""
        return self.proc.pid

    async def wait_for_line(self, pattern: str, within: float = WAIT) -> re.Match[str]:
        """The first line printed so far, or from now on, that matches `pattern`.

        Args:
            pattern: a regular expression searched in each line.
            within: seconds allowed.

        Returns:
            Its match.

        Raises:
            AssertionError: the process exited first, or not within `within` seconds.
        """
        regex = re.compile(pattern)
        return await self._wait(pattern, within, lambda lines: _first(regex, lines))

    async def wait_for_count(self, pattern: str, count: int, within: float = WAIT) -> None:
        """Wait until `pattern` was printed `count` times in all (workers share one stderr, so
        two of their lines may arrive glued together).

        Args:
            pattern: a regular expression.
            count: matches wanted over all lines.
            within: seconds allowed.

        Raises:
            AssertionError: the process exited first, or not within `within` seconds.
        """
        regex = re.compile(pattern)

        def enough(lines: list[str]) -> bool | None:
            return sum(len(regex.findall(line)) for line in lines) >= count or None

        await self._wait(f"{pattern!r} {count} times", within, enough)

    async def _wait(self, what: str, within: float, found: Callable[[list[str]], _T | None]) -> _T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            self._changed.clear()
            if (value := found(self.lines)) is not None:
                return value
            if self._ended:
                raise AssertionError(f"the gateway exited before {what}: {self.lines}")
            try:
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
            except TimeoutError:
                raise AssertionError(f"no {what} within {within} s: {self.lines}") from None

    def signal(self, sig: int) -> None:
        """Send a signal to the process (not its group) if it still runs.

        Args:
            sig: e.g. signal.SIGTERM.
        """
        if self.proc.returncode is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL to its whole process group (a supervisor's workers too)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    async def wait(self, within: float = WAIT) -> int:
        """Wait for the process to exit and its stderr to end.

        Args:
            within: seconds allowed.

        Returns:
            Its exit status.
        """
        code = await asyncio.wait_for(self.proc.wait(), within)
        await asyncio.wait_for(self._reader, within)
        return code


def _first(regex: re.Pattern[str], lines: list[str]) -> re.Match[str] | None:
    for line in lines:
        if match := regex.search(line):
            return match
    return None


@contextlib.asynccontextmanager
async def child_process(*command: str, **options: Any) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run a command in a process group of its own; SIGKILL the group and reap it afterwards.

    Args:
        command: the program and its arguments.
        options: for `asyncio.create_subprocess_exec` (stdout, stderr, env, ...).

    Yields:
        The process.
    """
    proc = await asyncio.create_subprocess_exec(*command, start_new_session=True, **options)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), WAIT)


@contextlib.asynccontextmanager
async def gateway_process(
    *args: str,
    env: Mapping[str, str] | None = None,
    config: str | Path | None = None,
    loopback: bool = True,
    wait_listening: bool = True,
    within: float = WAIT,
) -> AsyncIterator[GatewayProcess]:
    """Run `python -m ocpp_gateway.cli serve` and kill its process group afterwards.

    Args:
        args: arguments after `serve`.
        env: variables on top of `subprocess_env()` (settings as OCPP_GATEWAY_*).
        config: a TOML file, passed as `--config`.
        loopback: put `--host 127.0.0.1 --port 0` before `args` (False: the caller's
            arguments or environment choose the address).
        wait_listening: wait for its (first) "listening on ws://..." line and set `url`.
        within: seconds that wait is allowed.

    Yields:
        The running process.
    """
    command = [sys.executable, "-m", "ocpp_gateway.cli", "serve"]
    if loopback:
        command += ["--host", "127.0.0.1", "--port", "0"]
    if config is not None:
        command += ["--config", str(config)]
    async with child_process(
        *command,
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=subprocess_env(env),
    ) as proc:
        gateway = GatewayProcess(proc)
        try:
            if wait_listening:
                gateway.url = (await gateway.wait_for_line(LISTENING, within)).group(1)
            yield gateway
        finally:
            gateway.kill()
            await gateway.wait()
