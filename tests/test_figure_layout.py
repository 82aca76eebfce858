"""What a reader sees of a figure, read back from its artists: losses on log axes labelled with their
unit (nats for vision, bits per token for translation), Figure 11 against epochs, legends and titles
that cover no panel, no empty band under the title, and table cells with enough decimals to tell
different values apart."""
import matplotlib.pyplot as plt
import pytest
from test_collect import config, eval_record, write_manifest, write_run
from test_figures import fig1_tree, fig5_tree, fig16_tree

from figures import registry
from figures.drawing.tables import separating_decimals

NATS, BITS = "(cross-entropy, nats), log scale", "(bits per token), log scale"


def drawn(root, id):
    spec = registry.SPECS[id]
    fig = registry.draw_figure(spec, registry.load(spec, root, "mini"))
    fig.canvas.draw()
    return fig


def overlaps(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def legends(fig):
    return [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]


def check_readable(fig):
    """No legend or title over a panel; the title ends at most 0.25 inch above the panels' own titles."""
    renderer = fig.canvas.get_renderer()
    plots = [ax.bbox for ax in fig.axes]
    for legend in legends(fig):
        assert not any(overlaps(legend.get_window_extent(renderer), area) for area in plots)
    title = fig._suptitle.get_window_extent(renderer)
    panels_top = max(ax.get_tightbbox(renderer).y1 for ax in fig.axes)
    assert 0 <= title.y0 - panels_top <= 0.25 * fig.dpi


def translation_tree(root, sweep_id, periods=(4, 10, 25)):
    """Checkpoint-exchange runs of the translation stand-in: val_nll in bits per token."""
    entries = []
    for period in periods:
        for seed in range(3):
            cfg = config(seed, **{"method.exchange": "checkpoints", "method.period": period,
                                  "workload.name": "translation_mini", "workload.task": "translation"})
            records = [eval_record(step, m, val_nll=4.6 - step / 100 - seed / 10, train_loss=5.0 - step / 100)
                       for step in (20, 100, 200) for m in (0, 1)]
            run_id = f"t{period}s{seed}"
            write_run(root, run_id, cfg, records, sweep_id)
            entries.append((run_id, [f"method.period={period}", f"seed={seed}"]))
    write_manifest(root, sweep_id, entries)


def test_vision_losses_are_on_log_axes_in_nats_and_nothing_covers_a_panel(tmp_path):
    fig5_tree(tmp_path)
    fig = drawn(tmp_path, "fig5")
    loss, top1 = fig.axes
    assert loss.get_yscale() == "log" and loss.get_ylabel() == f"training loss {NATS}"
    assert top1.get_yscale() == "linear" and top1.get_ylabel() == "top-1 validation accuracy (%)"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["2-way", "4-way"]   # one legend, under the panels
    assert loss.get_legend() is None and top1.get_legend() is None
    check_readable(fig)
    plt.close(fig)


def test_translation_losses_are_in_bits_per_token_and_a_narrow_figure_keeps_its_panel(tmp_path):
    translation_tree(tmp_path, "nmt_exchange_frequency")
    fig = drawn(tmp_path, "nmt_exchange_frequency")
    (ax,) = fig.axes
    assert ax.get_yscale() == "log" and ax.get_ylabel() == f"validation NLL {BITS}"
    assert len(fig.legends[0].get_texts()) == 3
    check_readable(fig)
    # the long title and the legend are added to the figure's height, not taken from the panel's 4 inches
    assert ax.bbox.height / fig.dpi >= 4.0 * 0.7
    plt.close(fig)


def test_final_losses_are_points_on_a_log_axis_whose_ticks_cover_them(tmp_path):
    fig16_tree(tmp_path)
    fig = drawn(tmp_path, "fig16")
    loss = fig.axes[1]
    assert loss.get_yscale() == "log" and loss.get_ylabel() == f"training loss {NATS}"
    assert not loss.patches   # no bars on a log axis: their length would mean nothing
    # final losses 0.1 x fraction: 0.05 and 0.1, one labelled tick at or below 0.05 and one at or above 0.1
    low, high = loss.get_ylim()
    ticks = [t for t in loss.get_yticks() if low * (1 - 1e-9) <= t <= high * (1 + 1e-9)]
    assert min(ticks) <= 0.05 and max(ticks) >= 0.1
    assert low >= 0.05 / 2.5 and high <= 0.1 * 2.5   # and no more than a factor 2.5 of empty axis each side
    check_readable(fig)
    plt.close(fig)


def test_figure_11_is_drawn_against_epochs(tmp_path):
    """b = 32 evaluates every 10 updates, b = 64 every 5: the same epochs, half the updates."""
    entries = []
    for batch, updates_per_epoch in ((32, 10), (64, 5)):
        for seed in range(3):
            run_id = f"b{batch}s{seed}"
            records = [eval_record(epoch * updates_per_epoch, m, epoch=epoch, train_loss=1.0 / epoch + seed / 100,
                                   batch_per_model=batch) for epoch in (1, 2, 4) for m in (0, 1)]
            write_run(tmp_path, run_id, config(seed, batch_scale=batch / 32), records, "fig11")
            entries.append((run_id, [f"batch_scale={batch / 32}", f"seed={seed}"]))
    write_manifest(tmp_path, "fig11", entries)
    fig = drawn(tmp_path, "fig11")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "epochs" and ax.get_yscale() == "log"
    for label in ("2 × 32", "2 × 64"):
        line = next(line for line in ax.lines if line.get_gid() == label)
        assert list(line.get_xdata()) == [1, 2, 4]
        assert list(line.get_ydata()) == pytest.approx([1.01, 0.51, 0.26])   # mean of seeds 0, 1, 2 / 100
    check_readable(fig)
    plt.close(fig)


def test_figure_1_legend_sits_under_its_panel(tmp_path):
    fig1_tree(tmp_path)
    fig = drawn(tmp_path, "fig1")
    assert fig.axes[0].get_legend() is None and len(fig.legends) == 1
    check_readable(fig)
    plt.close(fig)


@pytest.mark.parametrize("means, ses, digits", [
    ([97.71, 97.77, 95.25], [0.15, 0.11, 0.24], 2),         # already apart at two decimals
    ([0.0133, 0.0134, 0.11], [0.0002, 0.0001, 0.02], 4),    # 0.01 and 0.01 at two; apart at four
    ([0.0131, 0.0131, 0.5], [0.004, 0.003, 0.1], 3),        # equal means need not differ; s.e. 0.004 needs three
    ([1.5, 1.5], [float("nan"), 0.0], 2),                   # one seed (no s.e.) and a zero s.e. print as they are
])
def test_table_cells_have_the_decimals_that_tell_values_apart(means, ses, digits):
    assert separating_decimals(means, ses) == digits
