#!/usr/bin/env python
"""Load test of ``catalyst-dl serve``: N requests at concurrency C, with dynamic batching on and off, side by side.

Starts a local server per mode (a subprocess on 127.0.0.1, the built-in model unless --model), sends the same
1918x1280 synthetic JPEGs (multipart upload, RGBA PNG back) from C concurrent clients and prints requests/s,
p50/p95 latency, the batch sizes the server ran, failed requests, and the server's memory (RSS and PSS of its
process) after 50 and after N requests. Batching off is ``--max-batch 1``: each forward pass runs one photo,
decoding and encoding still run in the server's thread pool.

    .venv/bin/python benchmarks/serve_benchmark.py                        # 500 requests, concurrency 8, 1 torch thread
    .venv/bin/python benchmarks/serve_benchmark.py --threads 2 --requests 300   # torch's default threads on 2 cores
    .venv/bin/python benchmarks/serve_benchmark.py --requests 200 --concurrency 4 --model logs/trace/traced-best-forward.pth

Targets: requests/s with batching >= 1.5x without; memory after N within 15% of after 50; zero failed requests.
Last, the CPU cost of each stage per photo (in this process) shows what batching can and cannot save.
Exits 0 whether the targets pass or not.
"""
import argparse
import asyncio
import io
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import httpx
import psutil
from PIL import Image

from carseg.data.synthetic import render

ROOT = Path(__file__).resolve().parents[1]
CATALYST_DL = Path(sys.executable).with_name("catalyst-dl")


def photos(count: int) -> List[bytes]:
    """``count`` different 1918x1280 generated car photos as JPEG bytes."""
    out = []
    for index in range(count):
        buffer = io.BytesIO()
        Image.fromarray(render(1, "test", index, 0, 1, (1918, 1280))[0]).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def memory(process: psutil.Process) -> Dict[str, float]:
    """The server's resident memory (RSS) and proportional set size (PSS), in MB."""
    info = process.memory_full_info()
    return {"rss": info.rss / 2**20, "pss": info.pss / 2**20}


async def load(url: str, bodies: List[bytes], requests: int, concurrency: int, process: psutil.Process) -> Dict:
    """Send ``requests`` uploads from ``concurrency`` clients; latencies, failures and memory checkpoints."""
    latencies: List[float] = []
    batch_sizes: List[int] = []
    failures: List[str] = []
    checkpoints: Dict[int, Dict[str, float]] = {}
    counter = iter(range(requests))

    async def client(http: httpx.AsyncClient) -> None:
        for index in counter:
            started = time.perf_counter()
            try:
                response = await http.post("/api/remove", files={"file": ("car.jpg", bodies[index % len(bodies)])})
                ok = response.status_code == 200 and response.content[:8] == b"\x89PNG\r\n\x1a\n"
                if not ok:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                batch_sizes.append(int(response.headers.get("x-batch-size", 0)))
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            latencies.append(time.perf_counter() - started)
            if len(latencies) in (50, requests):
                checkpoints[len(latencies)] = memory(process)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "latencies": latencies, "batch_sizes": batch_sizes, "failures": failures,
            "memory": checkpoints}


def run_mode(args: argparse.Namespace, bodies: List[bytes], max_batch: int) -> Dict:
    """One server with ``--max-batch max_batch``, loaded with the requests."""
    port = free_port()
    command = [str(CATALYST_DL), "serve", *([str(args.model)] if args.model else []), "--port", str(port),
               "--max-batch", str(max_batch), "--threads", str(args.threads), "--log-level", "warning", *args.server_args]
    server = subprocess.Popen(command, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise SystemExit(f"serve_benchmark: the server did not start: {' '.join(command)}")
            time.sleep(0.3)
        for body in bodies[:2]:  # warm-up: TorchScript's first optimising calls
            httpx.post(f"{url}/api/remove", files={"file": ("car.jpg", body)}, timeout=120)
        return asyncio.run(load(url, bodies, args.requests, args.concurrency, psutil.Process(server.pid)))
    finally:
        server.terminate()
        server.wait(30)


def report(name: str, result: Dict, requests: int) -> Dict[str, str]:
    latencies = sorted(result["latencies"])
    memory = result["memory"]
    sizes = result["batch_sizes"]
    return {
        "mode": name,
        "requests/s": f"{requests / result['seconds']:.2f}",
        "p50 latency s": f"{statistics.median(latencies):.2f}",
        "p95 latency s": f"{latencies[int(0.95 * (len(latencies) - 1))]:.2f}",
        "mean batch": f"{sum(sizes) / max(1, len(sizes)):.2f}",
        "failed": str(len(result["failures"])),
        "RSS MB @50": f"{memory[50]['rss']:.0f}", f"RSS MB @{requests}": f"{memory[requests]['rss']:.0f}",
        "PSS MB @50": f"{memory[50]['pss']:.0f}", f"PSS MB @{requests}": f"{memory[requests]['pss']:.0f}",
    }


def breakdown(model: Optional[Path], body: bytes, threads: int) -> Dict[str, float]:
    """CPU ms per photo of each server stage, in this process with the server's torch threads (best of 3)."""
    import torch

    from carseg.inference.cutout import CutoutOptions, compose
    from carseg.inference.predictor import Predictor
    from carseg.serve.photos import decode, encode

    torch.set_num_threads(threads)
    predictor = Predictor(model)
    photo = decode(body, 10**9)
    prepared = predictor.prepare(photo)
    prob = predictor.forward([prepared])[0]
    full = predictor.upsample(prob, photo)
    picture = compose(photo, full, CutoutOptions(), predictor.threshold)[0]
    stages = {"decode": lambda: decode(body, 10**9), "prepare": lambda: predictor.prepare(photo),
              "forward, batch 1": lambda: predictor.forward([prepared]),
              "forward, batch 8 (per photo)": lambda: predictor.forward([prepared] * 8),
              "upsample + guided filter": lambda: predictor.upsample(prob, photo),
              "compose (default options)": lambda: compose(photo, full, CutoutOptions(), predictor.threshold),
              "encode PNG": lambda: encode(picture.copy(), "png")}
    times = {}
    for name, stage in stages.items():
        stage()  # warm-up (TorchScript optimises on its first calls)
        best = min(timed(stage) for _ in range(3))
        times[name] = best * 1000 / (8 if "batch 8" in name else 1)
    return times


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="traced model (default: the built-in model)")
    parser.add_argument("--requests", type=int, default=500, help="requests per mode (default 500; at least 50)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--photos", type=int, default=8, help="different photos to cycle through")
    parser.add_argument("--threads", type=int, default=1, help="the servers' torch threads (catalyst-dl serve --threads)")
    parser.add_argument("--server-args", nargs=argparse.REMAINDER, default=[],
                        help="more catalyst-dl serve options for both servers (last on the line)")
    args = parser.parse_args(argv)
    if args.requests < 50:
        parser.error("--requests must be at least 50 (memory is read after 50)")
    bodies = photos(args.photos)
    rows = []
    for name, max_batch in (("batching on (--max-batch 8)", 8), ("batching off (--max-batch 1)", 1)):
        result = run_mode(args, bodies, max_batch)
        rows.append(report(name, result, args.requests))
        for failure in result["failures"][:5]:
            print(f"failed: {failure}", file=sys.stderr)
    print(f"\n{args.requests} requests at concurrency {args.concurrency}, {len(bodies)} different 1918x1280 JPEGs, "
          f"{args.threads} torch thread(s) per server, {os.cpu_count()} CPU cores")
    for key in rows[0]:
        print(f"{key:>30}: " + "  ".join(f"{row[key]:>30}" for row in rows))
    speedup = float(rows[0]["requests/s"]) / float(rows[1]["requests/s"])
    growth = float(rows[0][f"PSS MB @{args.requests}"]) / float(rows[0]["PSS MB @50"]) - 1
    print(f"\nbatching speed-up: {speedup:.2f}x (target >= 1.5x)")
    print(f"memory growth, 50 -> {args.requests} requests (batching on, PSS): {growth:+.1%} (target within 15%)")
    print(f"failed requests: {sum(int(row['failed']) for row in rows)} (target 0)")
    print(f"\nwhere the time goes: ms per photo in one process, {args.threads} torch thread(s), best of 3")
    for name, ms in breakdown(args.model, bodies[0], args.threads).items():
        print(f"{name:>30}: {ms:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
