"""The report says which machines and commits made the logs, counted from the runs' headers."""
import gzip
import json

import pytest

from figures.logs.provenance import NOT_RECORDED, provenance, provenance_lines


def write(root, run_id, commit, dirty, environment=None, packed=False):
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    header = {"kind": "header", "run_id": run_id, "config": {}, "git_commit": commit, "git_dirty": dirty,
              **({"environment": environment} if environment else {})}
    text = json.dumps(header) + "\n" + json.dumps({"kind": "end", "steps": 1}) + "\n"
    if packed:
        (folder / "metrics.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    else:
        (folder / "metrics.jsonl").write_text(text)


def test_runs_are_counted_by_machine_commit_and_dirty_tree(tmp_path):
    epyc = {"cpu": "AMD EPYC", "cores": 2}
    write(tmp_path, "a", "c1", False, epyc, packed=True)
    write(tmp_path, "b", "c1", True, epyc)
    write(tmp_path, "c", "c2", None, {"cpu": "Intel Xeon", "cores": 8})
    write(tmp_path, "d", "c2", False)
    runs = provenance(tmp_path).set_index("run_id")
    assert runs.loc["a", "machine"] == "AMD EPYC, 2 cores" and runs.loc["d", "machine"] == NOT_RECORDED
    text = "\n".join(provenance_lines(tmp_path))
    assert "4 runs" in text and "2 machine(s) named" in text and "1 runs whose header names none" in text
    assert "2 commit(s); 2 runs from a working tree with uncommitted changes" in text and "Comparisons mix" in text
    assert "- AMD EPYC, 2 cores: 2 runs" in text
    assert "- commit `c1`: 2 runs, 1 of them from a dirty tree" in text
    assert "- commit `c2`: 2 runs, 1 of them from a dirty tree" in text   # git_dirty None: outside git


def test_the_commits_that_made_the_most_runs_are_named_and_the_rest_counted(tmp_path):
    commits = ["c0"] * 3 + [f"c{i}" for i in range(1, 8)]   # c0 made 3 runs, c1 .. c7 one each
    for index, commit in enumerate(commits):
        write(tmp_path, f"r{index}", commit, False, {"cpu": "AMD EPYC", "cores": 2})
    commit_lines = [line for line in provenance_lines(tmp_path) if "commit" in line and line.startswith("- ")]
    assert commit_lines[0] == "- commit `c0`: 3 runs" and len(commit_lines) == 6
    assert commit_lines[-1] == "- 3 other commits: 3 runs"


def test_one_machine_and_one_clean_commit_is_said_so(tmp_path):
    for run_id in "ab":
        write(tmp_path, run_id, "c1", False, {"cpu": "AMD EPYC", "cores": 2})
    text = "\n".join(provenance_lines(tmp_path))
    assert "Every comparison draws on one machine and one clean commit." in text
    assert "- commit `c1`: 2 runs\n" in text


def test_same_named_cpus_with_two_signatures_are_not_one_machine(tmp_path):
    write(tmp_path, "a", "c1", False, {"cpu": "AMD EPYC", "cores": 2, "cpu_signature": "family 23 model 49 stepping 0; AVX2"})
    write(tmp_path, "b", "c1", False, {"cpu": "AMD EPYC", "cores": 2, "cpu_signature": "family 25 model 17 stepping 1; AVX512"})
    text = "\n".join(provenance_lines(tmp_path))
    assert "Every comparison draws on one machine" not in text
    assert "- AMD EPYC, 2 cores: 2 runs" in text and "CPU signature family 23 model 49 stepping 0; AVX2: 1 runs" in text


X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu sse4_2 avx avx2 fma f16c avx512f avx512bw avx512_vnni avx512_bf16 xsave

processor\t: 1
cpu family\t: 99
flags\t\t: fpu
"""
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes sve
CPU implementer\t: 0x41
CPU part\t: 0xd40
"""


def test_the_cpu_signature_is_the_first_cpus_family_and_model_and_torchs_kernels(tmp_path):
    from codistill_experiments import runlog

    x86, arm = tmp_path / "x86", tmp_path / "arm"
    x86.write_text(X86_CPUINFO)
    arm.write_text(ARM_CPUINFO)
    assert runlog.cpu_signature("AVX512", x86) == "family 25 model 17 stepping 1; AVX512"
    assert runlog.cpu_signature("SVE256", arm) == "implementer 0x41 part 0xd40; SVE256"
    assert runlog.cpu_signature("DEFAULT", tmp_path / "absent") == "unknown CPU; DEFAULT"


HERE = {"cpu": "AMD EPYC", "cores": 2, "cpu_signature": "family 25 model 17 stepping 1; AVX512"}


def test_runs_of_other_machines_are_those_another_cpu_core_count_or_signature_made(tmp_path):
    from figures.logs.provenance import runs_of_other_machines

    write(tmp_path, "same", "c1", False, dict(HERE))
    write(tmp_path, "same-before-signatures", "c1", False, {"cpu": "AMD EPYC", "cores": 2})
    write(tmp_path, "unnamed", "c1", False)
    write(tmp_path, "xeon", "c1", False, {"cpu": "Intel(R) Xeon(R) Processor", "cores": 2})
    write(tmp_path, "four-cores", "c1", False, {**HERE, "cores": 4})
    write(tmp_path, "zen3", "c1", False, {**HERE, "cpu_signature": "family 25 model 1 stepping 1; AVX2"})
    assert sorted(runs_of_other_machines(tmp_path, HERE)["run_id"]) == ["four-cores", "xeon", "zen3"]


@pytest.mark.slow
def test_reproduce_all_refuses_a_results_folder_another_machine_began_before_any_sweep(tmp_path, monkeypatch, capsys):
    import pytest

    from codistill_experiments import runlog
    from figures import reproduce_all

    ran = []
    monkeypatch.setattr(runlog, "run_environment", lambda device, backend, precision, gpus=None: dict(HERE))
    monkeypatch.setattr(reproduce_all, "run_sweep", lambda sweep_id, *args, **kwargs: ran.append(sweep_id) or 0)
    write(tmp_path, "xeon", "c1", False, {"cpu": "Intel(R) Xeon(R) Processor", "cores": 2})
    with pytest.raises(SystemExit) as refused:
        reproduce_all.main(["--results", str(tmp_path), "--dry-run"])
    assert refused.value.code == 2 and ran == []
    assert "1 runs made on another machine (1 by Intel(R) Xeon(R) Processor, 2 cores)" in capsys.readouterr().err
    reproduce_all.main(["--results", str(tmp_path), "--dry-run", "--allow-other-machines"])
    assert ran == reproduce_all.sweeps_at("mini")[0]
    ran.clear()
    (tmp_path / "runs" / "xeon" / "metrics.jsonl").unlink()
    write(tmp_path, "epyc", "c1", False, dict(HERE))
    reproduce_all.main(["--results", str(tmp_path), "--dry-run"])
    assert ran == reproduce_all.sweeps_at("mini")[0]
