"""The step-time model (step_model.py) calibrated on part 3 of `make bench` (bench_network.py: two
simulated nodes, one gloo rank each, on a veth shaped at 3 rates): each method's time per update
predicted from its measured compute-only time, the measured link rate and a few fitted constants of
gloo on this machine, against the measured time per update, row by row."""
from dataclasses import replace

import numpy as np

from .bench_network_methods import AVERAGING_PERIODS, TIMED_APART
from .step_model import (Layout, Network, Overhead, Workload, all_reduce, checkpoints, diloco, localsgd,
                        powersgd, predictions)

PERIODS = (50, 625)   # checkpoints' T in part 3's rows
NEW_METHODS = ("powersgd", "localsgd", "diloco")
PERIODIC = {"localsgd": localsgd, "diloco": diloco}


def _matrices(sizes):
    """(rows, cols) of the residual MLP twin's weights (nn.Linear: out x in)."""
    return tuple((b, a) for a, b in zip(sizes[:-1], sizes[1:]))


def _apart_name(method):
    return "one checkpoint exchange" if method == "checkpoints" else f"one {TIMED_APART[method]} ({method})"


def part3_rows(network_part):
    """Measured inputs and times per update of part 3, one dict per (model, limit). The new methods'
    rows are there when part 3 measured them."""
    out = []
    link = network_part["link_bits_per_s"]
    for model in network_part["models"]:
        times = {(r["method"], r["limit"]): r["seconds_per_step"] for r in model["rows"]}
        for limit in network_part["limits"]:
            t = lambda method: times[method, limit]  # noqa: E731
            row = {"model": model["label"], "params": model["params"], "limit": limit, "link": link[limit],
                   "compute": {m: t(f"{m}, compute only") for m in ("all_reduce", "predictions", "checkpoints")},
                   "measured": {"all_reduce": t("all_reduce"), "predictions": t("predictions"),
                                **{f"checkpoints T={T}": t("checkpoints, compute only")
                                   + t("checkpoints, exchange") / T for T in PERIODS}},
                   "apart": {_apart_name("checkpoints"): t("checkpoints, exchange")},
                   "batch": network_part["batch_per_rank"], "matrices": _matrices(model.get("sizes", ()))}
            if ("powersgd", limit) in times:
                row["compute"] |= {m: t(f"{m}, compute only") for m in NEW_METHODS}
                row["measured"]["powersgd"] = t("powersgd")
                row["rank"] = network_part["powersgd_rank"]
                for method in PERIODIC:
                    apart = t(f"{method}, {TIMED_APART[method]}")
                    row["apart"][_apart_name(method)] = apart
                    row["measured"] |= {f"{method} H={H}": t(f"{method}, compute only") + apart / H
                                        for H in AVERAGING_PERIODS}
            out.append(row)
    return out


def bench_network(row, fitted=None):
    """Part 3's setting: one rank per 'server', the veth at its measured rate (no added latency: netem
    was not available), no intra-server links; `fitted`: Network fields (overheads, device costs)."""
    return Network(inter_bits_per_s=row["link"], inter_latency_s=0.0, gpus_per_server=1, **(fitted or {}))


def predict_part3(row, net):
    """(time per update of each method of the row, time of each collective timed apart). 2 models x 1
    rank (all_reduce, PowerSGD: one model on both); checkpoints, local SGD and DiLoCo: the measured
    update between exchanges (it contains the teacher's forward) + the predicted exchange / period."""
    wl = lambda compute: Workload(row["model"], row["params"], compute,  # noqa: E731
                                  logits_per_device=row["batch"] * 1000, teacher_forward_share=0.0,
                                  matrices=row["matrices"])
    layout, compute = Layout(n=2, k=1, T=1), row["compute"]
    apart = {_apart_name("checkpoints"): checkpoints(layout, wl(0.0), net).seconds}
    out = {"all_reduce": all_reduce(layout, wl(compute["all_reduce"]), net).seconds,
           "predictions": predictions(layout, wl(compute["predictions"]), net).seconds}
    out |= {f"checkpoints T={T}": compute["checkpoints"] + apart[_apart_name("checkpoints")] / T for T in PERIODS}
    if "powersgd" in compute:
        one_bucket = replace(wl(compute["powersgd"]), bucket_bytes=2**62)   # as part 3 runs it
        out["powersgd"] = powersgd(Layout(1, 2, rank=row["rank"]), one_bucket, net).seconds
        for name, method in PERIODIC.items():
            one = apart[_apart_name(name)] = method(layout, wl(0.0), net).seconds   # T = 1: one whole averaging
            out |= {f"{name} H={H}": compute[name] + one / H for H in AVERAGING_PERIODS}
    return out, apart


# fitted constants, in units that keep the fit well conditioned: (name, unit)
FITTED = (("all_reduce: wire factor", 1.0), ("all_reduce: CPU ns per bit", 1e-9),
          ("all_reduce: ms per call", 1e-3), ("logits' all_gather: wire factor", 1.0),
          ("logits' all_gather: ms per call", 1e-3), ("checkpoint exchange: wire factor", 1.0),
          ("checkpoint exchange: CPU ns per bit", 1e-9), ("averaging: wire factor", 1.0), ("averaging: CPU ns per bit", 1e-9),
          ("DiLoCo outer step: CPU ns per bit", 1e-9))
# Two starts, the better fit kept: all_reduce's time is the larger of its wire and CPU terms, so from a
# start where the wire term wins everywhere the CPU constant has no gradient and stays where it began
# (found by tests/test_step_model.py: times made with 0.3 ns per bit were fitted with 0.1).
STARTS = ((1, 0.1, 0.1, 1, 0.1, 1, 0.1, 1, 0.1, 0.1), (1, 1.0, 0.1, 1, 0.1, 1, 0.1, 1, 0.1, 0.1))


def network_fields(x):
    """The Network fields that FITTED's values set. gloo's all_reduce overlaps its reductions with the
    transfer (the larger of its CPU and wire terms counts); the other collectives' CPU work (flatten,
    load, the averager's copies) adds to their transfer. PowerSGD's compression is in its measured
    compute-only time (part 3 runs it on a one-rank group), so none is added here."""
    x = [v * unit for v, (_, unit) in zip(x, FITTED)]
    return {"all_reduce": Overhead(x[0], x[1], x[2], overlap=True), "all_gather": Overhead(x[3], 0.0, x[4]),
            "exchange": Overhead(x[5], x[6]), "averaging": Overhead(x[7], x[8]), "outer_s_per_bit": x[9]}


def fit_part3(rows):
    """FITTED by least squares on the relative error of every time per update of part 3. Measured
    inputs: compute-only times, link rates. Constants of methods absent from `rows` stay at their start."""
    from scipy.optimize import least_squares

    def residuals(x):
        out = []
        for row in rows:
            predicted, _ = predict_part3(row, bench_network(row, network_fields(x)))
            out += [predicted[name] / measured - 1 for name, measured in row["measured"].items()]
        return out

    x = min((least_squares(residuals, start, bounds=(0, np.inf)) for start in STARTS), key=lambda fit: fit.cost).x
    return {"x": [float(v) for v in x], "fields": network_fields(x)}


def calibrate(network_part, fitted=None):
    """Predicted vs measured time per update for every row of part 3; the collectives timed apart
    as diagnostic rows (not fitted for)."""
    rows = part3_rows(network_part)
    fitted = fitted or fit_part3(rows)
    table = []
    for row in rows:
        predicted, apart = predict_part3(row, bench_network(row, fitted["fields"]))
        for name, measured in row["measured"].items():
            table.append({"model": row["model"], "limit": row["limit"], "method": name, "measured_s": measured,
                          "predicted_s": predicted[name], "error_pct": 100 * (predicted[name] / measured - 1)})
        for name, measured in row["apart"].items():
            table.append({"model": row["model"], "limit": row["limit"], "method": name, "measured_s": measured,
                          "predicted_s": apart[name], "error_pct": 100 * (apart[name] / measured - 1),
                          "diagnostic": True})
    return fitted, table


def leave_one_model_out(network_part):
    """Worst |error| per update on each model when the constants are fitted on the other models only."""
    rows = part3_rows(network_part)
    worst = {}
    for model in {r["model"] for r in rows}:
        fitted = fit_part3([r for r in rows if r["model"] != model])
        held = {**network_part, "models": [m for m in network_part["models"] if m["label"] == model]}
        _, table = calibrate(held, fitted)
        worst[model] = max(abs(r["error_pct"]) for r in table if not r.get("diagnostic"))
    return worst
