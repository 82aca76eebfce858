"""The sweep-listing benchmark (benchmarks/bench_listing.py, part "listing"): the section results.md
renders from hand-made measurements, and a listing that composed nothing refused rather than
divided by."""
import pytest

from benchmarks import bench_listing

PART = {"listings": [
    # 10 jobs in 3 CPU-s and 110 in 13: 0.1 CPU-s a job on 2 CPU-s of start-up
    {"sweep": "small", "scale": "mini", "jobs": 10, "seconds": 4.0, "cpu_seconds": 3.0, "rounds": [[4.0, 3.0]]},
    {"sweep": "large", "scale": "paper", "jobs": 110, "seconds": 14.0, "cpu_seconds": 13.0,
     "rounds": [[15.0, 13.5], [13.0, 12.5]]}]}


def test_the_section_shows_each_listing_per_job_and_the_line_through_them():
    lines = bench_listing.section(PART, [])
    text = "\n".join(lines)
    assert "| small | mini | 10 | 4.0 | 3.0 | 0.300 | 4.0 / 3.0 |" in text
    assert "| large | paper | 110 | 14.0 | 13.0 | 0.118 | 15.0 / 13.5, 13.0 / 12.5 |" in text
    assert "0.100 CPU-s per job composed and 2.0 CPU-s of start-up" in text


def test_a_sweep_without_jobs_at_a_scale_is_refused_by_name():
    # frontier8 has jobs at mini scale only: its paper listing composes nothing to time
    with pytest.raises(RuntimeError, match="frontier8 has no job at scale paper"):
        bench_listing.timed_listing("frontier8", "paper")
