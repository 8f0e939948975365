"""A gate in front of the app for what reaches it over HTTP before any handler runs.

Gradio reads a request's whole body before any check of ours could run, stores every upload it is sent,
fetches any URL a file value names, and passes an event's values to its components however many there
are. This ASGI middleware answers with a sentence instead, before Gradio reads anything:

- every POST: its body is bounded (an event's values, an editor's picture, anything else small), read
  here and handed on only when it fits;
- uploads: a file of a kind the app's inputs do not take is refused first (only small requests may carry
  other files); then each network address may send so many bytes an hour, and the folder where uploads
  and results live is kept under its disk budget, oldest files swept first;
- events (``/queue/join``, ``/call/…``, ``/run/…``, ``/stream/…``): they must name an event of this app and
  carry one well-formed value for each of its inputs, files only as uploads (never a URL for the server to
  fetch); and one visitor may have only so many waiting in the queue.
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
from playground.serving.jobs import runs_root
from ui import queueing, state
from ui.controls import short

ACCEPTED_FILES = (*IMAGE_EXTENSIONS, ".zip", ".safetensors", ".pt", ".pth")
EVENTS = re.compile(r"(queue/join|call/v2/[^/]+|call/[^/]+|run/[^/]+|api/[^/]+|stream/[^/]+)/?")


class Guard:
    def __init__(self, app, blocks):
        self.app = app
        self.blocks = blocks
        self._sent: dict[str, deque] = defaultdict(deque)  # address -> (time, bytes) of its uploads this hour
        self._lock = threading.Lock()
        self._parameters: dict[str, list[str]] | None = None  # api name -> parameter names, for /call/v2

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        limits = get_limits()
        route = scope["path"].split("/gradio_api/", 1)[-1]
        if route.rstrip("/") == "upload":
            return await self._upload(scope, receive, send)
        event = EVENTS.fullmatch(route)
        if event:
            most = limits.max_request_bytes
        elif route.rstrip("/") == "component_server":  # the editor sends its pictures here, one at a time
            most = limits.editor_blob_bytes + limits.small_request_bytes
        else:
            most = limits.small_request_bytes
        read = await _read_body(scope, receive, most)
        if read is None:
            return await _refuse(send, 413, f"That request is too large; the limit is {most / 2**20:,.0f} MB.")
        messages, body = read
        if event:
            status, problem = self._event_problem(event.group(1), body, scope)
            if problem:
                return await _refuse(send, status, problem)
        return await self.app(scope, _replay(messages, receive), send)

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
        head, watcher = [], None
        if length > limits.small_request_bytes:  # the kind is checked first: a refused file costs no budget
            seen = b""  # read on until the first part's headers are in (they end with a blank line)
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
        problem = self._charge(queueing.address(scope), length, limits)
        if problem:
            return await _refuse(send, 429, problem)
        if not sweep(length):
            return await _refuse(
                send, 507, "The server's storage for uploads is full right now; please try again later."
            )
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

    def _event_problem(self, route: str, body: bytes, scope) -> tuple[int, str]:
        """(HTTP status, sentence) when an event request cannot go on to Gradio, else (200, "")."""
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return 422, "The request is not the JSON an event expects."
        parts = route.rstrip("/").split("/")
        kind, api_name = parts[0], parts[-1]
        if kind == "stream" and not isinstance(payload.get("fn_index"), int):  # a stream's next chunk
            problem = (
                ""
                if not _names_a_url(payload.get("data"))
                else "Upload the file itself; this server does not fetch files from URLs."
            )
            return (422, problem) if problem else (200, "")
        if route.startswith("call/v2/"):
            pairs, problem = self._by_keyword(api_name, payload)
        else:
            pairs, problem = self._by_position(kind, api_name, payload)
        for block, value in pairs:
            problem = problem or _value_problem(block, value)
        if problem:
            return 422, problem
        if kind in ("queue", "call"):  # these take a place in the queue
            session = payload.get("session_hash")
            problem = queueing.crowding_problem(
                getattr(self.blocks, "_queue", None),
                session if isinstance(session, str) else None,
                queueing.address(scope),
            )
            if problem:
                return 429, problem
        return 200, ""

    def _by_position(self, kind: str, api_name: str, payload: dict) -> tuple[list, str]:
        """(input, value) pairs of a request that lists its values (``data``), or why it cannot."""
        data, fn_index = payload.get("data"), payload.get("fn_index")
        if kind in ("queue", "stream") or isinstance(fn_index, int):
            fn = self.blocks.fns.get(fn_index) if type(fn_index) is int else None
        else:
            fn = next((f for f in self.blocks.fns.values() if f.api_name == api_name), None)
        if fn is None or not isinstance(data, list):
            return [], "The request names no event of this app, or carries no list of values."
        inputs = list(fn.inputs)
        public = [block for block in inputs if not getattr(block, "skip_api", False)]
        if kind in ("call", "run", "api") and len(data) == len(public) != len(inputs):
            inputs = public  # the simple API leaves out inputs a client never sets
        if len(data) != len(inputs):
            names = ", ".join(_name(block) for block in inputs)
            return [], f"This event takes {len(inputs)} value(s), in this order: {names}; the request has {len(data)}."
        return list(zip(inputs, data, strict=True)), ""

    def _by_keyword(self, api_name: str, payload: dict) -> tuple[list, str]:
        """(input, value) pairs of a ``/call/v2`` request, whose values are named, or why it cannot."""
        fn = next((f for f in self.blocks.fns.values() if f.api_name == api_name), None)
        if self._parameters is None:
            endpoints = self.blocks.get_api_info()["named_endpoints"]
            self._parameters = {
                name.lstrip("/"): [p.get("parameter_name") for p in info["parameters"]]
                for name, info in endpoints.items()
            }
        names = self._parameters.get(api_name)
        if fn is None or names is None:
            return [], "The request names no event of this app."
        unknown = [key for key in payload if key not in names and key != "oauth_token"]
        if unknown:
            return [], f"This event takes {', '.join(map(str, names))}; {short(unknown[0])} is not one of them."
        public = [block for block in fn.inputs if not getattr(block, "skip_api", False)]
        by_name = dict(zip(names, public, strict=False))
        return [(by_name[key], value) for key, value in payload.items() if key in by_name], ""


def _name(block) -> str:
    return str(getattr(block, "label", None) or getattr(block, "elem_id", None) or type(block).__name__.lower())


def _value_problem(block, value) -> str:
    """Why one input's value cannot go on to Gradio, with a sentence naming the input, or "".

    Gradio fetches a file value that names a URL (in full, to memory and disk) and validates file values
    outside its error handling (a blank "Error"); both happen before any code of ours could look.
    """
    if _names_a_url(value):
        return f"{_name(block)}: upload the file itself; this server does not fetch files from URLs."
    model = getattr(block, "data_model", None)
    if value is None or model is None:
        return ""
    try:
        model.model_validate(value, context={"validate_meta": True})
    except Exception:  # noqa: BLE001  (pydantic's messages quote the whole value; ours do not)
        kind = "an uploaded file" if "File" in model.__name__ or "Image" in model.__name__ else "a value of its kind"
        if model.__name__ == "EditorData":
            kind = "the editor's pictures (uploaded files)"
        return f"{_name(block)}: expected {kind}, got {short(value)}."
    return ""


def _names_a_url(value) -> bool:
    """True when ``value``, however deeply nested, holds a file whose ``path`` is a web address (Gradio would
    download it, whatever the input) or one that only a web address names. A file already uploaded here may
    carry its own ``url`` beside its path."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            path, url = item.get("path"), item.get("url")
            if _web(path) or (not path and _web(url)):
                return True
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _web(text) -> bool:
    return isinstance(text, str) and text.strip().lower().startswith(("http://", "https://", "//"))


def _accepted(name: bytes) -> bool:
    return os.path.splitext(name.decode("utf-8", "replace").lower())[1] in ACCEPTED_FILES


def _content_length(scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _read_body(scope, receive, most: int):
    """(messages, body) of a request whose body is at most ``most`` bytes, or None (read no further)."""
    length = _content_length(scope)
    if length is not None and length > most:
        return None
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        size += len(message.get("body", b""))
        if size > most:
            return None
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    return messages, b"".join(m.get("body", b"") for m in messages)


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


def sweep(incoming: int = 0) -> bool:
    """Keep uploads, results and runs under one disk budget; True if ``incoming`` fits.

    Counted: Gradio's upload and result folder, and every run's folder (downloads, results, an experiment's
    weights). Past the budget the oldest uploads and results go first, never the app's own files (the example
    photos and other defaults Gradio keeps), then the oldest kept runs of any session. The folders are
    measured at most every ``Limits.disk_rescan_seconds`` (and whenever they look full).
    """
    limits = get_limits()
    budget = limits.uploads_disk_bytes
    with _sweep_lock:
        now = time.monotonic()
        if now - _usage["measured"] < limits.disk_rescan_seconds and _usage["bytes"] + incoming <= budget:
            _usage["bytes"] += incoming
            return True
        files = _files(Path(get_upload_folder()))
        used = sum(size for _, size, _ in files) + _runs_bytes()
        sweepable = [entry for entry in files if os.path.realpath(entry[2]) not in APP_FILES]
        for _, size, path in sorted(sweepable) if used + incoming > budget else []:  # oldest first, to 80 %
            if used + incoming <= 0.8 * budget:
                break
            try:
                path.unlink()
                used -= size
            except OSError:
                continue
        while used + incoming > budget and state.JOBS.drop_oldest_run():
            used = sum(size for _, size, _ in _files(Path(get_upload_folder()))) + _runs_bytes()
        fits = used + incoming <= budget
        _usage.update(bytes=used + (incoming if fits else 0), measured=now)
        return fits


APP_FILES: set[str] = set()  # the app's own files in Gradio's folder (examples, defaults): never swept


def keep_app_files(blocks) -> None:
    """Remember the files Gradio keeps for the app itself (its components' defaults and examples), which the
    disk sweep must never take: a class's new visitors would find the coffee cup gone."""
    for block in blocks.blocks.values():
        APP_FILES.update(os.path.realpath(path) for path in getattr(block, "keep_in_cache", ()))


def _runs_bytes() -> int:
    return sum(size for _, size, _ in _files(runs_root()))


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


def start_sweeper(blocks=None) -> None:
    """Sweep in the background too (every ``Limits.disk_sweep_seconds``): results (every click writes one)
    fill the folder as well as uploads. ``blocks``: the app, whose own files are never swept."""
    if blocks is not None:
        keep_app_files(blocks)

    def loop():
        while True:
            time.sleep(get_limits().disk_sweep_seconds)
            with _sweep_lock:
                _usage["measured"] = -1e9  # measure afresh
            sweep()

    threading.Thread(target=loop, name="upload-sweeper", daemon=True).start()
