"""A class on one server: N learners clicking, K of them training, for T minutes.

``python -m bench.load --learners 40 --trainers 1 --minutes 10`` starts ``app.py`` (or uses ``--url``),
and simulates each learner with a session of its own, speaking Gradio's HTTP protocol as the browser
does: upload one photo of their own, then, every 2-8 s, one of the interactive events (the Convolution
lab with a random preset, Activations of a random layer, top-5, a Saliency map), waiting for the result
and downloading its pictures. Trainers fine-tune compact AlexNet (full mode) on the synthetic set. It
prints p50/p95/max per event, failures, queue waits, the trainers' images/s and the server's memory
(its process and its children) over time.

The simulated learners are asyncio tasks in one process (httpx), so they cost the 2-core machine far less
than the server's work; the figures still include their share of the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageEnhance
from skimage import data as samples

ROOT = Path(__file__).resolve().parent.parent
INTERACTIVE = ("apply_kernel", "activations", "predict", "attribute")
KERNELS = (
    "sobel_x",
    "sobel_y",
    "laplacian",
    "gaussian_blur",
    "sharpen",
    "emboss",
    "flashlight_up",
    "outline_center",
)
# The server (uvicorn) closes a connection after 5 idle seconds. A client that reuses one just as it closes
# reads nothing back (httpx.ReadError): browsers retry such a request on a fresh connection, and so must a
# fair bench, so it lets connections go a little before the server does.
KEEP_ALIVE = httpx.Limits(keepalive_expiry=4)
LAYERS = ("features.0", "features.1", "features.4", "features.7", "features.10", "classifier.1")


def _photo(seed: int, megapixels: float = 1.0) -> bytes:
    """A learner's own photo of about ``megapixels``: a sample picture cropped, scaled (3:2) and brightened its
    own way."""
    rng = random.Random(seed)
    picture = Image.fromarray(getattr(samples, rng.choice(["coffee", "chelsea", "astronaut", "rocket"]))())
    w, h = picture.size
    left, top = rng.randint(0, w // 8), rng.randint(0, h // 8)
    picture = picture.crop((left, top, w - rng.randint(0, w // 8), h - rng.randint(0, h // 8))).convert("RGB")
    height = round((megapixels * 1e6 / 1.5) ** 0.5)
    picture = picture.resize((round(height * 1.5), height), Image.Resampling.BILINEAR)
    picture = ImageEnhance.Brightness(picture).enhance(rng.uniform(0.8, 1.2))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


class App:
    """What the bench needs to know about the running app: endpoint ids and their inputs' defaults."""

    def __init__(self, url: str, config: dict):
        self.url = url.rstrip("/")
        components = {c["id"]: c for c in config["components"]}
        self.endpoints = {}
        self.on_load = []  # the events a browser fires when it opens the page
        for dependency in config["dependencies"]:
            name = dependency.get("api_name")
            if name:
                inputs = [components[i] for i in dependency["inputs"]]
                self.endpoints[name] = (dependency["id"], inputs)
                if any(target[1] == "load" for target in dependency.get("targets", [])):
                    self.on_load.append(name)

    def payload(self, name: str, photo: dict | None, **values) -> tuple[int, list]:
        """Every input at its default value, the photo for the image input (unless None: then the page's own
        example photo), and ``values`` by (lower-case) label."""
        fn_index, inputs = self.endpoints[name]
        data = []
        for component in inputs:
            props = component.get("props", {})
            value = props.get("value")
            is_photo = component.get("type") in ("image", "photoinput") or props.get("elem_id", "").endswith("photo")
            if is_photo and photo is not None:
                value = photo
            value = values.get((props.get("label") or "").lower(), value)
            data.append(value)
        return fn_index, data


class Stats:
    def __init__(self):
        self.latency: dict[str, list[float]] = {name: [] for name in INTERACTIVE}
        self.waits: dict[str, list[float]] = {name: [] for name in INTERACTIVE}
        self.failures: dict[str, list[str]] = {name: [] for name in INTERACTIVE}
        self.page_loads: list[float] = []  # seconds until every event of opening the page completed
        self.training: list[tuple[float, float]] = []  # (time, images/s) as the status reports it
        self.memory: list[tuple[float, float]] = []  # (time, MB)


async def call(client: httpx.AsyncClient, app: App, session: str, name: str, fn_index: int, data: list):
    """Join the queue and read the session's event stream until this event completes.

    Returns (seconds to completion, seconds waiting in the queue, the completed message)."""
    started = time.perf_counter()
    body = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}
    joined = await client.post(f"{app.url}/gradio_api/queue/join", json=body)
    if joined.status_code != 200:
        return time.perf_counter() - started, None, {"success": False, "output": {"error": joined.text[:200]}}
    event_id = joined.json()["event_id"]
    waited = None
    async with client.stream("GET", f"{app.url}/gradio_api/queue/data", params={"session_hash": session}) as stream:
        async for line in stream.aiter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") not in (event_id, None):
                continue
            if message.get("msg") == "process_starts":
                waited = time.perf_counter() - started
            if message.get("msg") == "process_completed":
                return time.perf_counter() - started, waited, message
    return time.perf_counter() - started, waited, {"success": False, "output": {"error": "stream closed"}}


async def call_api(client: httpx.AsyncClient, app: App, name: str, data: list):
    """The HTTP API's two steps, as a script using ``/gradio_api/call/<name>`` does: post the inputs, then read
    that event's own stream. No session is sent, so Gradio gives every call a session of its own.

    Returns (seconds to completion, None: this route does not say when processing starts, the completed message
    in the queue route's shape)."""
    started = time.perf_counter()
    posted = await client.post(f"{app.url}/gradio_api/call/{name}", json={"data": data})
    if posted.status_code != 200:
        return time.perf_counter() - started, None, {"success": False, "output": {"error": posted.text[:200]}}
    event = None
    async with client.stream("GET", f"{app.url}/gradio_api/call/{name}/{posted.json()['event_id']}") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                output = json.loads(line[5:])
                if event == "complete":
                    return time.perf_counter() - started, None, {"success": True, "output": {"data": output}}
                return time.perf_counter() - started, None, {"success": False, "output": {"error": str(output)}}
    return time.perf_counter() - started, None, {"success": False, "output": {"error": "stream closed"}}


def _files(output) -> list[str]:
    """URLs of the pictures in a completed message (the browser downloads them)."""
    found = []
    if isinstance(output, dict):
        if output.get("url") and output.get("meta", {}).get("_type") == "gradio.FileData":
            found.append(output["url"])
        for value in output.values():
            found += _files(value)
    elif isinstance(output, list):
        for value in output:
            found += _files(value)
    return found


async def upload(client: httpx.AsyncClient, app: App, content: bytes, name: str) -> dict:
    response = await client.post(f"{app.url}/gradio_api/upload", files={"files": (name, content, "image/jpeg")})
    response.raise_for_status()
    path = response.json()[0]
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


async def open_page(client: httpx.AsyncClient, app: App, session: str, stats: Stats) -> None:
    """What a browser does when a learner opens the app: every load event at once, on the example photo,
    their results read from the session's one event stream (a session has one stream, as a page does)."""
    started = time.perf_counter()
    names = {}
    for name in app.on_load:
        fn_index, data = app.payload(name, None)
        body = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}
        joined = await client.post(f"{app.url}/gradio_api/queue/join", json=body)
        if joined.status_code != 200:
            stats.failures.setdefault("page load", []).append(f"/{name}: {joined.text[:100]}")
            continue
        names[joined.json()["event_id"]] = name
    async with client.stream("GET", f"{app.url}/gradio_api/queue/data", params={"session_hash": session}) as stream:
        async for line in stream.aiter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed" and message.get("event_id") in names:
                name = names.pop(message["event_id"])
                if not message.get("success"):
                    stats.failures.setdefault("page load", []).append(f"/{name}: {str(message)[:100]}")
            if not names:
                break
    stats.page_loads.append(time.perf_counter() - started)


async def learner(index: int, app: App, stats: Stats, until: float, args) -> None:
    rng = random.Random(index)
    session = uuid.uuid4().hex[:11]
    async with httpx.AsyncClient(timeout=120, limits=KEEP_ALIVE) as client:
        await asyncio.sleep(rng.uniform(0, 8))  # the class does not arrive, or click, in step
        if args.page_load:
            await open_page(client, app, session, stats)
        photo = await upload(client, app, _photo(index, args.megapixels), f"learner{index}.jpg")
        while time.monotonic() < until:
            name = rng.choice(INTERACTIVE)
            options = {
                "apply_kernel": {"kernel": rng.choice(KERNELS)},
                "activations": {"layer": rng.choice(LAYERS)},
                "predict": {},
                "attribute": {"method": "saliency"},
            }[name]
            fn_index, data = app.payload(name, photo, **options)
            try:
                started = time.perf_counter()
                if args.route == "call":
                    _, waited, message = await call_api(client, app, name, data)
                else:
                    _, waited, message = await call(client, app, session, name, fn_index, data)
                if message.get("success"):
                    for url in _files(message.get("output", {}).get("data")):
                        (await client.get(url)).raise_for_status()
                    stats.latency[name].append(time.perf_counter() - started)  # until the pictures arrived
                    if waited is not None:
                        stats.waits[name].append(waited)
                else:
                    stats.failures[name].append(str(message.get("output", {}).get("error"))[:120])
            except httpx.HTTPError as error:
                where = getattr(getattr(error, "_request", None), "url", None)
                stats.failures[name].append(f"{type(error).__name__} ({where.path if where else 'no request'})")
            await asyncio.sleep(rng.uniform(2, 8))


async def trainer(index: int, app: App, stats: Stats, until: float) -> None:
    session = uuid.uuid4().hex[:11]
    async with httpx.AsyncClient(timeout=None, limits=KEEP_ALIVE) as client:
        while time.monotonic() < until:
            fn_index, data = app.payload(
                "train",
                None,
                **{"dataset": "synthetic", "model": "alexnet_compact", "what learns": "full", "epochs": 50},
            )
            body = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}
            joined = await client.post(f"{app.url}/gradio_api/queue/join", json=body)
            joined.raise_for_status()
            async with client.stream(
                "GET", f"{app.url}/gradio_api/queue/data", params={"session_hash": session}
            ) as stream:
                async for line in stream.aiter_lines():
                    if time.monotonic() > until:
                        break
                    if not line.startswith("data:"):
                        continue
                    message = json.loads(line[5:])
                    text = json.dumps(message.get("output", ""))
                    rate = re.search(r"([\d,]+) images/s", text)
                    if rate:
                        stats.training.append((time.monotonic(), float(rate.group(1).replace(",", ""))))
                    if message.get("msg") == "process_completed":
                        break
            await client.post(f"{app.url}/gradio_api/cancel", json={"session_hash": session, "fn_index": fn_index})


def memory_mb(pid: int) -> float:
    """Memory of ``pid`` and all its descendants, in MB (from /proc): each process's proportional share (PSS),
    so pages that job processes share with the fork server they came from are counted once, not once per
    process; resident memory (RSS) where the kernel gives no PSS."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
            total += int(re.search(r"^Pss:\s+(\d+)", rollup, re.MULTILINE).group(1)) / 1024
        except (OSError, AttributeError):
            try:
                status = Path(f"/proc/{current}/status").read_text()
                total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
            except (OSError, AttributeError):
                pass
        todo += children.get(current, [])
    return total


async def watch_memory(pid: int | None, stats: Stats, started: float, until: float) -> None:
    while pid and time.monotonic() < until:
        stats.memory.append((time.monotonic() - started, memory_mb(pid)))
        await asyncio.sleep(5)


def _start_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port))
    env.setdefault("PLAYGROUND_OFFLINE", "1")
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-load-{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/config", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit(f"the app did not start; see {log.name}")


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(stats: Stats, minutes: float, learners: int, trainers: int, alone: float | None) -> None:
    print(f"\n{learners} learners (2-8 s think time), {trainers} training job(s), {minutes:g} min")
    print("| event | requests | failed | p50 | p95 | max | queue wait p95 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in INTERACTIVE:
        times, waits = stats.latency[name], stats.waits[name]
        print(
            f"| /{name} | {len(times)} | {len(stats.failures[name])} | {_percentile(times, 50):.2f} s | "
            f"{_percentile(times, 95):.2f} s | {max(times, default=float('nan')):.2f} s | {_percentile(waits, 95):.2f} s |"
        )
    if stats.page_loads:
        loads = stats.page_loads
        print(
            f"| opening the page ({len(loads)} learners, every load event) | {len(loads)} | "
            f"{len(stats.failures.get('page load', []))} | {_percentile(loads, 50):.2f} s | "
            f"{_percentile(loads, 95):.2f} s | {max(loads):.2f} s | |"
        )
    failures = [f for name in stats.failures for f in stats.failures[name]]
    if failures:
        print("failures (first 5):", failures[:5])
    if stats.training:
        rates = [rate for _, rate in stats.training[len(stats.training) // 4 :]]
        line = f"training: {statistics.median(rates):.1f} images/s under load (median of its reports)"
        print(line + (f"; alone: {alone:.1f} images/s" if alone else ""))
    if stats.memory:
        after_one = next((mb for t, mb in stats.memory if t >= 60), stats.memory[0][1])
        end = stats.memory[-1][1]
        peak = max(mb for _, mb in stats.memory)
        print(
            f"server memory (PSS, with its job processes): {after_one:,.0f} MB after minute 1 -> {end:,.0f} MB at the end "
            f"({(end - after_one) / after_one:+.0%}); peak {peak:,.0f} MB"
        )
        print("memory over time (min: MB):", ", ".join(f"{t / 60:.1f}: {mb:,.0f}" for t, mb in stats.memory[::12]))


async def run(args) -> None:
    process, url = (None, args.url) if args.url else _start_server()
    try:
        config = httpx.get(url.rstrip("/") + "/config", timeout=30).json()
        app = App(url, config)
        stats = Stats()
        started = time.monotonic()
        until = started + args.minutes * 60
        pid = process.pid if process else args.pid
        tasks = [learner(i, app, stats, until, args) for i in range(args.learners)]
        tasks += [trainer(i, app, stats, until) for i in range(args.trainers)]
        tasks.append(watch_memory(pid, stats, started, until))
        await asyncio.gather(*tasks)
        report(stats, args.minutes, args.learners, args.trainers, args.alone)
    finally:
        if process:
            process.terminate()
            process.wait(timeout=30)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=40)
    parser.add_argument("--trainers", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--url", help="a running app (default: start app.py on a free port)")
    parser.add_argument("--pid", type=int, help="with --url: the server's process id, to watch its memory")
    parser.add_argument("--alone", type=float, help="the trainer's images/s measured alone, to print beside")
    parser.add_argument(
        "--page-load", action="store_true", help="each learner first opens the page (every load event at once)"
    )
    parser.add_argument(
        "--route",
        choices=["queue", "call"],
        default="queue",
        help="queue: as the browser does, one session and its event stream per learner (default); call: as a script "
        "of the HTTP API does, /gradio_api/call/<event> per click, each call a session of its own",
    )
    parser.add_argument("--megapixels", type=float, default=1.0, help="size of each learner's photo (default 1.0)")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
