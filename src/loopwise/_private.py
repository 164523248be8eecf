"""Files only their owner may read: loopwise's home, the SQLite database and the artifacts hold password
hashes, emails and the texts people sent, so they are directories of mode 0700 and files of mode 0600,
whatever the process's umask (see docs/security.md).

A directory or file is created with its mode (never wider, so there is no moment when another user could
open it) and then set to exactly that mode, since a umask such as 0277 would take the owner's bits too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path, *, repair: bool = True) -> Path:
    """Create ``path`` and its missing parents as 0700 directories; ``repair``: set an existing ``path``
    to 0700 too (parents that existed are left as they are). Returns ``path``."""
    path = Path(path)
    missing = []
    walk = path
    while not walk.exists() and walk.parent != walk:
        missing.append(walk)
        walk = walk.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # made by someone else meanwhile: theirs to set
        os.chmod(directory, DIR_MODE)
    if repair and path not in missing:
        os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists as a 0600 file (created empty when missing, its content kept otherwise)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return Path(path)


def open_private(path: Path, mode: str = "ab") -> IO[bytes]:
    """Open ``path`` for appending bytes (``"ab"``; ``"a+b"`` reads too) or writing them anew (``"wb"``),
    created 0600."""
    flags = {
        "ab": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
        "a+b": os.O_RDWR | os.O_CREAT | os.O_APPEND,
        "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    }
    fd = os.open(path, flags[mode], FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise


def make_private(root: Path) -> None:
    """Set every directory under ``root`` (``root`` too) to 0700 and every file to 0600; symbolic links
    are left alone (chmod would follow them out of the tree)."""
    root = Path(root)
    if not root.is_dir() or root.is_symlink():
        return
    os.chmod(root, DIR_MODE)
    for folder, directories, files in os.walk(root):
        for name in directories:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, DIR_MODE)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, FILE_MODE)
