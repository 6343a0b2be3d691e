"""File identity: device+inode plus a fingerprint of the first bytes.

An inode number alone is not an identity: filesystems reuse a freed inode for the next
file created, so a log deleted and re-created between two checks can come back with the
same (dev, ino). The fingerprint (a hash of the first up to HEAD_BYTES bytes) tells the
two apart, as Vector's file source does with its first-line checksum.
"""
from __future__ import annotations

import hashlib
import os

HEAD_BYTES = 256


def ident(st: os.stat_result) -> tuple[int, int]:
    """(device, inode) of a stat result."""
    return (st.st_dev, st.st_ino)


def fingerprint(head: bytes) -> str:
    """Fingerprint of a file's first bytes as "<n>:<hash>", checkable against the file once it has grown."""
    head = head[:HEAD_BYTES]
    return f"{len(head)}:{hashlib.sha256(head).hexdigest()[:32]}"


def fingerprint_matches(fd: int, fp: str) -> bool:
    """True if the open file's first n bytes (n taken from `fp`) hash to `fp`."""
    try:
        n = int(fp.split(":", 1)[0])
    except ValueError:
        return False
    head = os.pread(fd, n, 0)
    return len(head) == n and fingerprint(head) == fp
