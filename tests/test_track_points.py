"""The vectorized polyline decoder against the plain reference codec, malformed paths included."""

from __future__ import annotations

import random
from datetime import datetime

import numpy as np
import pyarrow as pa
import pytest

from assets.track_points import decode_polylines, points_table
from sandbox import polyline


def random_path(rng: random.Random, n: int) -> list[tuple[float, float]]:
    lat, lng = rng.uniform(-80, 80), rng.uniform(-179, 179)
    points = []
    for _ in range(n):
        lat += rng.uniform(-0.05, 0.05)
        lng += rng.uniform(-0.05, 0.05)
        points.append((round(lat, 5), round(lng, 5)))
    return points


def test_decoding_many_paths_at_once_equals_decoding_each():
    rng = random.Random(3)
    paths = [polyline.encode(random_path(rng, rng.randint(0, 40))) for _ in range(300)]
    valid, counts, lat, lng = decode_polylines(paths)
    assert valid.all()
    expected = [polyline.decode(p) for p in paths]
    assert counts.tolist() == [len(e) for e in expected]
    flat = np.array([pt for e in expected for pt in e]).reshape(-1, 2)
    assert np.array_equal(lat, flat[:, 0]) and np.array_equal(lng, flat[:, 1])


@pytest.mark.parametrize(
    ("path", "why"),
    [
        # A character outside the 64 the format is written in.
        ("_p~iF~ps|U!", "bad character"),
        # The last value is cut short (its last character says more follows).
        ("_p~iF~ps|U_", "cut short"),
        # One latitude without its longitude.
        ("_p~iF", "odd number of values"),
        # Non-ASCII text.
        ("_p~iF~ps|Ué", "not ASCII"),
    ],
)
def test_malformed_paths_are_flagged_and_do_not_shift_the_others(path, why):
    good = polyline.encode([(38.5, -120.2), (40.7, -120.95)])
    valid, counts, lat, lng = decode_polylines([good, path, good])
    assert valid.tolist() == [True, False, True], why
    assert counts.tolist() == [2, 0, 2]
    assert lat.tolist() == [38.5, 40.7, 38.5, 40.7]
    assert lng.tolist() == [-120.2, -120.95, -120.2, -120.95]


def test_points_get_ordered_times_between_track_start_and_end():
    path = polyline.encode([(48.2, 16.37), (48.21, 16.37), (48.23, 16.37)])
    start, end = datetime(2025, 10, 10, 8, 0), datetime(2025, 10, 10, 8, 30)
    tracks = pa.table(
        {
            "track_id": pa.array([7, 8], pa.int64()),
            "member_uid": ["m1", "m2"],
            "start_ts": pa.array([start, start], pa.timestamp("ms")),
            "end_ts": pa.array([end, end], pa.timestamp("ms")),
            "path_encoded": [path, "not a path!"],
        }
    )
    points, bad = points_table(tracks, 20251010)
    assert points.column("seq").to_pylist() == [0, 1, 2]
    times = points.column("ts").to_pylist()
    assert times[0] == start and times[-1] == end
    # The second leg is twice as long as the first, so it takes two thirds of the time.
    assert times[1] == datetime(2025, 10, 10, 8, 10)
    assert [row["record_id"] for row in bad] == ["8"]
    assert bad[0]["table_name"] == "track_points"
