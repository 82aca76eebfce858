"""One tuning protocol for every arm (figures/tuning.py), read from the committed logs: each tuned
arm's fresh-seed runs are at the setting its budget chose on held-out data, all_reduce and the
no-communication control have the methods' budget, and the per-arm table says when the recipe's
own setting won and when DiLoCo's search landed on local SGD."""
import pytest

from figures import tuning
from figures.logs.collect import collect
from figures.paths import COMMITTED

FRESH_SEEDS = (3, 4, 5)


def records(sweep):
    found, _ = collect(COMMITTED, sweep, "mini", kinds=("eval",))
    return found


def fresh_seed_settings(sweep, compared):
    """{arm: the settings its fresh-seed runs in `compared` use}, by the budget's own arm and setting."""
    arm_of, tuned = tuning.BUDGETS[sweep]
    runs = records(compared)
    found = {}
    for _, run in tuning.final_runs(runs[runs["seed"].isin(FRESH_SEEDS)]).iterrows():
        found.setdefault(arm_of(run), set()).add(tuning.setting_of(run, tuned))
    return found


@pytest.mark.parametrize("sweep, compared", [("frontier_tuning", "frontier"), ("baseline_tuning", "tuned_baselines"),
                                             ("frontier_regime", "frontier_regime")])
def test_each_tuned_arm_runs_at_the_setting_its_budget_chose(sweep, compared):
    ranked = tuning.ranking(records(sweep), sweep)
    chosen = dict(zip(ranked.loc[ranked["best"], "arm"], ranked.loc[ranked["best"], "setting"]))
    ran = fresh_seed_settings(sweep, compared)
    assert set(ran) <= set(chosen), f"fresh-seed runs of arms no budget tuned: {set(ran) - set(chosen)}"
    for arm, settings in ran.items():
        assert settings == {chosen[arm]}, f"{compared}: {arm} runs at {settings}, its budget chose {chosen[arm]}"


def test_the_frontiers_reference_and_control_have_the_methods_budget():
    table = tuning.protocol(records("frontier_tuning"), records("frontier"), "frontier_tuning").set_index("arm")
    methods = table.loc[["codistill", "diloco", "localsgd", "powersgd"], "candidates"]
    assert set(methods) == {6}
    assert table.loc["allreduce", "candidates"] == 6
    # six base LRs of models that never communicate, and local SGD never averaging (DiLoCo's too)
    assert table.loc[tuning.CONTROL, "candidates"] == 7
    ranked = tuning.ranking(records("frontier_tuning"), "frontier_tuning")
    control = ranked[ranked["arm"] == tuning.CONTROL]["setting"]
    assert control.str.startswith("localsgd never averaging (H = 3870)").sum() == 1


def test_the_table_says_when_the_recipe_won_and_when_diloco_landed_on_local_sgd():
    tuned = records("baseline_tuning")
    recipe = records("tuned_baselines")
    table = tuning.protocol(tuned, recipe, "baseline_tuning").set_index("arm")
    assert table.loc["allreduce", "outcome"] == "tuned"   # 0.4 chosen, the recipe runs 0.1
    # the same budget judged against a recipe that already ran all_reduce at 0.4: nothing was tuned
    moved = recipe.copy()
    moved.loc[(moved["cfg.method.name"] == "allreduce") & moved["seed"].isin([0, 1, 2]), "cfg.schedule.lr.base"] = 0.4
    table = tuning.protocol(tuned, moved, "baseline_tuning").set_index("arm")
    assert table.loc["allreduce", "outcome"] == "the default won"
    assert table.loc["independent", "outcome"] == "tuned"
    frontier = tuning.protocol(records("frontier_tuning"), records("frontier"), "frontier_tuning").set_index("arm")
    assert frontier.loc["diloco", "chosen"] == "outer_lr=1.0, outer_momentum=0.0"
    assert "local SGD" in frontier.loc["diloco", "note"]
    assert frontier.loc["localsgd", "note"] == ""


def test_the_report_tables_every_budget():
    lines = "\n".join(tuning.report_section(COMMITTED))
    for sweep in tuning.REPORTED:
        assert f"**{sweep}**" in lines
    assert "| no communication | 7 |" in lines
