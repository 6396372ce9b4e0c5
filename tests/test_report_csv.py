"""Report files: Arrow's reader for plain ones must give what reading line by line gives."""

import pytest

from assets import reports
from assets.reports import REPORT_JOBS, REPORT_MILEAGE, REPORT_TIMESHEET

DAYS = [20251013, 20251014]
JOBS_HEADER = "day,job_id,member_uid,member,title,place_uid,status,check_in,check_out,done_at"


def jobs_report(*lines: str, header: str = JOBS_HEADER, bom: bool = False) -> bytes:
    text = "\r\n".join([header, *lines]) + "\r\n"
    return ("\ufeff" if bom else "").encode() + text.encode()


def job(job_id: str, day: int = 20251014, title: str = "Fix boiler", **cells: str) -> str:
    row = {
        "day": str(day),
        "job_id": job_id,
        "member_uid": "m1",
        "member": "Ana",
        "title": title,
        "place_uid": "p1",
        "status": "done",
        "check_in": "2025-10-14 08:00:00",
        "check_out": "2025-10-14 09:30:00",
        "done_at": "",
    } | cells
    return ",".join(row.values())


# Reports Arrow reads: the answer must equal the line-by-line reader's, quarantine included.
PLAIN = {
    "two_days": (REPORT_JOBS, jobs_report(job("j1", 20251013), job("j2"), job("j3"))),
    # Days interleaved: each day keeps its rows in file order.
    "interleaved_days": (
        REPORT_JOBS,
        jobs_report(job("j1"), job("j2", 20251013), job("j3"), job("j4", 20251013), job("j5")),
    ),
    "quotes_commas_newlines_and_a_byte_order_mark": (
        REPORT_JOBS,
        jobs_report(
            job("j1", title='"Boiler, then ""the"" sink"'),
            job("j2", title='"two\r\nlines"'),
            job("j3", title="Überprüfung 🔧"),
            bom=True,
        ),
    ),
    # Only an empty cell is no value: the texts some CSV readers take for null stay text.
    "texts_that_look_like_null": (
        REPORT_JOBS,
        jobs_report(job("j1", title="NULL"), job("j2", title="nan"), job("j3", title='""')),
    ),
    # 30 February, and a time in another spelling, are read value by value (and quarantined).
    "dates_that_need_a_look": (
        REPORT_JOBS,
        jobs_report(
            job("j1", check_in="2025-02-30 08:00:00"),
            job("j2", check_in="2025-10-14T08:00:00"),
            job("j3", check_in="yesterday"),
        ),
    ),
    "numbers_as_text_and_one_that_is_not": (
        REPORT_MILEAGE,
        b"day,member_uid,member,distance_km,trips\n"
        b"20251014,m1,Ana,12.5,3\n20251014,m2,Bo,7,x\n20251013,m3,Cy,-,1\n",
    ),
    "columns_in_another_order_and_one_missing": (
        REPORT_TIMESHEET,
        b"member_uid,hours,day,first_activity\nm1,8.5,20251014,2025-10-14 07:58:00\n",
    ),
}

# Reports only the line-by-line reader can answer: Arrow's reader must hand them over.
IRREGULAR = {
    "a_line_wider_than_the_header": (REPORT_JOBS, jobs_report(job("j1"), job("j2") + ",extra")),
    "a_line_narrower_than_the_header": (REPORT_JOBS, jobs_report(job("j1"), "20251014,j2,m1")),
    "a_column_no_spec_reads": (
        REPORT_MILEAGE,
        b"day,member_uid,distance_km,vehicle\n20251014,m1,3.5,van\n",
    ),
    "a_repeated_id": (REPORT_JOBS, jobs_report(job("j1"), job("j1"))),
    "an_empty_id": (REPORT_JOBS, jobs_report(job("j1"), job(""))),
    "a_day_not_asked_for": (REPORT_JOBS, jobs_report(job("j1"), job("j2", 20251001))),
    "a_day_spelled_otherwise": (
        REPORT_JOBS,
        jobs_report(job("j1")).replace(b"\r\n2025", b"\r\n 2025"),
    ),
    "a_repeated_column_name": (
        REPORT_MILEAGE,
        b"day,member_uid,trips,trips\n20251014,m1,3,4\n",
    ),
    # Nothing after the header: Arrow's reader finds no lines at all.
    "no_rows": (REPORT_JOBS, jobs_report()),
}


def same(one: dict, other: dict) -> None:
    assert one.keys() == other.keys()
    for day in one:
        assert one[day].table.equals(other[day].table), day
        assert one[day].quarantine == other[day].quarantine, day
        assert one[day].extra_fields == other[day].extra_fields, day


@pytest.mark.parametrize("case", PLAIN)
def test_a_plain_report_is_read_by_arrow_as_it_is_line_by_line(case: str) -> None:
    spec, content = PLAIN[case]
    plain = reports._read_plain_report(spec, content, DAYS)
    assert plain is not None, "Arrow's reader handed a plain report over"
    same(plain, reports.read_report_rows(spec, content, DAYS))


def test_the_cases_exercise_what_they_claim() -> None:
    by_arrow = reports._read_plain_report(
        REPORT_JOBS, PLAIN["quotes_commas_newlines_and_a_byte_order_mark"][1], DAYS
    )
    titles = by_arrow[20251014].table.column("title").to_pylist()
    assert titles == ['Boiler, then "the" sink', "two\r\nlines", "Überprüfung 🔧"]
    nulls = reports._read_plain_report(REPORT_JOBS, PLAIN["texts_that_look_like_null"][1], DAYS)
    assert nulls[20251014].table.column("title").to_pylist() == ["NULL", "nan", None]
    interleaved = reports._read_plain_report(REPORT_JOBS, PLAIN["interleaved_days"][1], DAYS)
    ids = {day: n.table.column("job_id").to_pylist() for day, n in interleaved.items()}
    assert ids == {20251013: ["j2", "j4"], 20251014: ["j1", "j3", "j5"]}
    looked = reports._read_plain_report(REPORT_JOBS, PLAIN["dates_that_need_a_look"][1], DAYS)
    assert [row["record_id"] for row in looked[20251014].quarantine] == ["j1", "j3"]
    assert looked[20251014].table.column("job_id").to_pylist() == ["j2"]


@pytest.mark.parametrize("case", IRREGULAR)
def test_an_irregular_report_is_read_line_by_line(case: str) -> None:
    spec, content = IRREGULAR[case]
    assert reports._read_plain_report(spec, content, DAYS) is None
    same(
        reports.parse_report_csv(spec, content, DAYS), reports.read_report_rows(spec, content, DAYS)
    )


def test_a_report_that_is_not_utf8_is_refused_by_name() -> None:
    content = jobs_report(job("j1")).replace(b"Ana", b"An\xe4")
    with pytest.raises(ValueError, match=r"report_jobs: the report is not UTF-8 text"):
        reports.parse_report_csv(REPORT_JOBS, content, DAYS)
