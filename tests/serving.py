"""A real ``catalyst-dl serve`` process on 127.0.0.1 for the service's tests (one per test module), or the app
served in a thread of the test's process, where a test can patch what it calls."""
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Iterator

import httpx
import uvicorn
from fastapi import FastAPI

from carseg.serve.protocol import HeaderTimeout

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(*args: str, timeout: float = 90.0) -> Iterator[str]:
    """Start ``catalyst-dl serve ARGS`` and yield its base URL once ``/health`` answers; stop it afterwards."""
    port = free_port()
    command = [sys.executable, "-c", "from carseg.commands.catalyst_dl import main; raise SystemExit(main())",
               "serve", *args, "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"catalyst-dl serve exited with {server.returncode}: {server.stdout.read()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"catalyst-dl serve did not answer /health within {timeout:g} s")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(30)


@contextmanager
def serving_app(app: FastAPI, header_timeout: float = 10.0) -> Iterator[str]:
    """Serve ``app`` as ``catalyst-dl serve`` does (uvicorn, the header timeout) from a thread of this process and
    yield its base URL; uvicorn leaves logging alone (pytest's caplog sees it)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None,
                            http=partial(HeaderTimeout, header_timeout=header_timeout))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(30)
