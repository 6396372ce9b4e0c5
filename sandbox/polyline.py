"""Google encoded polylines: the path format of the sandbox's track entries.

Hellotracks' own map code decodes track paths as Google encoded polylines at 1e-5 degrees, so the
sandbox writes them that way. Each coordinate is rounded to an integer number of
``10**-precision`` degrees (half away from zero, as the reference implementation does); the
first point is written whole and every later one as the difference to the point before, latitude
before longitude. A difference becomes a zig-zag integer (sign in the lowest bit) cut into 5-bit
groups, lowest first; every group but the last carries the 0x20 continuation bit, and 63 is added
to each to land in printable ASCII.

`encode` and `decode` work on one path. `encode_many` writes thousands of paths at once with
numpy, for the fleet, whose paths are the expensive part of a day.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Zig-zagged deltas of coordinates within +-180 degrees at precision 5 need at most 26 bits, so
# 6 groups; 8 leaves room for precision 6 and 7.
_MAX_GROUPS = 8


def quantize(value: float, precision: int = 5) -> int:
    """Return `value` as an integer count of ``10**-precision`` degrees, rounded half away from 0.

    This is the rounding of the reference encoder; Python's `round` rounds half to even and would
    disagree with other encoders on exact halves.
    """
    scaled = abs(value) * 10**precision
    whole = int(scaled + 0.5)
    return -whole if value < 0 else whole


def _write_value(delta: int, out: list[str]) -> None:
    value = ~(delta << 1) if delta < 0 else delta << 1
    while value >= 0x20:
        out.append(chr((0x20 | (value & 0x1F)) + 63))
        value >>= 5
    out.append(chr(value + 63))


def encode(points: Sequence[tuple[float, float]], precision: int = 5) -> str:
    """Encode ``(lat, lng)`` points as a polyline string; an empty sequence gives ``""``."""
    out: list[str] = []
    prev_lat = prev_lng = 0
    for lat, lng in points:
        q_lat = quantize(lat, precision)
        q_lng = quantize(lng, precision)
        _write_value(q_lat - prev_lat, out)
        _write_value(q_lng - prev_lng, out)
        prev_lat, prev_lng = q_lat, q_lng
    return "".join(out)


def decode(s: str, precision: int = 5) -> list[tuple[float, float]]:
    """Decode a polyline string into ``(lat, lng)`` points.

    Raises `ValueError` on a character outside the alphabet, a string cut inside a value, or an
    odd number of values (a latitude without its longitude).
    """
    factor = 10**precision
    points: list[tuple[float, float]] = []
    values: list[int] = []
    shift = result = 0
    for char in s:
        group = ord(char) - 63
        if group < 0 or group > 0x3F:
            raise ValueError(f"invalid polyline character {char!r}")
        result |= (group & 0x1F) << shift
        if group & 0x20:
            shift += 5
            continue
        values.append(~(result >> 1) if result & 1 else result >> 1)
        shift = result = 0
    if shift:
        raise ValueError("polyline ends inside a value")
    if len(values) % 2:
        raise ValueError("polyline has a latitude without a longitude")
    lat = lng = 0
    for i in range(0, len(values), 2):
        lat += values[i]
        lng += values[i + 1]
        points.append((lat / factor, lng / factor))
    return points


def encode_many(lat_q: np.ndarray, lng_q: np.ndarray, counts: np.ndarray) -> list[str]:
    """Encode many paths at once from already quantized coordinates.

    `lat_q` and `lng_q` hold the integer coordinates (see `quantize`) of all paths one after the
    other; `counts[i]` is the number of points of path ``i``. Returns one string per path, equal
    to what `encode` gives for the same points. A path of 0 points gives ``""``.
    """
    lat_q = np.asarray(lat_q, dtype=np.int64)
    lng_q = np.asarray(lng_q, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return [""] * len(counts)
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])

    d_lat = np.diff(lat_q, prepend=np.int64(0))
    d_lng = np.diff(lng_q, prepend=np.int64(0))
    # The first point of every path is written whole, not as a delta to the previous path.
    firsts = starts[counts > 0]
    d_lat[firsts] = lat_q[firsts]
    d_lng[firsts] = lng_q[firsts]

    deltas = np.empty(2 * total, dtype=np.int64)
    deltas[0::2] = d_lat
    deltas[1::2] = d_lng
    zig = np.where(deltas < 0, ~(deltas << 1), deltas << 1)

    # Each value takes as many 5-bit groups as its bit length needs, at least one. The groups
    # of value i start at offsets[i] in the output; group k is written for every value that
    # has more than k groups.
    n_groups = np.ones(len(zig), dtype=np.int64)
    for k in range(1, _MAX_GROUPS):
        n_groups += zig >= (np.int64(1) << (5 * k))
    ends = np.cumsum(n_groups)
    offsets = ends - n_groups
    buffer = np.empty(int(ends[-1]), dtype=np.uint8)
    for k in range(int(n_groups.max())):
        has = n_groups > k
        group = (zig[has] >> (5 * k)) & 0x1F
        more = n_groups[has] > k + 1
        buffer[offsets[has] + k] = (group | (more.astype(np.int64) << 5)) + 63
    chars = buffer.tobytes().decode("ascii")

    # A path's characters end where the groups of its last longitude end.
    path_ends = ends[2 * (starts + counts) - 1].tolist()
    out: list[str] = []
    begin = 0
    for count, end in zip(counts.tolist(), path_ends, strict=True):
        if count == 0:
            out.append("")
            continue
        out.append(chars[begin:end])
        begin = end
    return out
