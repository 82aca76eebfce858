"""SeedNotes (figures/drawing/seed_means.py): a figure's footer names the fewest and the most seeds
behind its series, over every panel (Figure 8: its ResNet-50 panel at 8 seeds, its ResNeXt-101
panel at 3)."""
import pandas as pd

from figures.drawing.seed_means import SeedNotes


def panel(seeds):
    return pd.DataFrame({"series": ["all_reduce"] * seeds, "seed": range(seeds)})


def test_the_footer_spans_the_panels():
    notes = SeedNotes()
    notes.record(panel(8), "series")
    notes.record(panel(3), "series")
    assert notes.text() == "mean ± 1 s.e. over 3-8 seeds"
    one = SeedNotes()
    one.record(panel(3), "series")
    assert one.text() == "mean ± 1 s.e. over 3 seeds"
    short = SeedNotes()
    short.record(panel(2), "series")
    assert short.text().endswith("FEWER THAN 3 SEEDS (2 seeds: every series)")
