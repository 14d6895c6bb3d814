"""Reading a local file for upload_image, confined to the allowed folders.

The allowed roots come from the server (the host's MCP roots when it offers them, else `--upload-root`,
else the user's pictures folder). A path is resolved (symlinks and `..` too) before it is checked; its type
and size are checked from its metadata before it is opened, so a FIFO or a device is never opened; then
its first bytes are checked for an image type before the rest is read. Every refusal has the same text,
naming the roots and the flag, and saying nothing about the path itself (whether it exists, its size, its
type), so the tool cannot be used to probe the machine.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from dpg_mcp.tools.errors import ToolInputError

# The image types DPG takes, by their first bytes.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_HEAD = 16
# No following a link swapped in after the check. (No O_NONBLOCK: then a test can prove that a FIFO is never
# opened, since opening one would block; swapping one in takes write access to an allowed folder.)
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class PathRefused(ToolInputError):
    """file_path is outside the allowed roots, or not a small enough image file there."""


def image_type(data: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def refusal(roots: Sequence[Path], max_bytes: int) -> PathRefused:
    where = ", ".join(str(r) for r in roots) if roots else "no folder (none is allowed)"
    return PathRefused(
        f"file_path must name a PNG, JPEG, GIF or WebP file of at most {max_bytes // 2**20} MB "
        f"inside the allowed folders: {where}. Use a file there or send content_base64; to allow another "
        "folder, the user starts dpg-mcp with --upload-root DIR (or shares it as a root in the host)"
    )


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def resolve_roots(roots: Sequence[Path | str]) -> list[Path]:
    """Roots as real absolute folders (symlinks resolved); ones that do not exist are dropped."""
    out: list[Path] = []
    for root in roots:
        try:
            real = Path(os.path.expanduser(str(root))).resolve(strict=True)
        except (OSError, RuntimeError, ValueError):
            continue
        if real.is_dir() and real not in out:
            out.append(real)
    return out


def read_image_file(file_path: str, roots: Sequence[Path | str], max_bytes: int) -> tuple[str, bytes, str]:
    """(file name, bytes, content type) of an image under `roots`. Raises PathRefused, always with the same
    text, for anything else."""
    real_roots = resolve_roots(roots)
    refused = refusal(real_roots, max_bytes)
    if not real_roots or not file_path or "\x00" in file_path:
        raise refused
    try:
        given = Path(os.path.expanduser(file_path))
        if not given.is_absolute():
            raise refused
        real = given.resolve(strict=True)  # every symlink and ".." resolved before the check
        if not _inside(real, real_roots):
            raise refused
        info = os.stat(real)
        # Only a regular file of an allowed size is ever opened: never a FIFO (it would block), a device,
        # a directory or /proc.
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes or info.st_size == 0:
            raise refused
        fd = os.open(
            real, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        )
    except PathRefused:
        raise
    except (OSError, RuntimeError, ValueError):
        raise refused from None
    with os.fdopen(fd, "rb") as f:
        opened = os.fstat(f.fileno())
        # The file opened must be the one checked (not swapped for a link meanwhile).
        if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino) or not stat.S_ISREG(opened.st_mode):
            raise refused
        head = f.read(_HEAD)
        mime = image_type(head)
        if mime is None:
            raise refused
        data = head + f.read(max_bytes + 1 - len(head))
    if len(data) > max_bytes:
        raise refused
    return real.name, data, mime
