"""The Findings that open the report (figures/claims/findings.py), from hand-made logs whose groups have
chosen means and standard errors (tests/test_claims.py's helpers): every number checked by hand."""
import math

from test_claims import ALLREDUCE, CODISTILL, INDEPENDENT, NOISE, T4, finals, logs

from figures import report
from figures.claims import findings
from figures.claims.rule import INCONCLUSIVE


def test_codistillation_against_its_control_with_the_noise_of_their_difference(tmp_path):
    # codistillation 79.0, control 76.0, all_reduce 78.0; s.e. 0.5 each: noise of any difference 1.707
    data = {"fig2": logs(tmp_path, {"c": (CODISTILL, finals(79.0)), "ar": (ALLREDUCE, finals(78.0)),
                                    "i": (INDEPENDENT, finals(76.0))})}
    [row] = findings.control_rows(data)[2:]
    assert row == (f"| Fig. 2, constant w.d. | val_top1 | +1.00 ± {NOISE:.2f} pts | -2.00 ± {NOISE:.2f} pts | "
                   f"+3.00 ± {NOISE:.2f} pts | holds |")


def test_the_findings_open_the_report_with_the_headline_verdicts(tmp_path):
    data = {"mini": {"fig2": logs(tmp_path, {"c": (CODISTILL, finals(79.0)), "ar": (ALLREDUCE, finals(78.0)),
                                             "i": (INDEPENDENT, finals(77.9))})}}
    headline = {"id": "fig2-fixed-wd-costs-top1", "figure": "fig2", "section": "s", "setting": "s",
                "claim": "fixed w.d. costs top-1", "metric": "val_top1",
                "check": {"kind": "compare", "a": {"method.name": "allreduce"},
                          "b": {"method.name": "codistill"}, "op": "greater"}}
    outcomes = report.evaluate_all([headline], data)
    lines = findings.findings_section([headline], outcomes, data, report.STATUS_MARK,
                                      report.resolutions(data))
    assert lines[0] == "## Findings"
    row = next(line for line in lines if line.startswith("| fig2 |"))
    # shown as codistillation - all_reduce = 79 - 78 = +1.0 (the claim's a - b is -1.0), within the
    # 1.707 noise: undecided
    assert f"d = +1.000 ± {NOISE:.3f}" in row and row.endswith("❔ inconclusive |")
    assert outcomes[("fig2-fixed-wd-costs-top1", "mini")].status == INCONCLUSIVE


def test_a_settings_all_reduce_reference_trains_on_the_same_fraction_of_the_data(tmp_path):
    """Fig. 16's row at 1/8 of the data: all_reduce on the full set (80) must not be its reference."""
    fraction = {"schedule.name": "codistill_tuned", "data.fraction": 0.125}
    data = {"fig16": logs(tmp_path, {"ar": (ALLREDUCE, finals(80.0)),
                                     "ar8": ({**ALLREDUCE, "data.fraction": 0.125}, finals(70.0)),
                                     "c8": ({**CODISTILL, **fraction}, finals(72.0)),
                                     "i8": ({**INDEPENDENT, **fraction}, finals(71.0))}, sweep="fig16")}
    [row] = findings.control_rows(data)[2:]
    # 72 - 70, 71 - 70, 72 - 71; the last within the noise
    assert row == (f"| Fig. 16, 1/8 of the training data | val_top1 | +2.00 ± {NOISE:.2f} pts | "
                   f"+1.00 ± {NOISE:.2f} pts | +1.00 ± {NOISE:.2f} pts | inconclusive |")


def test_a_regime_row_gives_the_gap_the_controls_gap_and_what_decaying_recovers(tmp_path):
    regime = {"workload.weight_decay_scale": 30.0, "workload.epoch_scale": 0.1}
    tuned = {"method.name": "codistill", "schedule.name": "codistill_tuned"}
    tuned_control = {"method.name": "independent", "schedule.name": "codistill_tuned"}
    data = logs(tmp_path, {"ar": ({**ALLREDUCE, **regime}, finals(80.0)), "c": ({**CODISTILL, **regime}, finals(78.0)),
                           "i": ({**INDEPENDENT, **regime}, finals(77.5)), "t": ({**tuned, **regime}, finals(79.5)),
                           "ti": ({**tuned_control, **regime}, finals(78.7))},
                sweep="fig2_regimes")
    rows = findings.regime_rows(data)
    both = next(line for line in rows if line.startswith("| both (w.d. ×30, epochs/10) |"))
    # 78 - 80, 77.5 - 80, 79.5 - 78 and, against the decaying recipe's own control, 79.5 - 78.7
    assert both == (f"| both (w.d. ×30, epochs/10) | -2.00 ± {NOISE:.2f} pts | -2.50 ± {NOISE:.2f} pts | +1.50 ± {NOISE:.2f} pts | "
                    f"+0.80 ± {NOISE:.2f} pts | 80.00 ± 0.50 |")
    assert next(line for line in rows if line.startswith("| w.d. ×30 |")) == "| w.d. ×30 | not run | | | | |"
    assert math.isclose(NOISE, T4 * math.sqrt(0.5) + 0.2)   # Welch: 4 degrees of freedom


def test_anil_et_als_claims_get_their_own_findings_rows(tmp_path):
    """An Anil et al. claim is listed under its own heading, after the paper's, with its verdict:
    codistillation 80.0 vs the baseline 77.9: 2.1, beyond the 1.707 noise."""
    data = {"mini": {"fig2": logs(tmp_path, {"c": (CODISTILL, finals(80.0)), "i": (INDEPENDENT, finals(77.9))})}}
    anil = {"id": "anil-fig2a-codistill-beats-baseline", "figure": "fig2", "section": "s", "setting": "s",
            "claim": "codistillation beats the baseline", "metric": "val_top1",
            "check": {"kind": "compare", "a": {"method.name": "codistill"}, "b": {"method.name": "independent"},
                      "op": "greater"}}
    outcomes = report.evaluate_all([anil], data)
    lines = findings.findings_section([anil], outcomes, data, report.STATUS_MARK, report.resolutions(data))
    start = lines.index("### Anil et al. 2018's findings at mini scale")
    row = next(line for line in lines[start:] if line.startswith("| fig2 |"))
    assert f"d = +2.100 ± {NOISE:.3f}" in row and row.endswith("✅ holds |")
    assert lines.index("### The paper's findings at mini scale") < start


def test_a_setting_listed_twice_against_its_control_counts_once(tmp_path, monkeypatch):
    """Two rows of CONTROLLED naming the same codistillation runs (in two figures' logs) are one
    setting: the control table and the bottom line count it once."""
    from test_claims import ALLREDUCE, CODISTILL, FAR_CONTROL, INDEPENDENT, finals, logs, two_groups

    from figures.claims import findings

    data = two_groups(tmp_path / "a", 80.0, control_mean=FAR_CONTROL)
    again = two_groups(tmp_path / "b", 80.0, control_mean=FAR_CONTROL, sweep="fig13")
    group = {"method.name": "codistill", "schedule.name": "goyal_step_half"}
    reference = {"method.name": "allreduce"}
    monkeypatch.setattr(findings, "CONTROLLED", [("fig2", "first", group, "val_top1", reference),
                                                 ("fig13", "the same runs", group, "val_top1", reference)])
    rows = findings.against_control({"fig2": data, "fig13": again})
    assert [row[0] for row in rows] == ["first"]
    tuned = {"method.name": "codistill", "schedule.name": "codistill_tuned"}   # another setting: kept
    both = logs(tmp_path / "c", {"c": (CODISTILL, finals(80.0)), "t": (tuned, finals(80.0)),
                                 "ar": (ALLREDUCE, finals(78.0)), "i": (INDEPENDENT, finals(FAR_CONTROL)),
                                 "it": ({**INDEPENDENT, "schedule.name": "codistill_tuned"}, finals(FAR_CONTROL))})
    monkeypatch.setattr(findings, "CONTROLLED", [("fig2", "first", group, "val_top1", reference),
                                                 ("fig2", "tuned", tuned, "val_top1", reference)])
    assert [row[0] for row in findings.against_control({"fig2": both})] == ["first", "tuned"]
