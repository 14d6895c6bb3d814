"""upload_image reads local files only under the allowed roots, and every refusal reads the same.

The tests run as root, so file modes prove nothing: a FIFO proves a file is never opened. Each FIFO holds
a valid PNG: a reader that opened it would get an image (and the call would succeed) and the bytes would be
gone from the pipe. Without a writer, opening one would block: the reads run in a thread with a deadline.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import ListRootsResult, Root

from dpg_mcp.sandbox import Sandbox, SandboxConfig
from dpg_mcp.tools.localfiles import PathRefused, read_image_file
from tests.mcp.conftest import dpg_server

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
LIMIT = 50 * 2**20


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """An allowed root with an image, and outside it: an image, a FIFO, a huge file, links out."""
    root, outside = tmp_path / "pictures", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "ok.png").write_bytes(PNG_1PX)
    (outside / "secret.png").write_bytes(PNG_1PX)
    os.mkfifo(outside / "pipe.png")
    os.mkfifo(root / "pipe-inside.png")
    with open(root / "huge.png", "wb") as f:  # sparse: 60 MB on paper, PNG magic at the start
        f.write(PNG_1PX)
        f.truncate(60 * 2**20)
    (root / "notes.txt").write_text("not an image")
    (root / "link-out.png").symlink_to(outside / "secret.png")
    (root / "dir-out").symlink_to(outside)
    (root / "link-in.png").symlink_to(root / "ok.png")
    (root / "sub").mkdir()
    return {"root": root, "outside": outside}


@pytest.fixture
def loaded_fifos(tree: dict[str, Path]) -> Iterator[list[int]]:
    """Both FIFOs held open by the test (read+write, non-blocking) with a PNG waiting inside each."""
    fds = []
    for fifo in (tree["outside"] / "pipe.png", tree["root"] / "pipe-inside.png"):
        fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        os.write(fd, PNG_1PX)
        fds.append(fd)
    yield fds
    for fd in fds:
        os.close(fd)


def refused_text(path: str, roots: list[Path]) -> str:
    """Read in a worker thread with a deadline: if the path were opened and it is a FIFO with no writer,
    the read would block; the test then frees it (opens the writer) and fails."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["ok"] = read_image_file(path, roots, LIMIT)
        except PathRefused as exc:
            box["refused"] = str(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():
        for fifo in (p for p in [path] if os.path.exists(p)):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # release the blocked reader
        worker.join(5)
        pytest.fail(f"{path!r} was opened (the read blocked on a FIFO)")
    assert "refused" in box, f"{path!r} was read: {box.get('ok')!r}"
    return str(box["refused"])


def test_every_refusal_is_the_same_text_and_names_the_roots_and_the_flag(
    tree: dict[str, Path], loaded_fifos: list[int]
) -> None:
    root, outside = tree["root"], tree["outside"]
    bad = [
        str(outside / "secret.png"),  # outside the roots
        f"{root}/../elsewhere/secret.png",  # .. out of the root
        f"{root}/sub/../../elsewhere/secret.png",
        str(root / "link-out.png"),  # a symlink out of the root
        str(root / "dir-out" / "secret.png"),  # through a linked folder
        str(outside / "pipe.png"),  # a FIFO outside: must not even be opened
        str(root / "pipe-inside.png"),  # a FIFO inside: not a regular file, never opened
        "/proc/self/environ",
        "/proc/self/fd/0",
        "/etc/shadow",
        "/dev/zero",
        str(root / "ok.png") + "\x00.txt",  # NUL byte
        str(root / "huge.png"),  # over the size limit: refused before reading
        str(root / "notes.txt"),  # not an image
        str(root / "missing.png"),
        str(root),  # a folder
        "ok.png",  # relative
        "",
    ]
    texts = {path: refused_text(path, [root]) for path in bad}
    assert len(set(texts.values())) == 1, texts
    text = next(iter(texts.values()))
    assert str(root) in text and "--upload-root" in text
    assert "elsewhere" not in text and "secret" not in text and "proc" not in text
    # the PNGs still wait in the FIFOs: nobody opened and read them
    assert [os.read(fd, 1000) for fd in loaded_fifos] == [PNG_1PX, PNG_1PX]


def test_images_inside_the_roots_are_read(tree: dict[str, Path]) -> None:
    root = tree["root"]
    assert read_image_file(str(root / "ok.png"), [root], LIMIT) == ("ok.png", PNG_1PX, "image/png")
    # a link that stays inside a root is fine; the file is named as it really is
    assert read_image_file(str(root / "link-in.png"), [root], LIMIT)[0] == "ok.png"
    assert read_image_file(f"{root}/sub/../ok.png", [root], LIMIT)[1] == PNG_1PX


def test_no_roots_refuses_everything(tree: dict[str, Path]) -> None:
    text = refused_text(str(tree["root"] / "ok.png"), [])
    assert "no folder" in text
    assert refused_text(str(tree["root"] / "ok.png"), [tree["root"] / "does-not-exist"]) == text


# ---- through the MCP server: the host's roots, else --upload-root ------------------------------------------


@pytest.fixture
def sb() -> Sandbox:
    return Sandbox(SandboxConfig(seed=7))


def roots_callback(*paths: Path) -> Any:
    async def list_roots(context: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=p.as_uri()) for p in paths])  # type: ignore[arg-type]

    return list_roots


async def upload(client: Client, path: Path | str) -> tuple[bool, str]:
    result = await client.call_tool("upload_image", {"file_path": str(path), "title": "t"})
    text = result.content[0].text  # type: ignore[union-attr]
    return bool(result.is_error), text


@pytest.fixture
async def uploader(sb: Sandbox, tree: dict[str, Path]) -> AsyncIterator[Any]:
    async with dpg_server(sb, "uploader", upload_roots=(str(tree["outside"]),)) as server:
        yield server


async def test_host_roots_win_over_the_flag(uploader: Any, sb: Sandbox, tree: dict[str, Path]) -> None:
    root, outside = tree["root"], tree["outside"]
    # the host shares only `root`; --upload-root named `outside`: the host's roots decide
    async with Client(uploader, mode="legacy", list_roots_callback=roots_callback(root)) as client:
        before = sb.request_seq
        bad, text = await upload(client, outside / "secret.png")
        assert bad and str(root) in text and sb.request_seq == before  # nothing sent to DPG
        bad, text = await upload(client, root / "ok.png")
    assert not bad, text


async def test_without_host_roots_the_flag_decides(uploader: Any, sb: Sandbox, tree: dict[str, Path]) -> None:
    root, outside = tree["root"], tree["outside"]
    async with Client(uploader, mode="legacy") as client:
        bad, text = await upload(client, root / "ok.png")
        assert bad and str(outside) in text and "--upload-root" in text
        bad, text = await upload(client, outside / "secret.png")
    assert not bad, text


async def test_hosted_no_local_file_is_read_for_anyone(uploader: Any, tree: dict[str, Path]) -> None:
    """Hosted over HTTP, the caller is not this machine's user: --upload-root or not, no file is read."""
    from dpg_mcp.tools.base import UploadPolicy

    uploader.dpg.uploads = UploadPolicy(local_files=False)  # what the hosting callers give every caller
    async with Client(uploader, mode="legacy") as client:
        bad, text = await upload(client, tree["outside"] / "secret.png")  # inside --upload-root
    assert bad and "hosted" in text and "never reads files" in text
