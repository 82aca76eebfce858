"""The paper path benchmark's Criteo part on a small TSV: it parses the file (every rank, then one
parse mapped by all) and reports the file's size as the bytes each way reads."""
from benchmarks import bench_paperpath


def test_the_criteo_part_parses_its_tsv_and_counts_the_bytes_read(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_paperpath, "CRITEO_ROWS", 200)
    monkeypatch.setattr(bench_paperpath, "RANKS", 2)
    said = []
    part = bench_paperpath.criteo(tmp_path, said.append)
    size = (tmp_path / "criteo" / "train.txt").stat().st_size
    assert size > 0 and part["tsv_bytes"] == size and part["rows"] == 200
    assert part["plain_read_bytes"] == 2 * size and part["once_read_bytes"] == size
    assert part["plain_memory_bytes"] == 2 * part["once_memory_bytes"] > 0
    assert said and said[0].startswith("criteo: 2 parses")
