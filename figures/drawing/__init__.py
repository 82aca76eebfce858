"""The plot or table of every figure id, drawn from its collected logs (a registry.FigureData) with
matplotlib on the Agg backend (files only, no display):

- paper_figures, fig2, fig2_regimes, frontier: each id's figure; tables: each id's table;
- curves: per-run curves with labels and the generic curve figure most ids are drawn as;
- panels, labels, log_axis, seed_means: what every figure's panels share (the theme, means over
  seeds with standard-error bands or bars, series and axis labels, log axes, the seeds per series);
- layout: the finished figure laid out (one legend, title and footer, point labels apart).
"""
import matplotlib

matplotlib.use("Agg")
