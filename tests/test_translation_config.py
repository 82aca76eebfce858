"""Translation jobs at compose time: the paper-scale recipes resolve to the experiment map's values
(and to the fairseq-train arguments that carry them), bad keys are named, missing data is a warning
in a dry run and an error otherwise. (tests/test_sweeps.py lists the translation sweeps at both scales
and checks that the ablations reuse Fig. 4's runs.)"""
import re

import pytest
from conftest import compose_job, covering
from test_config import run_cli

from codistill_experiments.config import ConfigError
from codistill_experiments.translation.checks import TRANSLATION_SCHEDULES
from codistill_experiments.translation.commands import generate_arguments, train_arguments


def argument(argv, flag):
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize("method, schedule, gpus_per_model, label_smoothing", [
    ("allreduce", "ott2018", 16, 0.1), ("codistill", "ott2018_codistill", 8, 0.0),
    ("codistill", "ott2018_codistill_ls_decayed", 8, 0.1)])   # Sec. 4.2's variant: decayed, not removed
def test_fig4_paper_recipe(tmp_path, method, schedule, gpus_per_model, label_smoothing):
    job = compose_job(["workload=wmt16_transformer_big", f"method={method}", f"schedule={schedule}", "scale=paper"],
                      tmp_path)
    w, s, m = job["workload"], job["schedule"], job["method"]
    # Ott et al. 2018 / fairseq scaling_nmt: transformer big, Adam (0.9, 0.98), inverse sqrt, warm-up 4000
    assert w["model"]["arch"] == "transformer_vaswani_wmt_en_de_big" and w["model"]["share_embeddings"] == "all"
    assert (s["adam_betas"], s["lr"], s["warmup_updates"], s["warmup_init_lr"]) == ([0.9, 0.98], 5e-4, 4000, 1e-7)
    assert w["max_tokens"] == 3854 and w["fp16"] and w["gpu_memory_gb"] == 32   # A.3: V100 32 GB, 3854 tokens
    assert s["label_smoothing"] == label_smoothing                              # A.3: removed for codistillation
    assert job["scale"]["ranks_per_model"] * m["n"] == 16 and job["scale"]["ranks_per_model"] == gpus_per_model
    argv = train_arguments(job, tmp_path / "run", "/data", group=0, cuda=True)
    assert argument(argv, "--arch") == "transformer_vaswani_wmt_en_de_big" and "--share-all-embeddings" in argv
    assert argument(argv, "--adam-betas") == "(0.9, 0.98)" and argument(argv, "--lr-scheduler") == "inverse_sqrt"
    assert argument(argv, "--max-tokens") == "3854" and argument(argv, "--warmup-updates") == "4000"
    assert argument(argv, "--label-smoothing") == str(label_smoothing) and "--fp16" in argv
    assert argument(argv, "--distributed-world-size") == str(gpus_per_model)
    decayed = schedule.endswith("_ls_decayed")   # x0.9 per epoch (our rate; docs/paper-discrepancies.md)
    assert (argument(argv, "--label-smoothing-schedule"), argument(argv, "--label-smoothing-decay")) == \
        (("exponential", "0.9") if decayed else ("constant", "1.0"))
    if method == "codistill":
        assert (m["exchange"], m["alpha_schedule"], m["alpha_gamma"]) == ("checkpoints", "exponential", 1.1)
        assert argument(argv, "--alpha-schedule") == "exponential" and argument(argv, "--alpha-gamma") == "1.1"
        assert argument(argv, "--exchange-period") == str(m["period"]) == "2500"
        assert argument(argv, "--n-models") == "2"
    else:
        assert argument(argv, "--exchange-period") == "0" and argument(argv, "--codistill-alpha") == "0.0"
    generate = generate_arguments(job, tmp_path / "run", "/data", 0, cuda=True)
    assert (argument(generate, "--beam"), argument(generate, "--lenpen")) == ("4", "0.6")
    assert argument(generate, "--remove-bpe") == "@@ " and argument(generate, "--gen-subset") == "test"


@pytest.mark.slow
def test_iwslt_recipes_of_table2_and_the_over_fitting_result(tmp_path):
    table2 = compose_job(["workload=iwslt14_transformer", "method=codistill", "method.n=8",
                          "schedule=iwslt_transformer_codistill", "scale=paper", "scale.ranks_per_model=1"], tmp_path)
    assert table2["workload"]["model"]["arch"] == "transformer_iwslt_de_en"
    assert (table2["workload"]["source_lang"], table2["workload"]["target_lang"]) == ("de", "en")
    assert table2["schedule"]["weight_decay"] == 1e-4 and table2["schedule"]["label_smoothing"] == 0.0
    assert table2["world_size"] == 8 and table2["workload"]["max_tokens"] == 3854
    big = compose_job(["workload=iwslt14_transformer_big", "method=allreduce", "scale=paper",
                       "scale.ranks_per_model=2"], tmp_path)
    assert big["workload"]["model"]["arch"] == "transformer_vaswani_wmt_en_de_big"
    assert big["workload"]["name"] == "iwslt14_de_en" and big["schedule"]["name"] == "iwslt_transformer"
    assert big["schedule"]["label_smoothing"] == 0.1


def test_a_translation_workload_brings_its_schedule_and_codistillation_defaults(tmp_path):
    job = compose_job(["workload=translation_mini", "method=codistill"], tmp_path)
    assert job["schedule"]["name"] == "translation_mini"
    assert (job["method"]["exchange"], job["method"]["period"], job["method"]["alpha_schedule"]) == \
        ("checkpoints", 25, "exponential")
    # ... and vision keeps its own.
    vision = compose_job(["method=codistill"], tmp_path)
    assert (vision["method"]["exchange"], vision["method"]["period"], vision["method"]["alpha_schedule"]) == \
        ("predictions", 1, "constant")
    assert vision["schedule"]["name"] == "goyal_step"


# `make test-fast` composes a covering set of the pairs (every schedule and every method once), `make test` all.
TRANSLATION_METHODS = ["allreduce", "codistill", "independent"]
TRANSLATION_COVERING = covering(TRANSLATION_METHODS, TRANSLATION_SCHEDULES)


@pytest.mark.parametrize("method, schedule", [
    pytest.param(method, schedule, marks=() if (method, schedule) in TRANSLATION_COVERING else pytest.mark.slow)
    for method in TRANSLATION_METHODS for schedule in TRANSLATION_SCHEDULES])
def test_every_translation_schedule_composes_with_every_method(tmp_path, schedule, method):
    job = compose_job(["workload=translation_mini", f"method={method}", f"schedule={schedule}"], tmp_path)
    assert job["schedule"]["kind"] == "translation"


@pytest.mark.parametrize("overrides, key", [
    (["method=codistill", "method.exchange=predictions"], "method.exchange"),
    (["method=codistill", "method.alpha_schedule=step"], "method.alpha_schedule"),
    (["schedule=goyal_step"], "schedule.name"),
    (["batch_scale=2"], "batch_scale"),
    (["data.fraction=0.5"], "data.fraction"),
    (["schedule.max_update=0"], "schedule.max_update"),
    (["schedule.label_smoothing=1.5"], "schedule.label_smoothing"),
    (["schedule.label_smoothing_schedule=linear"], "schedule.label_smoothing_schedule"),
    (["schedule.adam_betas=[0.9]"], "schedule.adam_betas"),
    (["workload.model.share_embeddings=all"], "workload.model.share_embeddings"),
    (["workload.model.encoder_layers=0"], "workload.model.encoder_layers"),
    (["method=codistill", "method.snapshot_mode=sometimes"], "method.snapshot_mode"),
    (["workload.generation.beam=0"], "workload.generation.beam"),
    (["workload.bleu_tokenize=nope"], "workload.bleu_tokenize"),
    (["workload.corpus.min_len=9"], "workload.corpus.min_len"),
    (["eval_every_epochs=0.5"], "eval_every_epochs"),
])
def test_invalid_translation_jobs_name_the_key(tmp_path, overrides, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        compose_job(["workload=translation_mini", *overrides], tmp_path)


def test_a_translation_schedule_with_a_vision_workload_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"schedule.name='ott2018': a translation recipe"):
        compose_job(["schedule=ott2018"], tmp_path)


@pytest.mark.slow
def test_missing_paper_data_warns_in_a_dry_run_and_stops_a_real_run(tmp_path):
    args = ["workload=wmt16_transformer_big", "scale=paper", "method=codistill", f"results_root={tmp_path}",
            f"workload.data_bin={tmp_path / 'nowhere'}"]
    dry = run_cli(*args, "dry_run=true", cwd=tmp_path)
    assert dry.returncode == 0 and "warning: cannot run here yet: workload.data_bin=" in dry.stdout
    real = run_cli(*args, cwd=tmp_path)
    assert real.returncode != 0 and "workload.data_bin=" in real.stderr and "dict.en.txt" in real.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("scale, expected", [(None, 2.0), (0.25, 0.5)])
def test_a_translation_stand_ins_alpha_scale_multiplies_the_distillation_weight_fairseq_gets(tmp_path, scale,
                                                                                             expected):
    """workload.alpha_scale s sends alpha x s to the criterion (the paper's pull per logit over a
    vocabulary far larger than the stand-in's); null leaves alpha as given."""
    job = compose_job(["workload=translation_grammar", "method=codistill", "method.alpha=2",
                       f"workload.alpha_scale={'null' if scale is None else scale}"], tmp_path)
    argv = train_arguments(job, tmp_path / "run", "/data", group=0, cuda=False)
    assert float(argument(argv, "--codistill-alpha")) == expected
    control = compose_job(["workload=translation_grammar", "method=independent", "workload.alpha_scale=0.25"],
                          tmp_path)
    assert float(argument(train_arguments(control, tmp_path / "run", "/data", group=0, cuda=False),
                          "--codistill-alpha")) == 0.0
