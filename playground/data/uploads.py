"""A user's own images as a dataset: a zip of class folders, a folder of them uploaded file by file (from the
browser), or a local folder. All three go through one intake with the same checks.

Uploaded archives are read member by member in memory: nothing is ever extracted to disk. The whole
archive (or folder) is refused, with the problem named, when any member could escape its folder or balloon
in memory; files that are not usable images are skipped and listed in the report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from playground.config import Limits, get_limits
from playground.data.datasets import STORE_SIZE, ImageDataset, assemble, spread, to_tensor
from playground.images import IMAGE_EXTENSIONS, check_header, load_image


def _ignored(parts: list[str]) -> bool:
    """macOS metadata and hidden files and folders."""
    return parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts)


def _check_directory(source, limits: Limits) -> None:
    """Refuse an archive whose end-of-directory record announces too many members or an oversized
    directory, before ``zipfile`` reads the directory into memory."""
    with contextlib.nullcontext(source) if hasattr(source, "seek") else open(source, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 65_557))  # the record (22 bytes) plus the longest possible comment
        tail = handle.read()
        handle.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        raise ValueError("This file is not a readable zip archive.")
    entries, directory_size = (
        struct.unpack("<H", tail[at + 10 : at + 12])[0],
        struct.unpack("<I", tail[at + 12 : at + 16])[0],
    )
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF:  # a ZIP64 archive: far beyond our member limit
        raise ValueError(f"The archive is enormous (ZIP64); the limit is {limits.max_zip_members:,} members.")
    if entries > limits.max_zip_members or directory_size > limits.max_zip_members * 1024:
        raise ValueError(f"The archive has {entries:,} members; the limit is {limits.max_zip_members:,}.")


def _check_name(name: str, where: str) -> None:
    """Refuse a path that could leave its folder or means something else on another system."""
    item = "member" if where == "archive" else "file"
    if "\\" in name:
        raise ValueError(
            f"The {where} has a {item} with a backslash in its name ({name!r}); please zip the folders again."
        )
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"The {where} has a {item} with an absolute path ({name!r}), which is not allowed.")
    if ".." in name.split("/"):
        raise ValueError(f"The {where} has a {item} that points outside its folder ({name!r}), which is not allowed.")


NAME_BYTES = 100  # a class's or a dataset's name, in UTF-8: it becomes part of file names and checkpoint metadata


def check_label(text: str, what: str) -> None:
    """Refuse a class's or a dataset's name that could not be kept: a control character (a NUL, say) or more
    than :data:`NAME_BYTES` bytes (file names hold 255, and the name is one part of them), at the door rather
    than at the end of a training.

    Raises:
        ValueError: the sentence names the folder (cut short) and what to change.
    """
    shown = text[:40] + ("…" if len(text) > 40 else "")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise ValueError(f"The {what} {shown!r} has a control character in its name; please rename it.")
    if len(text.encode("utf-8")) > NAME_BYTES:
        raise ValueError(
            f"The {what} name {shown!r} is too long ({len(text.encode('utf-8')):,} bytes in UTF-8; at most "
            f"{NAME_BYTES}); please rename it."
        )


def _check_member(info: zipfile.ZipInfo, limits: Limits) -> None:
    name = info.filename
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # bzip2 and LZMA members decompress without any size bound in zipfile: refuse them.
        raise ValueError(
            f"The archive member {name!r} uses a compression method we do not accept; please zip it again (deflate)."
        )
    _check_name(name, "archive")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ValueError(f"The archive contains a symbolic link ({name!r}); only plain files are allowed.")
    if info.flag_bits & 0x1:
        raise ValueError(f"The archive is encrypted ({name!r}); please upload it without a password.")
    ratio = info.file_size / info.compress_size if info.compress_size else 0
    if ratio > limits.max_zip_ratio and info.file_size > 1_000_000:
        raise ValueError(f"The archive member {name!r} expands {ratio:.0f}-fold, which looks like a zip bomb.")


class _Unreadable(Exception):
    """A member whose bytes cannot be had (the reason is the message): skipped and reported, not fatal."""


@dataclasses.dataclass(frozen=True)
class _Member:
    name: str  # its path inside the archive or the folder, "/"-separated
    read: Callable[[], bytes]  # its bytes, never more than it declared plus one; _Unreadable when damaged


def _dataset(
    members: list[_Member],
    *,
    where: str,
    limits: Limits,
    size: int,
    name: str,
    should_stop: Callable[[], bool] | None = None,
    limit: int | None = None,
    max_pixels: int | None = None,
) -> ImageDataset:
    """The one intake for zips and folders: hidden files and macOS metadata ignored, one top folder taken as
    the root, one folder per class, files that are not usable images skipped and reported. ``limit``: at most
    this many files are decoded, taken evenly; ``max_pixels``: the pixels their headers declare, together (a
    tiny file can hold a picture that takes a second to decode)."""
    files, ignored = [], 0
    for member in members:
        parts = [p for p in member.name.split("/") if p]
        if not parts:
            continue
        if _ignored(parts):
            ignored += 1
            continue
        files.append((member, parts))
    if not files:
        raise ValueError(f"The {where} holds no files: put one folder per class, with the images inside.")
    tops = {parts[0] for _, parts in files}
    if len(tops) == 1 and all(len(parts) == 3 for _, parts in files):
        files = [(member, parts[1:]) for member, parts in files]  # flowers/daisy/1.jpg: "flowers" is the root
    wrong = [member.name for member, parts in files if len(parts) != 2]
    if wrong:
        raise ValueError(
            f"Files must sit in one folder per class (class/image.jpg), but {wrong[0]!r} does not "
            f"({len(wrong)} such file{'s' if len(wrong) > 1 else ''})."
        )
    check_label(name, "dataset")
    for label in sorted({parts[0] for _, parts in files}):
        check_label(label, "class folder")
    if limit:
        files = _spread_by_class(files, limit, limits.min_per_class)
    items, skipped, pixels = [], [], 0
    for member, (label, filename) in files:
        if not filename.lower().endswith(IMAGE_EXTENSIONS):
            skipped.append((member.name, "not an image file"))
            continue
        if should_stop is not None and should_stop():
            raise ValueError(f"Stopped while reading the {where}.")
        try:
            content = member.read()
        except _Unreadable as error:
            skipped.append((member.name, str(error)))
            continue
        try:
            if max_pixels is not None:
                pixels += _decoded_pixels(content, limits)
                if pixels > max_pixels:
                    raise TooManyPixels(
                        f"The {where}'s pictures hold more than {max_pixels / 1e6:,.0f} megapixels together, more "
                        f"than one pass here decodes; use fewer or smaller pictures (after {len(items)} of them)."
                    )
            items.append((label, to_tensor(load_image(content, limits=limits), size)))
        except TooManyPixels:
            raise
        except ValueError as error:
            skipped.append((member.name, str(error)))
    return assemble(name, items, skipped, ignored, limits)


def _spread_by_class(files: list, limit: int, least: int) -> list:
    """About ``limit`` files taken evenly within each class folder, in proportion to its size, and never fewer
    than ``least`` of a class that has them (so a small class is not cut below what a dataset needs)."""
    if len(files) <= limit:
        return files
    by_class: dict[str, list] = {}
    for item in sorted(files, key=lambda item: item[0].name):
        by_class.setdefault(item[1][0], []).append(item)
    taken = []
    for items in by_class.values():
        share = max(min(least, len(items)), len(items) * limit // len(files))
        taken.extend(spread(items, share))
    return taken


def _decoded_pixels(content: bytes, limits: Limits) -> int:
    """The pixels decoding ``content`` costs, from its header: a JPEG is decoded at a reduced scale (its draft
    mode, down to a few times the working size), every other format in full."""
    width, height = check_header(content, limits=limits)
    if content[:3] == b"\xff\xd8\xff":
        return min(width * height, 4 * limits.working_pixels)
    return width * height


class TooManyPixels(ValueError):
    """The pictures of a dataset read hold more pixels together than its budget."""


def read_zip(
    source,
    *,
    limits: Limits | None = None,
    size: int = STORE_SIZE,
    name: str = "your zip",
    should_stop: Callable[[], bool] | None = None,
    limit: int | None = None,
    max_pixels: int | None = None,
) -> ImageDataset:
    """Read a zip of class folders (``class/file.jpg``, or all under one top folder) into a dataset.

    The whole archive is refused, with the problem named, if any member has an absolute, backslash or
    ``..`` path, is a symbolic link or encrypted, or if the archive has too many members, too many bytes
    or a suspicious compression ratio. ``__MACOSX/`` and hidden files are ignored. Files that are not
    images, or images that fail the image intake, are skipped and listed in the report.

    Raises:
        ValueError: a sentence naming what is wrong with the archive.
    """
    limits = limits or get_limits()
    try:
        _check_directory(source, limits)
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError, struct.error):
        raise ValueError("This file is not a readable zip archive.") from None
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_zip_members:
            raise ValueError(f"The archive has {len(members):,} members; the limit is {limits.max_zip_members:,}.")
        for info in members:
            _check_member(info, limits)
        total = sum(info.file_size for info in members)
        if total > limits.max_zip_bytes:
            raise ValueError(
                f"The archive would expand to {total / 1e6:,.0f} MB; the limit is {limits.max_zip_bytes / 1e6:,.0f} MB."
            )

        def reader(info: zipfile.ZipInfo) -> Callable[[], bytes]:
            def read() -> bytes:
                try:
                    with archive.open(info) as handle:
                        return handle.read(info.file_size + 1)  # never more than the header promised
                except (zipfile.BadZipFile, NotImplementedError, zlib.error, EOFError, OSError, RuntimeError) as error:
                    raise _Unreadable(f"damaged inside the archive ({type(error).__name__})") from None

            return read

        entries = [_Member(info.filename, reader(info)) for info in members if not info.is_dir()]
        return _dataset(entries, where="archive", limits=limits, size=size, name=name, should_stop=should_stop,
                        limit=limit, max_pixels=max_pixels)  # fmt: skip


def read_files(
    files,
    *,
    limits: Limits | None = None,
    size: int = STORE_SIZE,
    name: str = "your folder",
    should_stop: Callable[[], bool] | None = None,
    limit: int | None = None,
    max_pixels: int | None = None,
) -> ImageDataset:
    """A folder of class folders that arrived as separate files: ``files`` pairs each file's path inside the
    folder (``flowers/daisy/1.jpg``, as the browser names it) with where its bytes are on this machine (None
    for a file the browser listed but did not send: it is reported as skipped).

    The same checks as a zip: the whole folder is refused for too many files, too many bytes, or a path
    that is absolute, has backslashes or ``..``; hidden files are ignored; files that are not usable images
    are skipped and reported.

    Raises:
        ValueError: a sentence naming what is wrong with the folder.
    """
    limits = limits or get_limits()
    files = list(files)
    if len(files) > limits.max_zip_members:
        raise ValueError(f"The folder has {len(files):,} files; the limit is {limits.max_zip_members:,}.")
    if not all(isinstance(relative, str) and 0 < len(relative) <= 1024 for relative, _ in files):
        raise ValueError("Every file of the folder needs its path inside the folder (at most 1,024 characters).")
    for relative, _ in files:
        _check_name(relative, "folder")
    sizes = []
    for relative, local in files:
        try:
            sizes.append(0 if local is None else os.stat(local).st_size)
        except OSError:
            raise ValueError(
                f"The folder's file {relative!r} did not arrive; please choose the folder again."
            ) from None
    if sum(sizes) > limits.max_zip_bytes:
        raise ValueError(
            f"The folder holds {sum(sizes) / 1e6:,.0f} MB; the limit is {limits.max_zip_bytes / 1e6:,.0f} MB."
        )

    def reader(local, declared: int) -> Callable[[], bytes]:
        def read() -> bytes:
            if local is None:
                raise _Unreadable("not sent by the page (it sends images only)")
            try:
                with open(local, "rb") as handle:
                    return handle.read(declared + 1)
            except OSError as error:
                raise _Unreadable(f"could not be read ({type(error).__name__})") from None

        return read

    entries = [_Member(relative, reader(local, size_)) for (relative, local), size_ in zip(files, sizes)]
    return _dataset(entries, where="folder", limits=limits, size=size, name=name, should_stop=should_stop,
                    limit=limit, max_pixels=max_pixels)  # fmt: skip


def count_images(source, *, limits: Limits | None = None) -> int:
    """How many image files a zip holds, from its directory alone (nothing is decompressed).

    Raises:
        ValueError: not a readable zip, or one with too many members.
    """
    limits = limits or get_limits()
    try:
        _check_directory(source, limits)
        with zipfile.ZipFile(source) as archive:
            return sum(1 for info in archive.infolist() if info.filename.lower().endswith(IMAGE_EXTENSIONS))
    except (zipfile.BadZipFile, OSError, EOFError, struct.error):
        raise ValueError("This file is not a readable zip archive.") from None


def read_folder(
    root: str | os.PathLike, *, limits: Limits | None = None, size: int = STORE_SIZE, limit: int | None = None
) -> ImageDataset:
    """A local folder of class folders (for the command line and benchmarks, not for uploads)."""
    limits = limits or get_limits()
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder of class folders.")
    paths = sorted(p for p in root.glob("*/*") if p.is_file())  # class folders; anything else is not looked at

    def reader(path: Path) -> Callable[[], bytes]:
        def read() -> bytes:
            try:
                return path.read_bytes()
            except OSError as error:
                raise _Unreadable(f"could not be read ({type(error).__name__})") from None

        return read

    entries = [_Member(p.relative_to(root).as_posix(), reader(p)) for p in paths]
    return _dataset(entries, where="folder", limits=limits, size=size, name=root.name, limit=limit)
