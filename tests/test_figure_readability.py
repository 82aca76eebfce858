"""Figures as a reviewer reads them, read back from the artists of figures drawn from
hand-made logs: Fig. 2's final values and all_reduce's band, its controls labelled; the frontier's
0-bit control and all_reduce band, with labels that do not collide; legends per panel where the
colours differ; fig13's 'every update'; log ticks that cover the data; fig2_regimes per regime."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from figures import registry
from figures.drawing import fig2, fig2_regimes
from figures.drawing.labels import exchange_label
from test_collect import config, eval_record, write_manifest, write_run
from test_figures import by_gid, fig5_tree, se, write_alpha_gamma_logs

# Fig. 2: (method, schedule, batch_scale) -> final top-1 of each seed (both models log it)
FIG2 = {("allreduce", "goyal_step", 1): [81.0, 81.2, 81.4],
        ("codistill", "goyal_step_half", 1): [81.1, 81.1, 81.4],
        ("independent", "codistill_tuned", 1): [80.5, 80.8, 80.9],
        ("codistill", "codistill_tuned", 1): [81.3, 81.5, 81.4],
        ("codistill", "codistill_tuned", 2): [81.2, 81.3, 81.3]}


def fig2_tree(root):
    entries = []
    for (method, schedule, batch_scale), finals in FIG2.items():
        for seed, top1 in enumerate(finals):
            run_id = f"{method}-{schedule}-{batch_scale}-{seed}"
            records = [eval_record(step, m, val_top1=value, train_loss=loss, batch_per_model=32 * batch_scale)
                       for step, value, loss in ((10, 60.0, 2.0), (20, top1, 1.0)) for m in (0, 1)]
            write_run(root, run_id, config(seed, **{"method.name": method, "schedule.name": schedule},
                                           batch_scale=batch_scale), records, "fig2")
            entries.append((run_id, [f"method={method}", f"schedule={schedule}", f"batch_scale={batch_scale}",
                                     f"seed={seed}"]))
    write_manifest(root, "fig2", entries)


def drawn(root, id, spec=None):
    spec = spec or registry.SPECS[id]
    fig = registry.draw_figure(spec, registry.load(spec, root, "mini"))
    fig.canvas.draw()
    return fig


def test_fig2_shows_each_arms_final_top1_and_all_reduces_band_on_a_scale_of_at_least_one_point(tmp_path):
    fig2_tree(tmp_path)
    fig = drawn(tmp_path, "fig2")
    loss, top1, finals, batches = fig.axes
    for (method, schedule, batch_scale), values in FIG2.items():
        if batch_scale != 1:
            continue
        label = fig2.RECIPES[(method, schedule)]
        point = by_gid(finals.lines, f"{label}|final")
        assert point.get_ydata()[0] == pytest.approx(np.mean(values))
        (segment,) = by_gid(finals.collections, f"{label}|final s.e.").get_segments()
        assert sorted(segment[:, 1]) == [pytest.approx(np.mean(values) - se(values)),
                                         pytest.approx(np.mean(values) + se(values))]
    reference = FIG2[("allreduce", "goyal_step", 1)]
    mean, noise = np.mean(reference), 2 * se(reference)
    for ax in (finals, batches):
        band = by_gid(ax.patches, fig2.BAND)   # a rectangle across the panel, in data units up the y axis
        assert (band.get_y(), band.get_y() + band.get_height()) == (pytest.approx(mean - noise),
                                                                    pytest.approx(mean + noise))
        low, high = ax.get_ylim()
        assert low <= mean - 1 and high >= mean + 1   # 0.3 points cannot look steep
    assert finals.get_ylim() == batches.get_ylim()   # one scale for the two final-value panels
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "independent (α = 0), control, variable w.d." in legend and fig2.BAND in legend
    dashed = by_gid(top1.lines, "independent (α = 0), control, variable w.d.")
    assert dashed.get_linestyle() != "-" and by_gid(top1.lines, "all_reduce").get_linestyle() == "-"
    assert loss.get_ylabel().endswith("log scale") and batches.get_xlabel().endswith("log scale")
    plt.close(fig)


FRONTIER = {"ar": ("allreduce", {}, 2_000_000, 81.2), "p1": ("codistill", {"method.period": 1}, 41_000, 81.0),
            "p2": ("codistill", {"method.period": 2}, 40_000, 81.05),
            "r1": ("powersgd", {"method.rank": 1}, 42_000, 81.02), "r4": ("powersgd", {"method.rank": 4}, 44_000, 81.1),
            "h32": ("localsgd", {"method.period": 32}, 43_000, 81.03), "ctl": ("independent", {}, 0, 80.6)}


def frontier_tree(root):
    entries = []
    for name, (method, knobs, bits, top1) in FRONTIER.items():
        for seed in range(3):
            cfg = config(seed, **{"method.name": method, "method.exchange": "predictions", **knobs})
            records = [eval_record(20, m, comm_bits_inter_node=bits * 20, val_top1=top1 + seed / 10) for m in (0, 1)]
            write_run(root, f"{name}{seed}", cfg, records, "frontier")
            entries.append((f"{name}{seed}", [f"method={method}", *[f"{k}={v}" for k, v in knobs.items()],
                                              f"seed={seed}"]))
    write_manifest(root, "frontier", entries)


def test_frontier_puts_the_control_at_0_bits_all_reduce_as_a_band_and_labels_apart(tmp_path):
    frontier_tree(tmp_path)
    fig = drawn(tmp_path, "frontier")
    zero, ax = fig.axes
    control = by_gid(zero.lines, "α = 0 control (independent, 0 bits)")
    assert control.get_ydata()[0] == pytest.approx(80.7)   # seeds 80.6, 80.7, 80.8
    assert "0 bits" in zero.get_xticklabels()[0].get_text() and zero.get_xscale() == "linear"
    band = by_gid(ax.patches, "all_reduce, mean ± 2 s.e. over seeds")
    noise = 2 * se([81.2, 81.3, 81.4])
    assert (band.get_y(), band.get_y() + band.get_height()) == (pytest.approx(81.3 - noise),
                                                                pytest.approx(81.3 + noise))
    assert ax.get_xscale() == "log" and ax.get_xlabel().endswith("log scale")
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert {t.get_text() for t in ax.texts} == {"T=1", "T=2", "r=1", "r=4", "H=32"}
    for i, a in enumerate(boxes):   # the five points lie within 10 % of each other in bits: labels must move
        for b in boxes[i + 1:]:
            assert not (a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1)
    plt.close(fig)


def test_alpha_gamma_keeps_a_legend_beside_each_panel(tmp_path):
    """(a) colours by γ, (b) by γ and its best α₀: one legend under both would name each colour twice."""
    write_alpha_gamma_logs(tmp_path)
    fig = drawn(tmp_path, "alpha_gamma")
    assert not fig.legends
    gammas, best = ([t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes)
    assert all(t.startswith("γ = ") and "α₀" not in t for t in gammas) and all("α₀ = " in t for t in best)
    plt.close(fig)


def test_an_exchange_every_update_says_so():
    row = {"cfg.method.name": "codistill", "cfg.method.exchange": "predictions", "cfg.method.period": 1}
    assert exchange_label(row) == "codistillation, predictions every update"
    assert exchange_label({**row, "cfg.method.period": 25}) == "codistillation, predictions every 25 updates"


def test_log_loss_ticks_cover_the_data(tmp_path):
    fig5_tree(tmp_path)   # final losses 1 / (20 + seed): down to 1/22, up to 1/10
    fig = drawn(tmp_path, "fig5")
    loss = fig.axes[0]
    low, high = loss.get_ylim()
    ticks = [t for t in loss.get_yticks() if low * (1 - 1e-9) <= t <= high * (1 + 1e-9)]
    data = np.concatenate([line.get_ydata() for line in loss.lines if line.get_gid()])
    assert min(ticks) <= data.min() and max(ticks) >= data.max()
    plt.close(fig)


REGIMES = {(10.0, 0.2): {"allreduce": 81.2, "codistill": 81.1}, (30.0, 0.1): {"allreduce": 80.1, "codistill": 78.5}}


def test_fig2_regimes_draws_each_regimes_final_values_one_colour_per_arm(tmp_path):
    entries = []
    for (wd, epochs), arms in REGIMES.items():
        for method, top1 in arms.items():
            schedule = "goyal_step" if method == "allreduce" else "goyal_step_half"
            for seed in range(3):
                run_id = f"{method}-{wd}-{epochs}-{seed}"
                cfg = config(seed, **{"method.name": method, "schedule.name": schedule,
                                      "workload.weight_decay_scale": wd, "workload.epoch_scale": epochs})
                records = [eval_record(20, m, val_top1=top1 + seed / 10, train_loss=1.0 + seed / 100) for m in (0, 1)]
                write_run(tmp_path, run_id, cfg, records, "fig2_regimes")
                entries.append((run_id, [f"method={method}", f"schedule={schedule}", f"workload.weight_decay_scale={wd}",
                                         f"workload.epoch_scale={epochs}", f"seed={seed}"]))
    write_manifest(tmp_path, "fig2_regimes", entries)
    spec = registry.Spec("fig2_regimes", "figure", "Fig. 2 across regimes", "beyond the paper", fig2_regimes.fig2_regimes)
    fig = drawn(tmp_path, None, spec)
    top1, loss = fig.axes
    assert [t.get_text() for t in top1.get_xticklabels()] == list(fig2_regimes.REGIMES.values())
    both = by_gid(top1.lines, "codistillation, constant w.d.|both\n(w.d. ×30, epochs/10)")
    assert both.get_ydata()[0] == pytest.approx(78.6)   # 78.5 + (0, 0.1, 0.2) / 3 seeds
    colours = {ax: {line.get_gid().split("|")[0]: line.get_color() for line in ax.lines if line.get_gid()}
               for ax in (top1, loss)}
    assert colours[top1] == colours[loss] and len(set(colours[top1].values())) == 2
    assert loss.get_yscale() == "log" and not top1.patches
    plt.close(fig)
