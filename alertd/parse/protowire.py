"""The protobuf wire format, read-only, and CRC-32C: just what TensorBoard event files need.

    for number, wire_type, value in fields(buf): ...
    # wire 0 (varint) -> int, 1 (64-bit) -> int, 2 (length-delimited) -> bytes, 5 (32-bit) -> int
"""
from __future__ import annotations

from typing import Iterator


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the varint at pos; ValueError if it runs off the end."""
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes, packed_varints: bool = False) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of each field of a message (or of a packed varint run)."""
    pos, n = 0, len(buf)
    while pos < n:
        if packed_varints:
            value, pos = varint(buf, pos)
            yield 0, 0, value
            continue
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            size, pos = varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:  # groups (3, 4) are not used by the messages we read
            raise ValueError(f"unsupported wire type {wire}")
        if pos > n:
            raise ValueError("truncated field")
        yield number, wire, value


def _table() -> list[int]:
    poly, table = 0x82F63B78, []  # CRC-32C (Castagnoli), reflected
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _table()


def crc32c(data: bytes) -> int:
    """CRC-32C of data (pure Python: used on 8-byte record headers only, so speed does not matter)."""
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def crc32c_masked(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 and add a constant."""
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF
