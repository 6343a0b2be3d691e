"""TensorBoard event files (`events.out.tfevents.*`): scalar summaries, read without tensorflow.

An event file is a sequence of TFRecords: uint64 length, uint32 masked CRC-32C of the length,
the payload (an `Event` protobuf), uint32 masked CRC of the payload. We decode just enough of
the protobuf (tensorflow/core/util/event.proto, summary.proto, tensor.proto) to get
(step, tag, value) of scalars: `Summary.Value.simple_value` (torch's SummaryWriter, TF1) and
rank-0 float/double/int tensors (TF2 `tf.summary.scalar`). Images, histograms and text are skipped.

The format is binary, so a chunk may end inside a record: the parser keeps the remainder and
completes it with the next chunk. A length whose CRC does not match means we are not at a
record boundary (a checkpoint offset mid-record, a torn write): we scan forward to the next
position where length and CRC agree, counting the skipped bytes as one bad "line".
"""
from __future__ import annotations

import struct

import polars as pl

from alertd.parse.frame import STEP_COL, BadTally, finalize, parsed
from alertd.parse.protowire import crc32c_masked, fields
from alertd.record import LINE, Parsed

_HEADER = 12               # uint64 length + uint32 length CRC
_MAX_RECORD = 64 << 20     # a "length" above this is garbage, not a record
_FLOAT_DTYPES = {1: "<f", 2: "<d", 19: "<e"}     # DT_FLOAT, DT_DOUBLE, DT_HALF
_INT_DTYPES = {3: "<i", 9: "<q", 4: "<B", 6: "<b", 5: "<h"}  # DT_INT32, DT_INT64, ...


def looks_like_tfrecord(data: bytes) -> bool:
    """True when the first 12 bytes are a TFRecord header (length and its masked CRC agree)."""
    if len(data) < _HEADER:
        return False
    length, crc = struct.unpack_from("<QI", data, 0)
    return length < _MAX_RECORD and crc == crc32c_masked(data[:8])


def _tensor_scalar(buf: bytes) -> float | None:
    """The value of a rank-0 numeric TensorProto, or None."""
    dtype, shape_dims, content, vals = 0, False, b"", []
    for num, wire, v in fields(buf):
        if num == 1 and wire == 0:
            dtype = v
        elif num == 2 and wire == 2:
            shape_dims = any(n == 2 for n, _, _ in fields(v))  # TensorShapeProto.dim
        elif num == 4 and wire == 2:
            content = v
        elif num in (5, 6) and wire in (2, 5, 1):  # float_val / double_val, packed or not
            fmt = "<f" if num == 5 else "<d"
            raw = v if wire == 2 else (struct.pack("<I", v) if wire == 5 else struct.pack("<Q", v))
            vals += [x for (x,) in struct.iter_unpack(fmt, raw)]
        elif num in (7, 10) and wire in (0, 2):      # int_val / int64_val
            vals += [v] if wire == 0 else [x for _, _, x in fields(v, packed_varints=True)]
    if shape_dims:
        return None
    if vals:
        return float(vals[0])
    fmt = _FLOAT_DTYPES.get(dtype) or _INT_DTYPES.get(dtype)
    if fmt and len(content) == struct.calcsize(fmt):
        return float(struct.unpack(fmt, content)[0])
    return None


def _plugin(meta: bytes) -> str:
    """SummaryMetadata.plugin_data.plugin_name, or ""."""
    for num, wire, v in fields(meta):
        if num == 1 and wire == 2:
            for n2, w2, v2 in fields(v):
                if n2 == 1 and w2 == 2:
                    return v2.decode("utf-8", "replace")
    return ""


def scalars(event: bytes) -> tuple[int, list[tuple[str, float]]]:
    """(step, [(tag, value)]) of one serialized Event; an empty list when it holds no scalar."""
    step, out = 0, []
    for num, wire, v in fields(event):
        if num == 2 and wire == 0:
            step = v - (1 << 64) if v >= 1 << 63 else v
        elif num == 5 and wire == 2:  # Summary
            for n, w, value in fields(v):
                if n != 1 or w != 2:
                    continue
                tag, number, plugin = "", None, ""
                for fn, fw, fv in fields(value):
                    if fn == 1 and fw == 2:
                        tag = fv.decode("utf-8", "replace")
                    elif fn == 2 and fw == 5:
                        number = struct.unpack("<f", struct.pack("<I", fv))[0]
                    elif fn == 8 and fw == 2:
                        number = _tensor_scalar(fv)
                    elif fn == 9 and fw == 2:
                        plugin = _plugin(fv)
                if tag and number is not None and plugin in ("", "scalars"):
                    out.append((tag, number))
    return step, out


class TensorBoardParser:
    """Stateful parser of one event file; accepts arbitrary byte chunks.

    >>> TensorBoardParser().feed(b"").frame.columns
    ['_step', '_line']
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A new file generation: forget the remainder and the record count."""
        self._rest = b""
        self._records = 0   # TFRecords read: LINE is the record's 1-based ordinal
        self._rows = 0

    def feed(self, data: bytes) -> Parsed:
        """Decode every complete record in remainder + data; keep the incomplete tail."""
        buf, pos, bad = self._rest + data, 0, BadTally()
        steps, lines, tags, values = [], [], [], []
        while len(buf) - pos >= _HEADER:
            length, crc = struct.unpack_from("<QI", buf, pos)
            if length >= _MAX_RECORD or crc != crc32c_masked(buf[pos:pos + 8]):
                start = pos
                pos += 1
                while len(buf) - pos >= _HEADER and not looks_like_tfrecord(buf[pos:pos + _HEADER]):
                    pos += 1
                bad.add(self._records + 1, f"not a TFRecord boundary: skipped {pos - start} bytes")
                continue
            end = pos + _HEADER + length + 4
            if end > len(buf):
                break
            self._records += 1
            try:
                step, found = scalars(buf[pos + _HEADER:end - 4])
            except (ValueError, IndexError, struct.error) as e:
                bad.add(self._records, f"bad Event protobuf: {e}")
                found = []
            for tag, value in found:
                steps.append(step)
                lines.append(self._records)
                tags.append(tag)
                values.append(value)
            pos = end
        self._rest = buf[pos:]
        if not tags:
            return parsed(Parsed.empty().frame, {}, bad)
        long = pl.DataFrame({STEP_COL: steps, LINE: lines, "tag": tags, "v": values},
                            schema={STEP_COL: pl.Int64, LINE: pl.Int64, "tag": pl.String, "v": pl.Float64})
        # One row per step (scalars of one step arrive as separate events); LINE is the first event's.
        wide = long.pivot(on="tag", index=STEP_COL, values="v", aggregate_function="last", maintain_order=True)
        first = long.group_by(STEP_COL, maintain_order=True).agg(pl.col(LINE).min())
        raw = first.join(wide, on=STEP_COL, how="left", maintain_order="left")
        frame = finalize(raw, self._rows)
        self._rows += frame.height
        return parsed(frame, {}, bad)
