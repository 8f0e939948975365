"""Files fetched from the internet (ImageNet weights, datasets): one offline switch, one downloader.

``PLAYGROUND_OFFLINE=1`` says never to try. Otherwise a download goes to a private temporary file
beside its target and is renamed into place only when complete (and, when a digest prefix is given,
only when it matches), so two sessions downloading at once never see half a file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from playground.config import get_limits

OFFLINE_ENV = "PLAYGROUND_OFFLINE"  # "1": never try to download


def offline() -> bool:
    """True when downloads are switched off (``PLAYGROUND_OFFLINE`` set to anything but 0)."""
    return os.environ.get(OFFLINE_ENV, "") not in ("", "0")


def download(
    url: str, target: Path, *, sha256_prefix: str = "", progress: Callable[[int, int], None] | None = None
) -> Path:
    """Fetch ``url`` into ``target`` atomically.

    Args:
        sha256_prefix: when given, the file's SHA-256 must start with it (torchvision names its weight
            files this way), or it is thrown away.
        progress: called with (bytes so far, total bytes or 0) after every megabyte.

    Raises:
        ValueError: offline, the download failed, or the checksum did not match.
    """
    if offline():
        raise ValueError(f"downloads are switched off ({OFFLINE_ENV}=1)")
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False)  # noqa: SIM115 (renamed below)
    except OSError as error:
        raise ValueError(f"the download could not be stored ({_reason(error)})") from None
    digest = hashlib.sha256()
    try:
        with handle, urllib.request.urlopen(url, timeout=get_limits().download_timeout_seconds) as response:
            total, done = int(response.headers.get("Content-Length", 0) or 0), 0
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                handle.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except OSError as error:
        os.unlink(handle.name)
        raise ValueError(f"the download failed ({_reason(error)}); is the machine online?") from None
    if sha256_prefix and not digest.hexdigest().startswith(sha256_prefix):
        os.unlink(handle.name)
        raise ValueError("the downloaded file did not match its checksum")
    os.replace(handle.name, target)
    return target


def _reason(error: OSError) -> str:
    """What went wrong, in words that name no file on this machine (messages reach visitors)."""
    if getattr(error, "filename", None) or getattr(error, "filename2", None):
        return error.strerror or type(error).__name__
    reason = getattr(error, "reason", None)  # urllib's errors carry the network's reason
    return str(reason if reason is not None else error.strerror or type(error).__name__)
