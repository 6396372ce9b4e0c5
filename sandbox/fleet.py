"""A deterministic synthetic fleet: the data behind the sandbox's imitation of the Hellotracks API.

`Fleet` makes up a company, its teams, places and members, and for every day its jobs and GPS
tracks, shaped like the objects of the API reference (Job 3.1, Member 3.2, Track entry 3.3 with
`altitude_max` and `path_encoded`, Place 3.4, Company 2.6 plus `timezone`). Tests, the demo and
the benchmark all read from it, so its rules are fixed:

- Determinism. The constructor arguments decide everything. Every random choice comes from a
  generator seeded with a hash of ``(seed, what, day, member index, ...)``; nothing depends on
  call order, on other calls, on `hash()` or on the wall clock (except the default `today`).
- Days. A day is a YYYYMMDD integer in the company's `timezone`; its window is
  ``[local midnight, next local midnight)`` in ms, so 23 or 25 hours around DST changes.
- History. Each day's full history is generated once, then seen as of the end of `today`:
  anything dated after that (a job created later, a check-out the next morning, an archive two
  days on, a track) is not visible yet. Later edits reach at most 3 days past a job's day, so
  older days never change as `today` moves on. Days after `today` hold only jobs created by then,
  none of them accepted, and no tracks; days before `start_day` hold nothing.
- Members. `members` people belong to the company at some time: most from before
  `start_day`, a few joining later, a few leaving (with 4 workers or more, the last one always
  leaves a month or two after `start_day` and the one before joins 45 days after it).
  `accounts()` is the roster on `today`; `all_members()` adds those who left; neither shows
  people who join after `today`. The admin (always the first member) and the operators do no
  field work. Workers work in their own `timezone`'s clock; a job's `day` is still the
  company's day.
- Jobs and tracks. Each working worker-day is simulated as a route: from home or the team depot
  to each visited job site in order and back home, each drive one track entry whose `start_ts`
  and `end_ts` lie between the previous check-out and the next check-in. Some evenings bring a
  call-out whose drive crosses midnight: a track belongs to the day of its `start_ts`, and a
  drive that would start after the company's midnight is not recorded, so every track starts on
  the day it was made for. `distance` is the haversine length of the decoded `path_encoded`.
  A job whose check-out is recorded only the next morning was left unclosed: the worker drove
  on meanwhile, so tracks can fall between such a job's check-in and check-out.

Units follow the API: timestamps in ms since the epoch (0 = did not happen), distances in metres,
speeds in m/s, job windows HHMM. Member `working_hours` are HHMM, as in the Member example, while
the teams' `working_hours` in `company()` are minutes after midnight, as in the getcompany example.

Reports (`Fleet.report`), both ends of `days` included, times as local ``YYYY-MM-DD HH:MM:SS``
in the company's time zone or ``""``:

- ``jobs``: ``day, job_id, member_uid, member, title, place_uid, status, check_in, check_out,
  done_at``: one row per job of `jobs(day)`, ordered by day then job id. `member` is the worker's
  name, `status` a progress word of `job_progress`, `done_at` the success or failure time.
- ``mileage``: ``day, member_uid, member, distance_km, trips``: one row per member and day with
  tracks, `distance_km` the sum of the `distance` of the tracks of `tracks(day window)` in km
  rounded to 3 decimals, `trips` their count; ordered by day then member uid.
- ``timesheet``: ``day, member_uid, member, first_activity, last_activity, hours``: one row per
  member and day with activity, the first and last of the start and end of that day's tracks
  and the check-ins and check-outs of that day's jobs (minus check-outs over 6 hours after their
  check-in, which close forgotten jobs); `hours` their span rounded to 2 decimals.

`accounts` filters every report by member uid or username; unassigned jobs have no member and so
appear only in unfiltered job reports.
"""

from __future__ import annotations

import gc
import hashlib
import math
import random
import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from sandbox.polyline import encode_many

_MS_MINUTE = 60_000
_MS_HOUR = 3_600_000
_EARTH_RADIUS_M = 6_371_008.8
_M_PER_DEG = 111_320.0
# The per-day cache is bounded by days and by cached jobs and tracks, so a 2,000-member fleet
# keeps a few days rather than 64 days of 100,000 jobs each.
_CACHE_DAYS = 64
_CACHE_ROWS = 300_000
# Later edits of a job happen at most this many days after its day.
EDIT_HORIZON_DAYS = 3
# A check-out longer than this after its check-in closes a forgotten job: timesheets skip it.
_MAX_VISIT_MS = 6 * _MS_HOUR

# Every job field with the value it has until something sets it, in the order of the stored
# job tuples and of the job objects returned. `status` exists only on archived jobs.
_JOB_TEMPLATE: dict[str, Any] = {
    "id": "",
    "uidSecondary": "",
    "type": 0,
    "teamId": 0,
    "day": 0,
    "number": 0,
    "priority": 5,
    "destinationName": "",
    "destinationText": "",
    "destinationLat": 0.0,
    "destinationLng": 0.0,
    "placeUid": "",
    "placeName": "",
    "placeUrl": "",
    "radius": 100,
    "worker": "",
    "receiverUid": "",
    "workerName": "",
    "assigneeName": "",
    "assigneeUsername": "",
    "dispatcherUid": "",
    "dispatcherName": "",
    "dispatcherUrl": "",
    "contactName": "",
    "contactPhone": "",
    "contactEmail": "",
    "confirmationEmails": "",
    "textDispatcher": "",
    "textReceiver": "",
    "fileNumber": "",
    "orderId": 0,
    "label": "",
    "carryOver": 0,
    "customFields": (),
    "windowStart": 0,
    "windowEnd": 2400,
    "onSiteSeconds": 0,
    "scheduledStart": 0,
    "scheduledEnd": 0,
    "itemsToPickup": 0,
    "itemsToDropoff": 0,
    "inputFormConfig": "",
    "linkedForms": "",
    "linkedZones": "",
    "manualChecks": "",
    "signatureName": "",
    "signatureSvg": "",
    "signaturePdf": "",
    "tsCreated": 0,
    "tsSaved": 0,
    "tsAssigned": 0,
    "tsScheduled": 0,
    "tsAccepted": 0,
    "tsRejected": 0,
    "tsCheckIn": 0,
    "tsCheckNFC1": 0,
    "tsCheckNFC2": 0,
    "tsCheckOut": 0,
    "tsDoneSuccess": 0,
    "tsDoneFailed": 0,
    "tsSignature": 0,
    "status": None,
}
JOB_FIELDS: tuple[str, ...] = tuple(_JOB_TEMPLATE)

TRACK_FIELDS: tuple[str, ...] = (
    "id",
    "owner_uid",
    "kind",
    "labels",
    "start_ts",
    "end_ts",
    "start_lat",
    "start_lng",
    "end_lat",
    "end_lng",
    "distance",
    "waypoint_count",
    "speed_avg",
    "speed_max",
    "altitude_min",
    "altitude_max",
    "path_encoded",
)

REPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "jobs": (
        "day",
        "job_id",
        "member_uid",
        "member",
        "title",
        "place_uid",
        "status",
        "check_in",
        "check_out",
        "done_at",
    ),
    "mileage": ("day", "member_uid", "member", "distance_km", "trips"),
    "timesheet": ("day", "member_uid", "member", "first_activity", "last_activity", "hours"),
}

# Time zone -> (city, country code, dial code, latitude, longitude, altitude in m).
_CITIES: dict[str, tuple[str, str, str, float, float, int]] = {
    "Europe/Vienna": ("Vienna", "AT", "+43", 48.2082, 16.3738, 190),
    "Europe/Berlin": ("Berlin", "DE", "+49", 52.5200, 13.4050, 40),
    "Europe/Zurich": ("Zurich", "CH", "+41", 47.3769, 8.5417, 410),
    "Europe/London": ("London", "GB", "+44", 51.5072, -0.1276, 20),
    "Europe/Paris": ("Paris", "FR", "+33", 48.8566, 2.3522, 40),
    "Europe/Madrid": ("Madrid", "ES", "+34", 40.4168, -3.7038, 650),
    "America/New_York": ("New York", "US", "+1", 40.7128, -74.0060, 20),
    "America/Chicago": ("Chicago", "US", "+1", 41.8781, -87.6298, 180),
    "America/Denver": ("Denver", "US", "+1", 39.7392, -104.9903, 1600),
    "America/Los_Angeles": ("Los Angeles", "US", "+1", 34.0522, -118.2437, 90),
    "America/Sao_Paulo": ("Sao Paulo", "BR", "+55", -23.5505, -46.6333, 760),
    "Australia/Sydney": ("Sydney", "AU", "+61", -33.8688, 151.2093, 30),
    "Asia/Tokyo": ("Tokyo", "JP", "+81", 35.6762, 139.6503, 40),
    "Asia/Kolkata": ("Mumbai", "IN", "+91", 19.0760, 72.8777, 15),
    "Africa/Johannesburg": ("Johannesburg", "ZA", "+27", -26.2041, 28.0473, 1750),
    "UTC": ("Greenwich", "GB", "+44", 51.4826, 0.0077, 10),
}
# Zones a few workers live in; those 1-3 hours behind the company's zone are used, so that
# their working day, in their own clock, stays within the company's day.
_OTHER_ZONES = (
    "Europe/London",
    "Europe/Lisbon",
    "Europe/Berlin",
    "Europe/Helsinki",
    "Atlantic/Azores",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Halifax",
    "Australia/Brisbane",
    "Australia/Perth",
    "Asia/Tokyo",
    "UTC",
)
_FIRST_NAMES = (
    "Anna", "Ben", "Clara", "David", "Elena", "Felix", "Greta", "Hannah", "Ivan", "Julia",
    "Karim", "Lena", "Marco", "Nina", "Oskar", "Paula", "Quentin", "Rosa", "Stefan", "Tara",
    "Umut", "Vera", "Walter", "Xenia", "Yusuf", "Zoe", "Amir", "Birgit", "Carlos", "Dana",
    "Emil", "Fatima", "Georg", "Heidi", "Ines", "Jonas", "Katja", "Luca", "Mira", "Noah",
)  # fmt: skip
_LAST_NAMES = (
    "Gruber", "Huber", "Bauer", "Wagner", "Müller", "Pichler", "Steiner", "Moser", "Mayer",
    "Hofer", "Leitner", "Berger", "Fuchs", "Eder", "Fischer", "Schmid", "Winkler", "Weber",
    "Schwarz", "Maier", "Brunner", "Wolf", "Auer", "Wimmer", "Lang", "Baumgartner", "Kovac",
    "Novak", "Yilmaz", "Rossi", "Santos", "Silva", "Kim", "Nowak", "Horvat", "Ivanova",
)  # fmt: skip
_STREETS = (
    "Market Street", "Mill Lane", "Station Road", "Church Street", "Park Avenue", "Bridge Road",
    "Garden Way", "Harbour Road", "Linden Alley", "Oak Street", "River Lane", "School Street",
    "Forest Road", "Hill Street", "Lake View", "Orchard Lane", "Castle Road", "Meadow Way",
)  # fmt: skip
_BUSINESSES = (
    "Bakery", "Dental Clinic", "Hotel", "Pharmacy", "Supermarket", "Office Park", "School",
    "Garage", "Restaurant", "Fitness Club", "Warehouse", "Library", "Apartments", "Kindergarten",
)  # fmt: skip
_TEAM_NAMES = (
    "North", "South", "East", "West", "Central", "Harbour", "Airport", "Riverside", "Uptown",
    "Old Town", "Hills", "Lakeside",
)  # fmt: skip
_SERVICES = (
    "Boiler service", "Meter reading", "Installation", "Repair", "Inspection", "Maintenance",
    "Filter change", "Leak check", "Commissioning", "Safety check",
)  # fmt: skip
_COLORS = (
    "#22c328", "#1e88e5", "#e53935", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41", "#3949ab",
    "#c0ca33", "#d81b60", "#546e7a", "#f4511e",
)  # fmt: skip
_SKILLS = (
    "electrical", "plumbing", "hvac", "gas", "heavy-lift", "forklift", "first-aid", "ladder",
)  # fmt: skip
_LABELS = ("urgent", "vip", "urgent,vip")
_ACCESS = ("Key at reception", "Call on arrival")
# Job ids: 96-bit numbers stepped by a large odd constant from a hashed base.
_ID_MASK = (1 << 96) - 1
_ID_STEP = 0x9E3779B97F4A7C15F39CC061
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ON_SITE_CHOICES = (300, 600, 900, 1200, 1800, 2700, 3600, 5400)
_RECEIVER_OK = ("All done.", "Done, customer signed.", "Finished, no issues.", "")
_RECEIVER_FAILED = ("Customer not at home.", "Parts missing.", "No access to site.")

# Job outcomes on their day, with their weights.
_OUTCOMES = (
    ("success", 0.70),
    ("failed", 0.08),
    ("manual_done", 0.03),
    ("stuck", 0.02),
    ("late_checkout", 0.02),
    ("no_show", 0.04),
    ("unaccepted", 0.03),
    ("rejected", 0.04),
    ("cancelled", 0.04),
)
_OUTCOME_NAMES = tuple(name for name, _ in _OUTCOMES)
_OUTCOME_CUM = tuple(accumulate(w for _, w in _OUTCOMES))


def _derive(*parts: object) -> int:
    """A 64-bit integer from the parts, the same in every process (unlike `hash`)."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


class _Rand(random.Random):
    """`random.Random` with its integer methods reduced to one float draw each.

    The standard `randint` and `choice` reject and redraw to be exactly uniform, at several times
    the cost; the sandbox draws millions of them per large day and a bias of 2**-53 is harmless.
    """

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def choice(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.random() * len(seq))]


def _rng(*parts: object) -> _Rand:
    return _Rand(_derive(*parts))


def _uid(seed: int, kind: str, index: int, attempt: int) -> str:
    value = _derive(seed, "uid", kind, index, attempt)
    length = 6 + value % 3
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    chars = []
    value //= 3
    for _ in range(length):
        value, r = divmod(value, 36)
        chars.append(alphabet[r])
    # A leading letter keeps uids from reading as numbers in spreadsheets.
    chars[0] = alphabet[_derive(seed, "uid0", kind, index, attempt) % 26]
    return "".join(chars)


def _ascii(name: str) -> str:
    """A name as lowercase ASCII for usernames and domains: ü becomes ue, and so on."""
    return name.lower().replace("ä", "ae").replace("ö", "oe").replace("ü", "ue")


# Contact people of jobs, made once rather than formatted for every job.
_CONTACTS = tuple(f"{first} {last}" for first in _FIRST_NAMES for last in _LAST_NAMES)
_CONTACT_EMAILS = tuple(_ascii(f"{name.replace(' ', '.')}@mail.example") for name in _CONTACTS)


def _to_date(day: int) -> date:
    return date(day // 10000, day // 100 % 100, day % 100)


def _to_day(d: date) -> int:
    return d.year * 10000 + d.month * 100 + d.day


def _add_days(day: int, n: int) -> int:
    return _to_day(_to_date(day) + timedelta(days=n))


@lru_cache(maxsize=1 << 16)
def _midnight_ms(tz: str, day: int) -> int:
    """Local midnight starting `day` in `tz`, in ms.

    Where a zone skips midnight, fold 0 gives the instant the day begins; where midnight happens
    twice, its first occurrence.
    """
    d = _to_date(day)
    local = datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz))
    return int(local.timestamp()) * 1000


def _fmt_local(ts_ms: int, tz: ZoneInfo) -> str:
    if not ts_ms:
        return ""
    return datetime.fromtimestamp(ts_ms / 1000, tz).strftime("%Y-%m-%d %H:%M:%S")


def job_progress(job: dict[str, Any]) -> str:
    """The progress word of a job object, as the `jobs` report shows it.

    One of ``archived``, ``done``, ``failed``, ``in_progress``, ``rejected``, ``accepted``,
    ``scheduled`` (assigned, nothing further) and ``unassigned``, tested in that order.
    """
    if job.get("status") == "archived":
        return "archived"
    if job["tsDoneSuccess"]:
        return "done"
    if job["tsDoneFailed"]:
        return "failed"
    if job["tsCheckIn"]:
        return "in_progress"
    if job["tsRejected"]:
        return "rejected"
    if job["tsAccepted"]:
        return "accepted"
    if job["worker"]:
        return "scheduled"
    return "unassigned"


@dataclass(slots=True)
class _Member:
    index: int
    uid: str
    username: str
    name: str
    email: str
    phone: str
    role: str
    teams: list[int]
    tz: str
    color: str
    skills: list[str]
    home: tuple[float, float]
    join_day: int
    leave_day: int | None
    join_ms: int
    leave_ms: int
    start_min: int
    end_min: int
    saturdays: bool
    speed: float
    travel_mode: str
    language: str


@dataclass(slots=True)
class _Place:
    uid: str
    name: str
    lat: float
    lng: float
    address: str
    postalcode: str
    phone: str
    email: str
    radius: int
    color: str
    teams: list[int]
    depot: bool
    data: list[tuple[str, str]]


@dataclass(slots=True)
class _Day:
    """A day as seen at a cutoff: its jobs (by id, never changed) and its drives.

    The drives become track tuples (`tracks`) only when first asked for: paths are the
    expensive part, and many callers want only the jobs.
    """

    jobs: list[dict]
    legs: list[_Leg]
    tracks: list[tuple] | None = None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while making a large number of objects.

    Building 100,000 jobs triggers collections that walk every cached object again and again,
    which costs several times the building itself; nothing made here forms reference cycles.
    Each pause that found the collector running turns it back on at its end, so with threads
    overlapping it may come back early, but it never stays off.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Fleet:
    """A synthetic company whose data is a pure function of the constructor arguments.

    `today` (YYYYMMDD) decides what is visible: see the module docstring. Every method returns
    fresh objects that callers may change. Safe to share between threads.
    """

    def __init__(
        self,
        seed: int = 7,
        members: int = 25,
        *,
        timezone: str = "Europe/Vienna",
        today: int | None = None,
        jobs_per_member: float = 8.0,
        places: int | None = None,
        start_day: int = 20240101,
    ) -> None:
        self.seed = seed
        self.timezone = timezone
        self._tz = ZoneInfo(timezone)
        if today is None:
            today = _to_day(datetime.now(self._tz).date())
        self.today = today
        self.start_day = start_day
        self.jobs_per_member = float(jobs_per_member)
        self._n_members = max(1, members)
        city = _CITIES.get(timezone)
        if city is None:
            # An unlisted zone gets a made-up but stable location of its own.
            r = _rng(seed, "city", timezone)
            city = (timezone.rsplit("/", 1)[-1].replace("_", " "), "XX", "+99",
                    r.uniform(-45, 60), r.uniform(-150, 150), r.randint(0, 600))  # fmt: skip
        self._city, self._country, self._dial, lat, lng, self._altitude = city
        self._centre = (lat, lng)
        # Metres per degree of longitude at the centre: distances within the area are planned
        # on this flat approximation.
        self._kx = _M_PER_DEG * math.cos(math.radians(lat))
        self._radius_m = 18_000.0 + min(self._n_members, 2000) * 6.0
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, int], _Day] = OrderedDict()
        self._cached_rows = 0

        self._used_uids: set[str] = set()
        company_rng = _rng(seed, "company")
        self._company_name = (
            f"{company_rng.choice(_LAST_NAMES)} & {company_rng.choice(_LAST_NAMES)} Field Services"
        )
        self._domain = _ascii(self._company_name.split(" ")[0]) + "-service.example"
        self._company_uid = self._new_uid("company", 0)
        n_teams = max(1, round(self._n_members / 10))
        self._teams = [(i + 1, self._team_name(i)) for i in range(n_teams)]
        n_places = places if places is not None else min(self._n_members * 2, 5000)
        self._places = self._make_places(max(n_places, n_teams))
        self._first_site = n_teams  # places before this index are the team depots
        self._place_lat = [p.lat for p in self._places]
        self._place_lng = [p.lng for p in self._places]
        self._members = self._make_members()
        self._workers = [m for m in self._members if m.role == "worker"]
        self._by_uid = {m.uid: m for m in self._members}
        self._operators = [m for m in self._members if m.role != "worker"]

    # ----------------------------------------------------------------------------- days

    def day_window_ms(self, day: int) -> tuple[int, int]:
        """``[local midnight, next local midnight)`` of `day` in ms; 23 or 25 h around DST."""
        return _midnight_ms(self.timezone, day), _midnight_ms(self.timezone, _add_days(day, 1))

    def day_of_ms(self, ts_ms: int) -> int:
        """The local YYYYMMDD day whose window holds `ts_ms`."""
        day = _to_day(datetime.fromtimestamp(ts_ms / 1000, self._tz).date())
        start, end = self.day_window_ms(day)
        # Only where midnight happens twice can the calendar date and the window disagree.
        if ts_ms < start:
            return _add_days(day, -1)
        if ts_ms >= end:
            return _add_days(day, 1)
        return day

    def _cutoff_ms(self) -> int:
        return self.day_window_ms(self.today)[1]

    # ----------------------------------------------------------------------------- static data

    def _new_uid(self, kind: str, index: int) -> str:
        attempt = 0
        while True:
            uid = _uid(self.seed, kind, index, attempt)
            if uid not in self._used_uids:
                self._used_uids.add(uid)
                return uid
            attempt += 1

    def _team_name(self, i: int) -> str:
        base = _TEAM_NAMES[i % len(_TEAM_NAMES)]
        lap = i // len(_TEAM_NAMES)
        return f"{base} Team" if lap == 0 else f"{base} Team {lap + 1}"

    def _point_near(self, rng: random.Random, centre: tuple[float, float], radius_m: float):
        dist = radius_m * math.sqrt(rng.random())
        angle = rng.uniform(0, 2 * math.pi)
        lat = centre[0] + dist * math.cos(angle) / _M_PER_DEG
        lng = centre[1] + dist * math.sin(angle) / (_M_PER_DEG * math.cos(math.radians(lat)))
        return round(lat, 6), round(lng, 6)

    def _address(self, rng: random.Random) -> tuple[str, str]:
        postal = f"{rng.randint(1, 23) * 10 + 1000}"
        street = f"{rng.choice(_STREETS)} {rng.randint(1, 180)}"
        return f"{street}, {postal} {self._city}", postal

    def _phone(self, rng: random.Random) -> str:
        return f"{self._dial} {rng.randint(600, 699)} {rng.randint(1_000_000, 9_999_999)}"

    def _make_places(self, n: int) -> list[_Place]:
        out = []
        n_teams = len(self._teams)
        for i in range(n):
            rng = _rng(self.seed, "place", i)
            depot = i < n_teams
            if depot:
                # Depots sit on a ring around the centre, one per team.
                angle = 2 * math.pi * i / n_teams
                d = self._radius_m * 0.35 if n_teams > 1 else 0.0
                lat = self._centre[0] + d * math.cos(angle) / _M_PER_DEG
                lng = self._centre[1] + d * math.sin(angle) / (
                    _M_PER_DEG * math.cos(math.radians(self._centre[0]))
                )
                lat, lng = round(lat, 6), round(lng, 6)
                name = f"Depot {self._teams[i][1].removesuffix(' Team')}"
                teams = [self._teams[i][0]]
            else:
                lat, lng = self._point_near(rng, self._centre, self._radius_m)
                name = f"{rng.choice(_LAST_NAMES)} {rng.choice(_BUSINESSES)}"
                teams = [] if rng.random() < 0.7 else [rng.randint(1, n_teams)]
            address, postal = self._address(rng)
            data = []
            if not depot and rng.random() < 0.5:
                data.append(("manager", f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"))
            if rng.random() < 0.3:
                data.append(("access", rng.choice(("gate code 1234", "ring twice", "rear door"))))
            out.append(
                _Place(
                    uid=self._new_uid("place", i),
                    name=name,
                    lat=lat,
                    lng=lng,
                    address=address,
                    postalcode=postal,
                    phone=self._phone(rng) if rng.random() < 0.6 else "",
                    email=f"info{i}@customer-{i}.example" if rng.random() < 0.4 else "",
                    radius=rng.choice((50, 100, 100, 150, 200)),
                    color=rng.choice(_COLORS) if rng.random() < 0.3 else "",
                    teams=teams,
                    depot=depot,
                    data=data,
                )
            )
        return out

    def _other_zones(self) -> list[str]:
        probe = datetime(2024, 1, 15, 12)
        base = probe.replace(tzinfo=self._tz).utcoffset()
        out = []
        for zone in _OTHER_ZONES:
            if zone == self.timezone:
                continue
            diff = (base - probe.replace(tzinfo=ZoneInfo(zone)).utcoffset()).total_seconds()
            if 0 < diff <= 3 * 3600:
                out.append(zone)
        return out

    def _make_members(self) -> list[_Member]:
        n = self._n_members
        start = _to_date(self.start_day)
        other_zones = self._other_zones()
        n_teams = len(self._teams)
        roles = [
            "admin" if i == 0 else "operator" if i % 12 == 1 and n >= 4 else "worker"
            for i in range(n)
        ]
        worker_indexes = [i for i, role in enumerate(roles) if role == "worker"]
        # The last two workers are always a leaver and a late joiner, so that every fleet of
        # some size shows both.
        forced_leaver = worker_indexes[-1] if len(worker_indexes) >= 4 else -1
        forced_joiner = worker_indexes[-2] if len(worker_indexes) >= 4 else -1
        members = []
        worker_ordinal = 0
        operator_ordinal = 0
        for i, role in enumerate(roles):
            rng = _rng(self.seed, "member", i)
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            name = f"{first} {last}"
            handle = _ascii(f"{first}.{last}")
            username = f"{handle}.{i}@{self._domain}"

            # Most joined before the first day; some join later and some leave.
            join = start - timedelta(days=rng.randint(30, 1500))
            leave: date | None = None
            if role == "worker":
                if rng.random() < 0.12:
                    join = start + timedelta(days=rng.randint(1, 700))
                if rng.random() < 0.10:
                    leave = max(join, start) + timedelta(days=rng.randint(20, 600))
            if i == forced_leaver:
                join = start - timedelta(days=400)
                leave = start + timedelta(days=30 + self.seed % 30)
            if i == forced_joiner:
                join = start + timedelta(days=45)
                leave = None
            join_day = _to_day(join)
            leave_day = _to_day(leave) if leave else None

            if role == "worker":
                teams = [1 + worker_ordinal % n_teams]
                worker_ordinal += 1
            elif role == "operator":
                teams = sorted(
                    {1 + operator_ordinal % n_teams, 1 + (operator_ordinal + 1) % n_teams}
                )
                operator_ordinal += 1
            else:
                teams = []
            tz = self.timezone
            if role == "worker" and other_zones and rng.random() < 0.12:
                tz = rng.choice(other_zones)
            if role == "worker" and rng.random() < 0.7:
                depot = self._places[teams[0] - 1]
                home = (depot.lat, depot.lng)
            else:
                home = self._point_near(rng, self._centre, self._radius_m * 0.8)
            start_min = rng.choice((360, 390, 420, 450, 480, 510))
            members.append(
                _Member(
                    index=i,
                    uid=self._new_uid("member", i),
                    username=username,
                    name=name,
                    email=username if rng.random() < 0.8 else f"{handle}@mail.example",
                    phone=self._phone(rng),
                    role=role,
                    teams=teams,
                    tz=tz,
                    color=rng.choice(_COLORS),
                    skills=sorted(rng.sample(_SKILLS, rng.randint(1, 3))),
                    home=home,
                    join_day=join_day,
                    leave_day=leave_day,
                    join_ms=_midnight_ms(self.timezone, join_day) + 9 * _MS_HOUR,
                    leave_ms=(
                        _midnight_ms(self.timezone, leave_day) + 8 * _MS_HOUR if leave_day else 0
                    ),
                    start_min=start_min,
                    end_min=start_min + rng.choice((480, 510, 540, 570)),
                    saturdays=rng.random() < 0.3,
                    speed=rng.uniform(8.0, 12.5),
                    travel_mode=rng.choice(("car", "car", "car", "van", "truck")),
                    language=rng.choice(("en", "de", "de", "en", "tr")),
                )
            )
        return members

    # ----------------------------------------------------------------------------- objects

    def company(self) -> dict:
        """The getcompany ``company`` object, with `teams_config` and the IANA `timezone`."""
        teams = []
        for team_id, name in self._teams:
            hours = {"source": "team"}
            for wd in _WEEKDAYS[:5]:
                hours[wd] = {"start": 480, "end": 1020}
            teams.append({"id": team_id, "name": name, "working_hours": hours})
        rng = _rng(self.seed, "company")
        return {
            "uid": self._company_uid,
            "username": f"office@{self._domain}",
            "type": "company",
            "name": self._company_name,
            "email": f"ops@{self._domain}",
            "phone": self._phone(rng),
            "address": f"{rng.choice(_STREETS)} 1, 1010 {self._city}",
            "country_code": self._country,
            "location": {"lat": self._centre[0], "lng": self._centre[1]},
            "timezone": self.timezone,
            "teams_config": teams,
        }

    def _member_object(self, m: _Member) -> dict:
        rng = _rng(self.seed, "member-state", m.index, self.today)
        left = m.leave_day is not None and m.leave_day <= self.today
        # The last known position and signals: at the end of today, or when the member left.
        seen = (
            m.leave_ms
            if left
            else _midnight_ms(self.timezone, self.today) + rng.randint(7 * _MS_HOUR, 18 * _MS_HOUR)
        )
        moving = (
            "offduty"
            if left or m.role != "worker"
            else rng.choice(("halted", "idling", "ontheway", "offduty"))
        )
        hours: dict[str, Any] = {"source": "individual"}
        start_hhmm = m.start_min // 60 * 100 + m.start_min % 60
        end_hhmm = m.end_min // 60 * 100 + m.end_min % 60
        for wd in _WEEKDAYS[:5] + (_WEEKDAYS[5:6] if m.saturdays else ()):
            hours[wd] = {"start": start_hhmm, "end": end_hhmm}
        obj = {
            "id": m.uid,
            "uid": m.uid,
            "username": m.username,
            "name": m.name,
            "email": m.email,
            "email_verified": True,
            "phone": m.phone,
            "phone_verified": rng.random() < 0.7,
            "type": "person",
            "color": m.color,
            "role": m.role,
            "teams": list(m.teams),
            "location": {
                "lat": m.home[0],
                "lng": m.home[1],
                "ts": seen,
                "accuracy": rng.randint(5, 60),
                "speed": 0 if moving != "ontheway" else rng.randint(3, 20),
                "head": rng.randint(0, 359),
            },
            "states": {
                "login_status": not left,
                "location_services": True,
                "battery_save": rng.random() < 0.1,
                "tracking_status": not left and m.role == "worker",
                "off_trackrecording": False,
                "location_permission": "always",
                "moving": moving,
                "off_gps_stationary": False,
            },
            "timestamps": {
                "created": m.join_ms,
                "login": seen - rng.randint(1, 20) * _MS_HOUR,
                "signal": seen,
                "tracking": seen if m.role == "worker" else 0,
            },
            "battery_level": rng.randint(15, 100),
            "battery_plugged": rng.random() < 0.2,
            "status_label": "" if rng.random() < 0.8 else rng.choice(("On Break", "Vacation")),
            "status_label_ts": seen if rng.random() < 0.2 else 0,
            "timezone": m.tz,
            "language": m.language,
            "locale": m.language,
            "unit_distance": "SI",
            "unit_time": "24",
            "unit_date": "dd.MM.yyyy",
            "travel_mode": m.travel_mode,
            "vehicle_capacity": 0,
            "working_hours": hours,
            "route_start_lat": m.home[0],
            "route_start_lng": m.home[1],
            "route_end_lat": m.home[0],
            "route_end_lng": m.home[1],
            "route_start_time": -1,
            "skills": list(m.skills),
        }
        if left:
            obj["active_status"] = "deactivated"
        return obj

    def accounts(self) -> list[dict]:
        """The getaccounts roster on `today`: joined on or before it and not left; by uid."""
        out = [
            self._member_object(m)
            for m in self._members
            if m.join_day <= self.today and (m.leave_day is None or m.leave_day > self.today)
        ]
        return sorted(out, key=lambda a: a["uid"])

    def all_members(self) -> list[dict]:
        """Everyone who has joined by `today`, leavers included, sorted by uid.

        Leavers carry ``active_status: "deactivated"``. The ground truth for tests: the API
        itself answers with `accounts()`.
        """
        out = [self._member_object(m) for m in self._members if m.join_day <= self.today]
        return sorted(out, key=lambda a: a["uid"])

    def places(self) -> list[dict]:
        """All places (depots first in generation, customer sites after), sorted by uid."""
        out = []
        for p in self._places:
            out.append(
                {
                    "uid": p.uid,
                    "name": p.name,
                    "creator": self._company_name,
                    "location": {"lat": p.lat, "lng": p.lng},
                    "address": p.address,
                    "city": self._city,
                    "state": "",
                    "postalcode": p.postalcode,
                    "country_code": self._country,
                    "radius": p.radius,
                    "phone": p.phone,
                    "email": p.email,
                    "color": p.color,
                    "linkedForms": "",
                    "teams": list(p.teams),
                    "data": [{k: v} for k, v in p.data],
                }
            )
        return sorted(out, key=lambda p: p["uid"])

    # ----------------------------------------------------------------------------- per day

    def _day(self, day: int) -> _Day:
        """The day as of the end of `today`, from the cache or built now."""
        cutoff = self._cutoff_ms()
        key = (day, cutoff)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            with _gc_paused():
                built = _DayBuilder(self, day, cutoff).build()
            self._cache[key] = built
            self._cached_rows += len(built.jobs) + len(built.legs)
            while len(self._cache) > 1 and (
                len(self._cache) > _CACHE_DAYS or self._cached_rows > _CACHE_ROWS
            ):
                _, old = self._cache.popitem(last=False)
                self._cached_rows -= len(old.jobs) + len(old.legs)
            return built

    def _day_tracks(self, day: int) -> list[tuple]:
        """The day's track tuples, made from its drives on first use."""
        built = self._day(day)
        with self._lock:
            if built.tracks is None:
                with _gc_paused():
                    built.tracks = _make_tracks(self, day, built.legs)
            return built.tracks

    def jobs(self, day: int) -> list[dict]:
        """getjobs(day, worker="*"): the day's jobs as of `today`, sorted by id.

        A day before `start_day` has none; a day after `today` only jobs created by then, in
        their state at the end of `today` (assigned at most).
        """
        if day < self.start_day:
            return []
        stored = self._day(day).jobs
        with _gc_paused():
            return [_job_object(job) for job in stored]

    def tracks(self, from_ms: int, until_ms: int, uids: Iterable[str] | None = None) -> list[dict]:
        """Track entries with ``from_ms <= start_ts < until_ms`` of the members in `uids`.

        `uids` None means everyone; unknown uids match nothing. Entries starting after the end
        of `today` are not visible. Sorted by id.
        """
        if until_ms <= from_ms:
            return []
        wanted = None if uids is None else set(uids)
        until_ms = min(until_ms, self._cutoff_ms())
        # Every track starts on the day it was made for, so the window's days are enough.
        day = max(self.day_of_ms(from_ms), self.start_day)
        last = min(self.day_of_ms(max(until_ms - 1, from_ms)), self.today)
        out = []
        with _gc_paused():
            while day <= last:
                for t in self._day_tracks(day):
                    if from_ms <= t[4] < until_ms and (wanted is None or t[1] in wanted):
                        out.append(dict(zip(TRACK_FIELDS, t, strict=True)))
                day = _add_days(day, 1)
        # Ids grow with the day, and within a day, so `out` is already in id order.
        return out

    # ----------------------------------------------------------------------------- reports

    def report(
        self, reporttype: str, days: list[int], accounts: list[str] | None = None
    ) -> tuple[list[str], list[list]]:
        """Header and rows of a ``jobs``, ``mileage`` or ``timesheet`` report over `days`.

        `days` is the list of days to cover (a caller expands ``from``/``until`` into it);
        `accounts` filters by member uid or username, None or empty meaning everyone. Columns
        are documented in the module docstring. Raises `ValueError` for another report type.
        """
        if reporttype not in REPORT_COLUMNS:
            raise ValueError(f"unknown report type {reporttype!r}")
        uids: set[str] | None = None
        if accounts:
            names = {m.username: m.uid for m in self._members}
            uids = {names.get(a, a) for a in accounts}
        header = list(REPORT_COLUMNS[reporttype])
        rows: list[list] = []
        for day in sorted(set(days)):
            if reporttype == "jobs":
                rows.extend(self._jobs_rows(day, uids))
            elif reporttype == "mileage":
                rows.extend(self._mileage_rows(day, uids))
            else:
                rows.extend(self._timesheet_rows(day, uids))
        return header, rows

    def _name(self, uid: str) -> str:
        m = self._by_uid.get(uid)
        return m.name if m else ""

    def _jobs_rows(self, day: int, uids: set[str] | None) -> list[list]:
        rows = []
        for job in self.jobs(day):
            uid = job["receiverUid"]
            if uids is not None and uid not in uids:
                continue
            rows.append(
                [
                    day,
                    job["id"],
                    uid,
                    job["workerName"],
                    job["destinationName"],
                    job["placeUid"],
                    job_progress(job),
                    _fmt_local(job["tsCheckIn"], self._tz),
                    _fmt_local(job["tsCheckOut"], self._tz),
                    _fmt_local(job["tsDoneSuccess"] or job["tsDoneFailed"], self._tz),
                ]
            )
        return rows

    def _mileage_rows(self, day: int, uids: set[str] | None) -> list[list]:
        start, end = self.day_window_ms(day)
        per: dict[str, list] = {}
        for t in self.tracks(start, end, uids):
            acc = per.setdefault(t["owner_uid"], [0.0, 0])
            acc[0] += t["distance"]
            acc[1] += 1
        return [
            [day, uid, self._name(uid), round(dist / 1000, 3), trips]
            for uid, (dist, trips) in sorted(per.items())
        ]

    def _timesheet_rows(self, day: int, uids: set[str] | None) -> list[list]:
        start, end = self.day_window_ms(day)
        spans: dict[str, list[int]] = {}

        def note(uid: str, *stamps: int) -> None:
            for ts in stamps:
                if not ts:
                    continue
                span = spans.setdefault(uid, [ts, ts])
                span[0] = min(span[0], ts)
                span[1] = max(span[1], ts)

        for t in self.tracks(start, end, uids):
            note(t["owner_uid"], t["start_ts"], t["end_ts"])
        for job in self.jobs(day):
            uid = job["receiverUid"]
            if uid and (uids is None or uid in uids):
                check_in, check_out = job["tsCheckIn"], job["tsCheckOut"]
                if check_out - check_in > _MAX_VISIT_MS:
                    check_out = 0  # a forgotten job closed later, not time on site
                note(uid, check_in, check_out)
        rows = []
        for uid, (first, last) in sorted(spans.items()):
            rows.append(
                [
                    day,
                    uid,
                    self._name(uid),
                    _fmt_local(first, self._tz),
                    _fmt_local(last, self._tz),
                    round((last - first) / _MS_HOUR, 2),
                ]
            )
        return rows


def _job_object(stored: dict) -> dict:
    """A fresh job object from a stored one (whose `customFields` is a tuple of pairs)."""
    job = stored.copy()
    job["customFields"] = [{"key": k, "val": v} for k, v in stored["customFields"]]
    return job


@dataclass(slots=True)
class _Leg:
    """One drive of a worker: from `a` at `start` to `b` at `end` (ms)."""

    owner: str
    start: int
    end: int
    a: tuple[float, float]
    b: tuple[float, float]


@lru_cache(maxsize=4096)
def _dst_shift_min(tz: str, day: int) -> int:
    """Minutes the clock of `tz` moves between local midnight and noon of `day` (0, or +-60)."""
    d = _to_date(day)
    zone = ZoneInfo(tz)
    start = datetime(d.year, d.month, d.day, tzinfo=zone).utcoffset()
    noon = datetime(d.year, d.month, d.day, 12, tzinfo=zone).utcoffset()
    return int((noon - start).total_seconds()) // 60


_OFFICE_START_MS = (7 * 60 + 30) * _MS_MINUTE
_OFFICE_SPAN_MS = (9 * 60 + 30) * _MS_MINUTE


class _DayBuilder:
    """Simulates one day of the whole fleet: every worker's route, then the unassigned jobs.

    Hot code: a 2,000-member fleet makes 100,000 jobs a day here, so draws go through
    `random()` directly, distances use a flat approximation around the company's centre, and
    details that need not be independent (a street number, an order id) come from the job id.
    What remains is about 10-30 us of Python per job, 1-3 s for such a day on a 2-core machine;
    drawing each worker-day's numbers as numpy arrays would remove most of it if days must be
    made faster.
    """

    def __init__(self, fleet: Fleet, day: int, cutoff: int) -> None:
        self.f = fleet
        self.day = day
        self.cutoff = cutoff
        self.date = _to_date(day)
        self.weekday = self.date.weekday()
        # Company midnights from 7 days before to a few days after the day, by offset + 7.
        self.mids = [
            _midnight_ms(fleet.timezone, _add_days(day, k))
            for k in range(-7, EDIT_HORIZON_DAYS + 2)
        ]
        self.mid = self.mids[7]
        self.jobs: list[dict] = []
        self.legs: list[_Leg] = []

    def build(self) -> _Day:
        day = self.day
        for m in self.f._workers:
            if m.join_day <= day and (m.leave_day is None or day < m.leave_day):
                self._worker_day(m)
        self._unassigned()
        self.jobs.sort(key=_job_id_of)
        return _Day(self.jobs, self.legs)

    # ----------------------------------------------------------------------------- parts

    def _office_ms(self, rng: _Rand, day_offset: int) -> int:
        """A moment in office hours (company time) `day_offset` days from the day."""
        return self.mids[day_offset + 7] + _OFFICE_START_MS + int(rng.random() * _OFFICE_SPAN_MS)

    def _dist(self, a: tuple[float, float], b: tuple[float, float]) -> float:
        dy = (b[0] - a[0]) * _M_PER_DEG
        dx = (b[1] - a[1]) * self.f._kx
        return math.sqrt(dx * dx + dy * dy)

    def _site(
        self, rng: _Rand, near: tuple[float, float], hop_m: float, places: bool = True
    ) -> _Place | tuple:
        """A job site about `hop_m` from `near`: often a place (if `places`), else a point."""
        f = self.f
        rnd = rng.random
        angle = rnd() * 2 * math.pi
        lat = near[0] + hop_m * math.cos(angle) / _M_PER_DEG
        lng = near[1] + hop_m * math.sin(angle) / f._kx
        dy = (lat - f._centre[0]) * _M_PER_DEG
        dx = (lng - f._centre[1]) * f._kx
        if dx * dx + dy * dy > f._radius_m * f._radius_m:
            # Out of the area: head the same distance back towards the centre instead.
            home_dy = (f._centre[0] - near[0]) * _M_PER_DEG
            home_dx = (f._centre[1] - near[1]) * f._kx
            angle = math.atan2(home_dx, home_dy) + rnd() * 2 - 1
            lat = near[0] + hop_m * math.cos(angle) / _M_PER_DEG
            lng = near[1] + hop_m * math.sin(angle) / f._kx
        n_sites = len(f._places) - f._first_site
        if places and n_sites > 0 and rnd() < 0.6:
            # Of a few random places, the one whose distance is closest to the hop wanted, if
            # it is not far off.
            best = -1
            best_miss = 0.6 * hop_m + 300
            plat, plng, kx = f._place_lat, f._place_lng, f._kx
            for _ in range(5):
                i = f._first_site + int(rnd() * n_sites)
                dy = (plat[i] - near[0]) * _M_PER_DEG
                dx = (plng[i] - near[1]) * kx
                miss = abs(math.sqrt(dx * dx + dy * dy) - hop_m)
                if miss < best_miss:
                    best, best_miss = i, miss
            if best >= 0:
                return f._places[best]
        return (round(lat, 6), round(lng, 6))

    def _base(
        self, slot: object, worker: _Member | None, dispatcher: _Member | None, team: int
    ) -> tuple[dict, int]:
        """What all jobs of one worker-day (or of the unassigned pool) share, and their id seed.

        Job ids are ``base + n * _ID_STEP`` modulo 2**96 in hex: distinct within a worker-day,
        and colliding across worker-days with a chance of about one in 2**88.
        """
        job = dict(_JOB_TEMPLATE)
        job["day"] = self.day
        job["teamId"] = team
        if worker is not None:
            job["worker"] = job["assigneeUsername"] = worker.username
            job["receiverUid"] = worker.uid
            job["workerName"] = job["assigneeName"] = worker.name
        if dispatcher is not None:
            job["dispatcherUid"] = dispatcher.uid
            job["dispatcherName"] = dispatcher.name
        text = f"job\x1f{self.f.seed}\x1f{self.day}\x1f{slot}".encode()
        id_base = int.from_bytes(hashlib.blake2b(text, digest_size=12).digest(), "big")
        return job, id_base

    def _job(self, rng: _Rand, base: dict, id_base: int, n: int, site: _Place | tuple) -> dict:
        """The `n`-th job of a worker-day as at its creation, before any progress."""
        f = self.f
        rnd = rng.random
        job = base.copy()
        digest = (id_base + n * _ID_STEP) & _ID_MASK
        job["id"] = f"{digest:024x}"
        service = _SERVICES[int(rnd() * len(_SERVICES))]
        if site.__class__ is _Place:
            job["destinationName"] = f"{service} - {site.name}"
            job["destinationLat"] = site.lat
            job["destinationLng"] = site.lng
            job["destinationText"] = site.address
            job["placeUid"] = site.uid
            job["placeName"] = site.name
            job["radius"] = site.radius
        else:
            job["destinationName"] = f"{service} - {_LAST_NAMES[digest % len(_LAST_NAMES)]}"
            job["destinationLat"], job["destinationLng"] = site
            job["destinationText"] = (
                f"{_STREETS[digest % len(_STREETS)]} {1 + digest % 179}, "
                f"{1010 + 10 * (digest % 23)} {f._city}"
            )
        r = rnd()
        if r < 0.4:
            job["uidSecondary"] = f"SRV-{digest % 10_000_000:07d}"
        if r < 0.7:
            job["orderId"] = 1 + digest % 99_999_999
        r = rnd()
        if r < 0.08:
            job["type"] = 1
            job["itemsToPickup"] = 1 + digest % 4
        elif r < 0.15:
            job["type"] = 2
            job["itemsToDropoff"] = 1 + digest % 4
        elif r > 0.7:
            job["priority"] = digest % 11
        contact = int(rnd() * len(_CONTACTS))
        job["contactName"] = _CONTACTS[contact]
        r = rnd()
        if r < 0.7:
            job["contactPhone"] = f"{f._dial} {660 + digest % 40} {digest % 9_000_000 + 1_000_000}"
        if r < 0.2:
            job["contactEmail"] = _CONTACT_EMAILS[contact]
        r = rnd()
        if r < 0.35:
            job["textDispatcher"] = "Please call the customer 30 minutes ahead."
        if r > 0.8:
            job["label"] = _LABELS[digest % 3]
        r = rnd()
        if r < 0.1:
            job["customFields"] = (
                ("Service", service),
                ("PO number", f"PO-{self.date.year}-{digest % 9000 + 1000}"),
                ("Access", _ACCESS[digest % 2]),
            )
        elif r < 0.5:
            job["customFields"] = (
                ("Service", service),
                ("PO number", f"PO-{self.date.year}-{digest % 9000 + 1000}"),
            )
        else:
            job["customFields"] = (("Service", service),)
        return job

    def _window(self, rng: _Rand, job: dict, local_min: int) -> None:
        """A time window (HHMM) around a planned local time; some jobs have none."""
        r = rng.random()
        if r < 0.15:
            return  # the template's 0/2400: all day
        if r < 0.25:
            job["windowEnd"] = 0  # 0/0: no window at all
            return
        start = max(0, min(local_min, 23 * 60) // 30 * 30 - 30 * int(rng.random() * 3))
        end = min(24 * 60, start + 60 * (1 + int(rng.random() * 4)))
        job["windowStart"] = start // 60 * 100 + start % 60
        job["windowEnd"] = end // 60 * 100 + end % 60

    def _created(self, rng: _Rand, floor_ms: int) -> int:
        """When a job of the day was created: mostly 1-6 days before, some early that morning."""
        rnd = rng.random
        if rnd() < 0.15:
            created = self.mid + (300 + int(rnd() * 90)) * _MS_MINUTE + int(rnd() * _MS_MINUTE)
        else:
            created = self._office_ms(rng, -1 - int(rnd() * 6))
        return max(created, floor_ms)

    def _record(self, job: dict, created: int, events: list[tuple[int, dict]]) -> None:
        """Keep a job as it stands at the cutoff: created at `created`, then changed by `events`.

        Each event ``(ts, fields)`` sets the fields and moves `tsSaved` on; events at or after
        the cutoff have not happened yet, and a job created at or after it does not exist yet.
        The random draws behind a job never depend on the cutoff, so every `today` sees the
        same history, only more or less of it.
        """
        cutoff = self.cutoff
        if created >= cutoff:
            return
        job["tsCreated"] = created
        saved = created
        for ts, fields in events:
            if ts < cutoff:
                job.update(fields)
                if ts > saved:
                    saved = ts
        job["tsSaved"] = saved
        if job["status"] is None:
            del job["status"]
        self.jobs.append(job)

    # ----------------------------------------------------------------------------- workers

    def _worker_day(self, m: _Member) -> None:
        """One worker's day: the jobs planned for them, how each went, and the drives between."""
        f = self.f
        rng = _rng(f.seed, "workday", self.day, m.index)
        rnd = rng.random
        if self.weekday == 6:
            works, factor = rnd() < 0.06, 0.4
        elif self.weekday == 5:
            works, factor = m.saturdays and rnd() < 0.8, 0.5
        else:
            works, factor = rnd() >= 0.05, 1.0
        mean = f.jobs_per_member * factor
        if not works or mean <= 0:
            return
        n = max(0, round(rng.gauss(mean, max(0.5, mean * 0.25))))
        late = self.weekday < 5 and rnd() < 0.06
        if n == 0 and not late:
            return
        tracking = rnd() >= 0.04
        operators = f._operators
        dispatcher = operators[int(rnd() * len(operators))] if operators else None
        team = m.teams[0] if m.teams else 0
        base, id_base = self._base(m.index, m, dispatcher, team)
        m_mid = _midnight_ms(m.tz, self.day)
        m_next = _midnight_ms(m.tz, _add_days(self.day, 1))
        shift = _dst_shift_min(m.tz, self.day)
        start_min = m.start_min - 15 + int(rnd() * 31)
        slot_min = (m.end_min - m.start_min) / max(n, 1)
        work_start = m_mid + (start_min - shift) * _MS_MINUTE
        accept_at = work_start - (10 + int(rnd() * 30)) * _MS_MINUTE
        on_site_limit = slot_min * 36  # 60 % of a slot, in seconds
        allowed = [s for s in _ON_SITE_CHOICES if s <= on_site_limit] or [_ON_SITE_CHOICES[0]]
        allowed = allowed[-2:]
        speed = m.speed
        legs: list[_Leg] = []
        pos = m.home
        t = work_start
        record = self._record

        for k in range(n):
            on_site = allowed[int(rnd() * len(allowed))]
            travel_s = max(60.0, slot_min * 60 - on_site)
            site = self._site(rng, pos, speed * travel_s * (0.3 + 0.6 * rnd()) / 1.3)
            site_pos = (site.lat, site.lng) if isinstance(site, _Place) else site
            job = self._job(rng, base, id_base, k, site)
            # Planned to start after a typical drive: 60 % of the slot's travel budget.
            plan_min = start_min + int(k * slot_min + travel_s * 0.6 / 60)
            plan = m_mid + (plan_min - shift) * _MS_MINUTE
            job["number"] = k + 1
            job["onSiteSeconds"] = on_site
            job["scheduledStart"] = job["tsScheduled"] = plan
            job["scheduledEnd"] = plan + on_site * 1000
            self._window(rng, job, plan_min)

            created = self._created(rng, m.join_ms)
            assigned = created
            if rnd() < 0.4:
                assigned += (1 + int(rnd() * 180)) * _MS_MINUTE
            events: list[tuple[int, dict]] = [(assigned, {"tsAssigned": assigned})]
            outcome = _OUTCOME_NAMES[bisect_right(_OUTCOME_CUM, rnd() * _OUTCOME_CUM[-1])]
            accepted = max(accept_at + k * int(rnd() * 3000), assigned + 1000)

            if outcome == "cancelled":
                at = max(assigned + _MS_MINUTE, self.mid - (30 + int(rnd() * 570)) * _MS_MINUTE)
                events.append((at, {"status": "archived"}))
                record(job, created, events)
                continue
            if outcome == "unaccepted":
                record(job, created, events)
                continue
            if outcome == "rejected":
                events.append((accepted, {"tsRejected": accepted}))
                record(job, created, events)
                continue
            events.append((accepted, {"tsAccepted": accepted}))
            if outcome == "no_show":
                record(job, created, events)
                continue
            if outcome == "manual_done":
                done = max(plan + on_site * 1000, accepted + _MS_MINUTE)
                events.append((done, {"tsDoneSuccess": done, "textReceiver": "Done remotely."}))
                record(job, created, events)
                continue

            # The worker drives to the site and checks in.
            dist = self._dist(pos, site_pos)
            travel_ms = int(dist * 1300 / speed)
            depart = max(t, plan - travel_ms - 10 * _MS_MINUTE)
            arrive = depart + travel_ms
            if dist >= 80:
                legs.append(_Leg(m.uid, depart, arrive, pos, site_pos))
            check_in = max(arrive + 15_000 + int(rnd() * 75_000), accepted + 1000)
            stay = int(on_site * 1000 * (0.7 + 0.6 * rnd()))
            if outcome == "failed":
                stay //= 3
            check_out = check_in + stay
            done = check_out + 10_000 + int(rnd() * 140_000)
            events.append((check_in, {"tsCheckIn": check_in}))
            if outcome == "success":
                events.append((check_out, {"tsCheckOut": check_out}))
                fields: dict[str, Any] = {
                    "tsDoneSuccess": done,
                    "textReceiver": _RECEIVER_OK[int(rnd() * len(_RECEIVER_OK))],
                }
                if rnd() < 0.3:
                    signed = check_in + stay // 2
                    events.append((signed, {"tsSignature": signed}))
                    fields["signatureName"] = job["contactName"]
                events.append((done, fields))
                if rnd() < 0.04:
                    # Archived by the office one to three days later.
                    later = self._office_ms(rng, 1 + int(rnd() * EDIT_HORIZON_DAYS))
                    events.append((later, {"status": "archived"}))
            elif outcome == "failed":
                events.append((check_out, {"tsCheckOut": check_out}))
                reason = _RECEIVER_FAILED[int(rnd() * len(_RECEIVER_FAILED))]
                events.append((done, {"tsDoneFailed": done, "textReceiver": reason}))
                if rnd() < 0.5:
                    # The office carries the failed job over the next morning.
                    later = self._office_ms(rng, 1)
                    note = f"Carried over from {self.date.isoformat()}."
                    events.append((later, {"carryOver": 1, "textDispatcher": note}))
            elif outcome == "late_checkout":
                # The check-out is only recorded the next morning.
                late_out = m_next + (390 + int(rnd() * 120)) * _MS_MINUTE
                closed = late_out + 30_000 + int(rnd() * 270_000)
                events.append((late_out, {"tsCheckOut": late_out}))
                events.append((closed, {"tsDoneSuccess": closed, "textReceiver": "Closed late."}))
            # Otherwise "stuck": checked in, then never checked out nor closed.
            record(job, created, events)
            pos = site_pos
            t = check_out + 30_000 + int(rnd() * 210_000)

        back = self._dist(pos, m.home)
        if back >= 80:
            travel_ms = int(back * 1300 / speed)
            legs.append(_Leg(m.uid, t, t + travel_ms, pos, m.home))
            t += travel_ms
        if late:
            legs.extend(self._late_call(rng, m, n, t, base, id_base))
        if tracking:
            # A drive that would start after the company's midnight is not recorded (the app
            # stops the day's tracking then), so every track starts on its own day.
            end_of_day = self.mids[8]
            self.legs.extend(leg for leg in legs if leg.start < end_of_day)

    def _late_call(
        self,
        rng: _Rand,
        m: _Member,
        n: int,
        home_at: int,
        base: dict,
        id_base: int,
    ) -> list[_Leg]:
        """An emergency call-out late in the evening; the drive there often crosses midnight.

        `home_at` is when the worker got home from the day's route; the call-out starts later.
        """
        rnd = rng.random
        # In company time, so that the drive crosses the company's midnight, not the member's.
        # The later departures always arrive after midnight: 9 km at most 12.5 m/s, times the
        # detour factor 1.3, take over 15 minutes.
        if rnd() < 0.4:
            depart = self.mid + 23 * _MS_HOUR + int(rnd() * 40 * _MS_MINUTE)
        else:
            depart = self.mid + (23 * 60 + 45) * _MS_MINUTE + int(rnd() * 12 * _MS_MINUTE)
        depart = max(depart, home_at + 10 * _MS_MINUTE)
        site = self._site(rng, m.home, 9000 + 6000 * rnd(), places=False)
        site_pos = (site.lat, site.lng) if isinstance(site, _Place) else site
        job = self._job(rng, base, id_base, n, site)
        job["destinationName"] = "Emergency call-out - " + job["destinationName"].split(" - ")[-1]
        job["label"] = "urgent"
        job["priority"] = 10
        job["number"] = n + 1
        job["windowStart"], job["windowEnd"] = 2200, 2400
        job["onSiteSeconds"] = 3600
        created = depart - (15 + int(rnd() * 25)) * _MS_MINUTE
        assigned = created + int(rnd() * 120_000)
        accepted = assigned + 30_000 + int(rnd() * 210_000)
        arrive = depart + int(self._dist(m.home, site_pos) * 1300 / m.speed)
        check_in = arrive + 15_000 + int(rnd() * 45_000)
        check_out = check_in + (40 + int(rnd() * 50)) * _MS_MINUTE
        done = check_out + 10_000 + int(rnd() * 110_000)
        events = [
            (assigned, {"tsAssigned": assigned}),
            (accepted, {"tsAccepted": accepted}),
            (check_in, {"tsCheckIn": check_in}),
            (check_out, {"tsCheckOut": check_out}),
            (done, {"tsDoneSuccess": done, "textReceiver": "Emergency fixed."}),
        ]
        self._record(job, created, events)
        leave = check_out + _MS_MINUTE + int(rnd() * 4 * _MS_MINUTE)
        back = leave + int(self._dist(site_pos, m.home) * 1300 / m.speed)
        return [
            _Leg(m.uid, depart, arrive, m.home, site_pos),
            _Leg(m.uid, leave, back, site_pos, m.home),
        ]

    # ----------------------------------------------------------------------------- others

    def _unassigned(self) -> None:
        """About 3 % of the day's work, not given to anyone; some of it cancelled."""
        f = self.f
        rng = _rng(f.seed, "unassigned", self.day)
        rnd = rng.random
        factor = (1.0, 1.0, 1.0, 1.0, 1.0, 0.4, 0.1)[self.weekday]
        day = self.day
        employed = sum(
            1
            for m in f._workers
            if m.join_day <= day and (m.leave_day is None or day < m.leave_day)
        )
        n = int(employed * f.jobs_per_member * factor * 0.03 + rnd())
        operators = f._operators
        teams = [0] + [t for t, _ in f._teams]
        dispatchers: list[_Member | None] = list(operators) or [None]
        bases: dict[tuple[int, int], tuple[dict, int]] = {}
        for k in range(n):
            site = self._site(rng, f._centre, f._radius_m * rnd())
            key = (int(rnd() * len(teams)), int(rnd() * len(dispatchers)))
            if key not in bases:
                bases[key] = self._base(("u", *key), None, dispatchers[key[1]], teams[key[0]])
            base, id_base = bases[key]
            job = self._job(rng, base, id_base, k, site)
            job["onSiteSeconds"] = _ON_SITE_CHOICES[1 + int(rnd() * 4)]
            self._window(rng, job, 8 * 60 + int(rnd() * 8 * 60))
            created = self._created(rng, 0)
            events: list[tuple[int, dict]] = []
            if rnd() < 0.15:
                at = max(self._office_ms(rng, 0), created + _MS_MINUTE)
                events.append((at, {"status": "archived"}))
            self._record(job, created, events)


def _job_id_of(job: dict) -> str:
    return job["id"]


def _make_tracks(f: Fleet, day: int, legs: list[_Leg]) -> list[tuple]:
    """Track tuples (`TRACK_FIELDS`) for all of a day's drives, their paths made in one pass.

    The path noise comes from one generator per day, so a path depends on the drives before it
    that day; all of them are fixed by the constructor arguments and the day, but a fleet with
    one more member draws other noise for everyone. Seeding per worker-day would remove that,
    at the cost of one numpy generator per worker-day.
    """
    if not legs:
        return []
    rng = np.random.default_rng(_derive(f.seed, "paths", day))
    n = len(legs)
    a = np.array([leg.a for leg in legs], dtype=np.float64)
    b = np.array([leg.b for leg in legs], dtype=np.float64)
    coslat = np.cos(np.radians((a[:, 0] + b[:, 0]) / 2))
    # Work in a local plane (metres east, metres north) from each leg's start.
    dx = (b[:, 1] - a[:, 1]) * _M_PER_DEG * coslat
    dy = (b[:, 0] - a[:, 0]) * _M_PER_DEG
    length = np.hypot(dx, dy)
    spacing = rng.uniform(100.0, 300.0, n)
    counts = np.maximum(2, np.ceil(length * 1.1 / spacing).astype(np.int64) + 1)
    # One bend per leg, off to the side of the straight line, so paths look like roads.
    bend = rng.uniform(-0.18, 0.18, n) * length
    safe = np.where(length > 0, length, 1.0)
    mx = dx / 2 - dy / safe * bend
    my = dy / 2 + dx / safe * bend

    total = int(counts.sum())
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    owner = np.repeat(np.arange(n), counts)
    step = np.arange(total) - starts[owner]
    last_step = counts[owner] - 1
    frac = step / last_step
    first_half = frac < 0.5
    u = np.where(first_half, frac * 2, frac * 2 - 1)
    mxo, myo = mx[owner], my[owner]
    px = np.where(first_half, mxo * u, mxo + (dx[owner] - mxo) * u)
    py = np.where(first_half, myo * u, myo + (dy[owner] - myo) * u)
    interior = (step > 0) & (step < last_step)
    px += np.where(interior, rng.normal(0.0, 6.0, total), 0.0)
    py += np.where(interior, rng.normal(0.0, 6.0, total), 0.0)
    lat = a[owner, 0] + py / _M_PER_DEG
    lng = a[owner, 1] + px / (_M_PER_DEG * coslat[owner])
    # Rounded half away from zero, as the polyline encoder does.
    lat_q = (np.sign(lat) * np.floor(np.abs(lat) * 1e5 + 0.5)).astype(np.int64)
    lng_q = (np.sign(lng) * np.floor(np.abs(lng) * 1e5 + 0.5)).astype(np.int64)

    # The haversine length of each path exactly as a reader decodes it from `path_encoded`.
    rlat = np.radians(lat_q / 1e5)
    rlng = np.radians(lng_q / 1e5)
    h = (
        np.sin(np.diff(rlat) / 2) ** 2
        + np.cos(rlat[:-1]) * np.cos(rlat[1:]) * np.sin(np.diff(rlng) / 2) ** 2
    )
    seg = 2 * _EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    same = owner[:-1] == owner[1:]
    distance = np.bincount(owner[:-1][same], weights=seg[same], minlength=n)
    paths = encode_many(lat_q, lng_q, counts)

    start_ts = np.array([leg.start for leg in legs], dtype=np.int64)
    end_ts = np.array([leg.end for leg in legs], dtype=np.int64)
    seconds = np.maximum(end_ts - start_ts, 1) / 1000
    speed_avg = distance / seconds
    speed_max = speed_avg * rng.uniform(1.3, 1.9, n) + rng.uniform(0.5, 3.0, n)
    alt_min = f._altitude + rng.integers(-25, 25, n)
    alt_max = alt_min + rng.integers(0, 60, n)
    # Label flags are not documented: 1 marks a business trip here, 2 a private one.
    labels = np.where(rng.random(n) < 0.9, 1, 2)
    last_i = starts + counts - 1

    # Ids are the day's number since 1970 times 10**7 plus the drive's position: they grow with
    # the day and stay unique while no day has 10**7 drives.
    base = (_to_date(day) - date(1970, 1, 1)).days * 10_000_000
    return list(
        zip(
            range(base + 1, base + n + 1),
            [leg.owner for leg in legs],
            ["track_entry"] * n,
            labels.tolist(),
            start_ts.tolist(),
            end_ts.tolist(),
            (lat_q[starts] / 1e5).tolist(),
            (lng_q[starts] / 1e5).tolist(),
            (lat_q[last_i] / 1e5).tolist(),
            (lng_q[last_i] / 1e5).tolist(),
            np.round(distance, 1).tolist(),
            counts.tolist(),
            np.round(speed_avg, 2).tolist(),
            np.round(speed_max, 2).tolist(),
            alt_min.tolist(),
            alt_max.tolist(),
            paths,
            strict=True,
        )
    )
