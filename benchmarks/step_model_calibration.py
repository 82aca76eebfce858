"""The step-time model (step_model.py) judged out of sample on part 3 of `make bench`
(bench_network.py: two simulated nodes, one gloo rank each, on a veth shaped at 3 rates). Its
constants come from the calibration part alone (bench_calibration.py: the link rate, each collective's
per-call latency, wire factor and CPU time per bit, the methods' own arithmetic per bit, each measured
on plain tensors or on the real object on a one-rank group), never from part 3's times per update;
each row's prediction takes from part 3 only its measured inputs (the method's compute-only time, the
model's sizes). Then, row by row, predicted against measured time per update, and the
leave-one-model-out error (a constant fitted on rows would be fitted on the other models' rows only;
`fit_on_rows` fits none)."""
from dataclasses import replace
from statistics import mean

from codistill_experiments.step_model import (
    Layout,
    Network,
    Overhead,
    Workload,
    all_reduce,
    checkpoints,
    diloco,
    localsgd,
    powersgd,
    predictions,
)

from .bench_network_methods import AVERAGING_PERIODS, TIMED_APART

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


def bench_network(row, constants):
    """Part 3's setting: one rank per 'server', the veth at the calibration's rate for the row's limit
    (no added latency: netem was not available), no intra-server links; the overheads and device
    costs of that limit from `constants` (network_constants)."""
    at = constants[row["limit"]]
    return Network(inter_bits_per_s=at["link_bits_per_s"], inter_latency_s=0.0, gpus_per_server=1, **at["fields"])


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


# Which calibration kind times each of the model's collectives, and how its bits are counted in
# step_model (Overhead.apply's `bits`): all_reduce per bit of the tensor; an all_gather per bit
# gathered (m = 2 ranks: twice the bits of each rank's tensor, which the calibration's slope is per).
COLLECTIVE_KINDS = {"all_reduce": ("all_reduce", 1), "all_gather": ("all_gather", 2),
                    "exchange": ("all_gather_single", 2), "averaging": ("all_reduce", 1)}
SHAPED = ("1gbit", "100mbit")
# The checkpoint exchange's copies around its all_gather (exchange.CheckpointExchange with 2 groups):
# the parameters into the flat own copy, that into the wire, the wire into the teacher's flat copy, that
# into the teacher: 4 copies of b_model, 2 per gathered bit.
EXCHANGE_COPIES_PER_GATHERED_BIT = 2
# DDP (gradient_as_bucket_view off, torch's default and the engine's) copies each gradient into its
# bucket and the reduced bucket back: 2 copies per gradient bit, absent from the bare model's
# compute-only time.
DDP_COPIES_PER_BIT = 2


def collective_constants(calibration):
    """Per collective kind: wire factor (its slope at the shaped rates times the link's rate: 1 is the
    ideal 2-rank transfer of each rank's tensor; mean over the shaped limits), CPU seconds per bit (its
    slope without a limit, where the veth moves bytes at the speed of a copy) and per-call seconds at
    each limit (its tiny calls)."""
    limits = calibration["limits"]
    out = {}
    for kind in dict.fromkeys(kind for kind, _ in COLLECTIVE_KINDS.values()):
        fits = {limit: at["fits"][kind] for limit, at in limits.items()}
        out[kind] = {"wire": mean(fits[limit]["s_per_bit"] * limits[limit]["link_bits_per_s"] for limit in SHAPED),
                     "s_per_bit": fits["none"]["s_per_bit"],
                     "call_s": {limit: f["call_s"] for limit, f in fits.items()}}
    return out


def network_constants(calibration):
    """Per limit of part 3: the link rate and the Network fields of step_model, every one from the
    calibration part. gloo's collectives overlap their CPU work with the transfer (the larger of the
    two counts); the methods' own arithmetic (copies, torch's averager's flatten and division, DiLoCo's
    outer step) adds, measured alone. PowerSGD's compression is in its measured compute-only time (part
    3 runs it on a one-rank group), so none is added here."""
    kinds, alone = collective_constants(calibration), calibration["alone_s_per_bit"]
    extra = {"all_reduce": 0.0, "all_gather": 0.0, "exchange": EXCHANGE_COPIES_PER_GATHERED_BIT * alone["copy"],
             "averaging": alone["averaging"]}
    out = {}
    for limit, at in calibration["limits"].items():
        fields = {}
        for name, (kind, gathered) in COLLECTIVE_KINDS.items():
            k = kinds[kind]
            fields[name] = Overhead(k["wire"], k["s_per_bit"] / gathered, k["call_s"][limit], overlap=True,
                                    extra_s_per_bit=extra[name])
        fields |= {"outer_s_per_bit": alone["outer_step"], "ddp_s_per_bit": DDP_COPIES_PER_BIT * alone["copy"]}
        out[limit] = {"link_bits_per_s": at["link_bits_per_s"], "fields": fields}
    return out


def constants_table(calibration):
    """The constants as plain values, for results.json and the report."""
    kinds = collective_constants(calibration)
    return {"link_bits_per_s": {limit: at["link_bits_per_s"] for limit, at in calibration["limits"].items()},
            "collectives": kinds, "alone_s_per_bit": calibration["alone_s_per_bit"]}


def fit_on_rows(rows):
    """Constants the model would take from part 3's rows: none (every constant is the calibration's)."""
    return {}


def predicted_rows(rows, calibration, fitted=None):
    """Predicted vs measured time per update for each of part 3's `rows` (part3_rows: the rows' own
    inputs) from the calibration's constants and `fitted` (Network fields fitted on rows; fit_on_rows fits none);
    the collectives timed apart follow as diagnostic rows."""
    constants = apply_fitted(network_constants(calibration), fitted)
    table = []
    for row in rows:
        predicted, apart = predict_part3(row, bench_network(row, constants))
        for name, measured in row["measured"].items():
            table.append({"model": row["model"], "limit": row["limit"], "method": name, "measured_s": measured,
                          "predicted_s": predicted[name], "error_pct": 100 * (predicted[name] / measured - 1),
                          "compute_s": row["compute"][name.split()[0]], "params": row["params"]})
        for name, measured in row["apart"].items():
            table.append({"model": row["model"], "limit": row["limit"], "method": name, "measured_s": measured,
                          "predicted_s": apart[name], "error_pct": 100 * (apart[name] / measured - 1),
                          "diagnostic": True})
    return table


def apply_fitted(constants, fitted):
    """The calibration's constants with `fitted` Network fields (by name) replacing theirs at every limit."""
    return {limit: {**at, "fields": {**at["fields"], **(fitted or {})}} for limit, at in constants.items()}


def leave_one_model_out(rows, fit, predict):
    """Per row (a dict with "model"), predict(row, fit(the rows of every other model)): what constants
    fitted on rows predict for a model they never saw."""
    models = dict.fromkeys(row["model"] for row in rows)
    fitted = {model: fit([row for row in rows if row["model"] != model]) for model in models}
    return [predict(row, fitted[row["model"]]) for row in rows]


def judge(network_part, calibration, fit=fit_on_rows):
    """Every row of part 3 with its prediction and error (constants `fit` on all rows: fit_on_rows fits none) and
    its leave-one-model-out error (held_out_error_pct)."""
    rows = part3_rows(network_part)
    table = predicted_rows(rows, calibration, fit(rows))
    held_out = leave_one_model_out(rows, fit, lambda row, fitted: predicted_rows([row], calibration, fitted))
    for line, held in zip(table, [line for lines in held_out for line in lines]):
        assert (line["model"], line["limit"], line["method"]) == (held["model"], held["limit"], held["method"])
        line["held_out_error_pct"] = held["error_pct"]
    return table
