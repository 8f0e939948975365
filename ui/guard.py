"""A gate in front of the app for what reaches it over HTTP before any handler runs.

Gradio stores every upload it is sent, of any type, and passes an event's values to its components
however many there are. This ASGI middleware answers with a sentence, before anything is stored or run:

- uploads: each network address may send so many bytes an hour; files other than the kinds the app's
  inputs take (images, zips, checkpoints) may only come in small requests; and the folder where uploads
  and results live is kept under its disk budget, oldest files swept first;
- events (``/queue/join``): the body is bounded, and must carry one value for each of the event's inputs.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import defaultdict, deque
from pathlib import Path

from gradio.utils import get_upload_folder

from playground.config import get_limits
from playground.images import IMAGE_EXTENSIONS

ACCEPTED_FILES = (*IMAGE_EXTENSIONS, ".zip", ".safetensors", ".pt", ".pth")
SMALL_REQUEST = 1024 * 1024  # a request this small may carry any file (stray files inside an uploaded folder)


class Guard:
    def __init__(self, app, blocks):
        self.app = app
        self.blocks = blocks
        self._sent: dict[str, deque] = defaultdict(deque)  # address -> (time, bytes) of its uploads this hour
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path.endswith("/gradio_api/upload"):
            return await self._upload(scope, receive, send)
        if path.endswith("/gradio_api/queue/join"):
            return await self._join(scope, receive, send)
        return await self.app(scope, receive, send)

    # --- uploads ----------------------------------------------------------------------------------

    async def _upload(self, scope, receive, send):
        limits = get_limits()
        length = _content_length(scope)
        if length is None:
            return await _refuse(send, 411, "Uploads must say how large they are (Content-Length).")
        if length > limits.max_upload_bytes:
            return await _refuse(
                send, 413, f"That file is too large; the limit is {limits.max_upload_bytes / 2**20:,.0f} MB."
            )
        address = _address(scope)
        problem = self._charge(address, length, limits)
        if problem:
            return await _refuse(send, 429, problem)
        if not sweep(length):
            return await _refuse(
                send, 507, "The server's storage for uploads is full right now; please try again later."
            )
        if length <= SMALL_REQUEST:
            return await self.app(scope, receive, send)
        head, seen = [], b""  # read on until the first part's headers are in (they end with a blank line)
        while b"\r\n\r\n" not in seen and len(seen) < 65536:
            message = await receive()
            head.append(message)
            seen += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        watcher = _PartWatcher(_boundary(scope))
        names = watcher.names(seen)
        if not names or any(not _accepted(name) for name in names):
            kinds = ", ".join(ACCEPTED_FILES)
            return await _refuse(send, 415, f"Only images, zips and checkpoints can be uploaded here ({kinds}).")
        return await self.app(scope, _replay(head, receive, watcher), send)

    def _charge(self, address: str, length: int, limits) -> str:
        now = time.monotonic()
        with self._lock:
            sent = self._sent[address]
            while sent and now - sent[0][0] > 3600:
                sent.popleft()
            total = sum(size for _, size in sent)
            if total + length > limits.upload_bytes_per_address_hour:
                return (
                    f"You have uploaded {total / 2**20:,.0f} MB in the last hour; the limit is "
                    f"{limits.upload_bytes_per_address_hour / 2**20:,.0f} MB. Please try again later."
                )
            sent.append((now, length))
        return ""

    # --- events -----------------------------------------------------------------------------------

    async def _join(self, scope, receive, send):
        limits = get_limits()
        chunks, size = [], 0
        while True:
            message = await receive()
            chunks.append(message)
            size += len(message.get("body", b""))
            if size > limits.max_request_bytes:
                return await _refuse(
                    send, 413, f"That request is too large; the limit is {limits.max_request_bytes / 2**20:,.0f} MB."
                )
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        problem = self._shape_problem(b"".join(m.get("body", b"") for m in chunks))
        if problem:
            return await _refuse(send, 422, problem)
        return await self.app(scope, _replay(chunks, receive), send)

    def _shape_problem(self, body: bytes) -> str:
        try:
            payload = json.loads(body)
            fn_index, data = payload.get("fn_index"), payload.get("data")
        except (ValueError, AttributeError):
            return "The request is not the JSON an event expects."
        fn = self.blocks.fns.get(fn_index) if isinstance(fn_index, int) else None
        if fn is None or not isinstance(data, list):
            return "The request names no event of this app, or carries no list of values."
        names = [getattr(block, "label", None) or type(block).__name__.lower() for block in fn.inputs]
        if len(data) != len(names):
            return (
                f"This event takes {len(names)} value(s), in this order: {', '.join(map(str, names))}; "
                f"the request has {len(data)}."
            )
        return ""


def _accepted(name: bytes) -> bool:
    return os.path.splitext(name.decode("utf-8", "replace").lower())[1] in ACCEPTED_FILES


def _content_length(scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _address(scope) -> str:
    for key, value in scope.get("headers", []):
        if key == b"x-forwarded-for":
            return value.decode("latin-1").split(",")[0].strip()
    client = scope.get("client")
    return client[0] if client else ""


def _boundary(scope) -> bytes:
    for key, value in scope.get("headers", []):
        if key == b"content-type" and b"boundary=" in value:
            return value.split(b"boundary=", 1)[1].split(b";")[0].strip(b'"')
    return b""


class _PartWatcher:
    """Finds the file names of a multipart body's parts as it streams by, a chunk at a time.

    Only a ``filename=`` inside a part's headers counts (right after a boundary line), never one inside a
    file's content; a short tail of each chunk is kept so headers split across two chunks are still read.
    """

    def __init__(self, boundary: bytes):
        self._header = re.compile(rb"--" + re.escape(boundary) + rb'\r\n[^\r\n]*filename="([^"\r\n]*)"')
        self._tail = b""

    def names(self, chunk: bytes) -> list[bytes]:
        text = self._tail + chunk
        self._tail = text[-1024:]  # a name found again in the overlap is only checked again
        return self._header.findall(text)


def _replay(first: list, receive, watcher: _PartWatcher | None = None):
    """A ``receive`` that hands back the messages already read, then the rest; with a ``watcher``, a later
    part naming a file of another kind ends the upload (the app then stores nothing of it)."""
    pending = list(first)

    async def replay():
        if pending:
            return pending.pop(0)
        message = await receive()
        if watcher and any(not _accepted(name) for name in watcher.names(message.get("body", b""))):
            return {"type": "http.disconnect"}
        return message

    return replay


async def _refuse(send, status: int, sentence: str) -> None:
    body = json.dumps({"detail": sentence, "error": sentence}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


# --- the disk budget ------------------------------------------------------------------------------

_sweep_lock = threading.Lock()
_usage = {"bytes": 0, "measured": -1e9}  # the folder's size when last measured, plus uploads since
RESCAN_SECONDS = 30.0


def sweep(incoming: int = 0) -> bool:
    """Keep the upload and result folder under its disk budget, oldest files first; True if ``incoming``
    fits. The folder is measured at most every ``RESCAN_SECONDS`` (and whenever it looks full)."""
    budget = get_limits().uploads_disk_bytes
    with _sweep_lock:
        now = time.monotonic()
        if now - _usage["measured"] < RESCAN_SECONDS and _usage["bytes"] + incoming <= budget:
            _usage["bytes"] += incoming
            return True
        files = _files(Path(get_upload_folder()))
        used = sum(size for _, size, _ in files)
        if used + incoming > budget:
            for _, size, path in sorted(files):  # the oldest go first, down to 80 % of the budget
                if used + incoming <= 0.8 * budget:
                    break
                try:
                    path.unlink()
                    used -= size
                except OSError:
                    continue
        fits = used + incoming <= budget
        _usage.update(bytes=used + (incoming if fits else 0), measured=now)
        return fits


def _files(folder: Path) -> list[tuple[float, int, Path]]:
    found = []
    for path in folder.rglob("*") if folder.is_dir() else []:
        try:
            if path.is_file():
                stat = path.stat()
                found.append((stat.st_mtime, stat.st_size, path))
        except OSError:
            continue
    return found


def start_sweeper(every: float = 60.0) -> None:
    """Sweep in the background too: results (every click writes one) fill the folder as well as uploads."""

    def loop():
        while True:
            time.sleep(every)
            with _sweep_lock:
                _usage["measured"] = -1e9  # measure afresh
            sweep()

    threading.Thread(target=loop, name="upload-sweeper", daemon=True).start()
