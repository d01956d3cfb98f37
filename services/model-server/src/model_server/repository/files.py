"""Reading one file of the model repository: a regular file inside the repository, under a size cap.

The repository is input the server does not control (a shared volume, a network file system, a
folder others write to), so every file it reads passes here once, and is refused with a one-line
reason when it is not what a model's file can be:

- **not a regular file.** A FIFO named ``config.json`` blocks its reader forever: the worker
  stops serving, gunicorn kills it, and its replacement blocks in its first pass, before its
  first heartbeat, so it is never killed. A device (``/dev/zero``) reads without end. The file
  is opened non-blocking and checked on the open descriptor (``fstat``), so neither can block
  or be swapped in between the check and the read;
- **leading out of the repository.** A symlink inside the repository may point to another file
  inside it (a version sharing a file with another); one that resolves outside is refused;
- **over the cap.** The stated size is checked first, and the read stops one byte past the cap
  whatever the size said.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}
_CHUNK = 1 << 20
# The caps' defaults (MODEL_MAX_ARTIFACT_BYTES, MODEL_MAX_JSON_BYTES in config.py take them from here).
MAX_ARTIFACT_BYTES = 1 << 30  # a model file: 1 GiB, twice a replica's default memory limit
MAX_JSON_BYTES = 16 << 20  # metadata.json, config.json: 16 MiB


class UnsafeFile(Exception):
    """A repository file the server will not read; the message is a one-line reason naming it."""


def read_file(path: Path, repository: Path, max_bytes: int, setting: str) -> bytes:
    """The bytes of ``path``, a regular file within ``repository`` of at most ``max_bytes`` (``setting`` names the cap).

    FileNotFoundError when it does not exist; UnsafeFile when it is refused; OSError when it cannot be read.
    """
    real = Path(os.path.realpath(path))
    root = Path(os.path.realpath(repository))
    if real != root and root not in real.parents:
        raise UnsafeFile(f"{path} leads out of the model repository (to {real})")
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise UnsafeFile(f"{path} is {kind}, not a regular file")
        if info.st_size > max_bytes:
            raise UnsafeFile(f"{path} holds {info.st_size} bytes, over {setting} ({max_bytes})")
        chunks, size = [], 0
        while chunk := os.read(fd, min(_CHUNK, max_bytes + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise UnsafeFile(f"{path} holds over {max_bytes} bytes, over {setting}")
        return b"".join(chunks)
    finally:
        os.close(fd)
