"""`make reproduce`'s closing table (figures/run_table.py) from hand-made runs: per arm the final
top-1 and training loss, mean over each run's models at its last evaluation, then mean ± s.e. over
seeds, compared with values computed here by hand."""
import math

import pytest
from test_collect import config, eval_record, write_manifest, write_run

from figures import registry, run_table

# (method, schedule, batch_scale) -> per seed, the final (top-1, loss) of each of the two models
FINALS = {("allreduce", "goyal_step", 1): [((80.0, 1.0), (80.0, 1.0)), ((81.0, 0.9), (81.0, 0.9)),
                                           ((82.5, 0.8), (82.5, 0.8))],
          ("codistill", "codistill_tuned", 1): [((79.0, 1.2), (81.0, 1.0)), ((80.0, 1.1), (80.0, 1.3)),
                                                ((83.0, 0.7), (82.0, 0.9))],
          ("codistill", "codistill_tuned", 2): [((78.0, 1.5), (78.0, 1.5)), ((79.0, 1.4), (79.0, 1.4))]}


def sweep(root):
    entries = []
    for (method, schedule, batch_scale), seeds in FINALS.items():
        for seed, models in enumerate(seeds):
            run_id = f"{method}-{schedule}-{batch_scale}-{seed}"
            records = [eval_record(10, m, val_top1=10.0, train_loss=9.0) for m in (0, 1)]   # not the last step
            records += [eval_record(20, m, val_top1=top1, train_loss=loss) for m, (top1, loss) in enumerate(models)]
            cfg = config(seed, **{"method.name": method, "schedule.name": schedule}, batch_scale=batch_scale)
            write_run(root, run_id, cfg, records, "fig2")
            entries.append((run_id, [f"method={method}", f"schedule={schedule}", f"batch_scale={batch_scale}",
                                     f"seed={seed}"]))
    write_manifest(root, "fig2", entries)


def mean_se(values):
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))


def test_each_arm_is_the_seed_mean_and_standard_error_of_its_runs_final_model_means(tmp_path):
    sweep(tmp_path)
    data = registry.load(registry.SPECS["fig2"], tmp_path, "mini")
    stats = run_table.arm_stats(data.records).set_index(["method", "schedule", "batch scale"])
    assert len(stats) == 3
    for arm, seeds in FINALS.items():
        row = stats.loc[arm]
        top1 = [(a[0] + b[0]) / 2 for a, b in seeds]
        loss = [(a[1] + b[1]) / 2 for a, b in seeds]
        assert (row["val_top1_mean"], row["val_top1_sem"]) == pytest.approx(mean_se(top1))
        assert (row["train_loss_mean"], row["train_loss_sem"]) == pytest.approx(mean_se(loss))
        assert row["seeds"] == len(seeds)
    # codistillation, b x 1: top-1 of the runs 80, 80, 82.5 -> 80.833 ± 0.833
    assert stats.loc[("codistill", "codistill_tuned", 1), "val_top1_mean"] == pytest.approx(80.8333, abs=1e-4)


def test_the_command_prints_the_figures_path_and_one_row_per_arm(tmp_path, capsys, monkeypatch):
    sweep(tmp_path)
    monkeypatch.setattr(registry, "output_dir", lambda scale: tmp_path)
    (tmp_path / "fig2.png").write_bytes(b"")
    assert run_table.main(["fig2", "--results", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert f"figure: {tmp_path / 'fig2.png'}" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "method" not in line]
    assert len(rows) == 3
    allreduce = next(r for r in rows if "allreduce" in r)
    mean, se = mean_se([80.0, 81.0, 82.5])
    assert f"{mean:.2f} ± {se:.2f}" in allreduce and allreduce.rstrip(" |").endswith("3")


def test_without_runs_the_command_says_which_sweep_is_missing(tmp_path, capsys):
    assert run_table.main(["fig2", "--results", str(tmp_path)]) == 1
    assert "python src/run.py -m sweep=fig2 scale=mini" in capsys.readouterr().out


def test_a_sweep_without_top1_is_tabled_by_its_validation_nll(tmp_path):
    """Translation logs no top-1 (fig4, table2, the ablations): the table shows the validation NLL
    instead, the seed mean and s.e. of each run's model mean (it raised KeyError 'val_top1')."""
    finals = {0: (0.60, 0.62), 1: (0.58, 0.56), 2: (0.59, 0.61)}   # seed -> both models' final val_nll
    entries = []
    for seed, models in finals.items():
        records = []
        for step, values in ((10, (2.0, 2.0)), (20, models)):
            for model, nll in enumerate(values):
                record = eval_record(step, model, val_nll=nll, val_loss=nll, train_loss=0.7)
                del record["val_top1"], record["val_top1_mean_over_models"]
                records.append(record)
        write_run(tmp_path, f"allreduce-{seed}", config(seed, **{"method.name": "allreduce"}), records, "fig4")
        entries.append((f"allreduce-{seed}", ["method=allreduce", f"seed={seed}"]))
    write_manifest(tmp_path, "fig4", entries)
    stats = run_table.arm_stats(registry.load(registry.SPECS["fig4"], tmp_path, "mini").records)
    assert "val_top1_mean" not in stats
    assert (stats.loc[0, "val_nll_mean"], stats.loc[0, "val_nll_sem"]) == pytest.approx(
        mean_se([sum(models) / 2 for models in finals.values()]))
    assert "final validation NLL" in run_table.printable(stats)
