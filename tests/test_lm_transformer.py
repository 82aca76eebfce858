"""The transformer language model in the torch engine (workload lm_transformer_mini): its
tokens against the corpus's lines, its blocks against a hand shift, its causality, and a 2-process
codistillation run against Algorithm 1 written out per token in one process."""
import pytest
import torch
from omegaconf import OmegaConf
from reference import algorithm1
from test_engine_distributed import last_eval

from codistill_experiments import datasets
from codistill_experiments.language_model.corpus import generate_lm_corpus
from codistill_experiments.language_model.transformer import CausalTransformerLM, blocks, token_stream
from codistill_experiments.training.engine import build_optimizer

CORPUS = dict(seed=0, vocab=30, classes=5, successors=2, zipf=1.0, min_len=2, max_len=4, min_sentences=1,
              max_sentences=2, train_documents=300, valid_documents=40, test_documents=2)
SMALL = ["workload=lm_transformer_mini", *(f"workload.corpus.{key}={value}" for key, value in CORPUS.items()),
         "workload.num_classes=31", "workload.tokens_per_sample=8", "workload.train_size=128",
         "workload.val_size=24", "workload.width=16", "workload.heads=2", "workload.layers=1",
         "workload.batch_per_rank=8", "workload.eval_batch=10", "schedule.epochs=2"]


def test_tokens_number_each_word_and_end_every_line_as_fairseq_does():
    lines = generate_lm_corpus(CORPUS)["train"][:12]
    stream = token_stream(lines, 30).tolist()
    expected = []   # by hand: wK -> K, every line's end (an empty line: a document's end alone) -> </s> = 30
    for line in lines:
        expected += [int(word[1:]) for word in line.split()] + [30]
    assert stream == expected
    assert stream.count(30) == len(lines) and "" in lines


def test_a_blocks_targets_are_its_tokens_shifted_by_one():
    stream = torch.arange(23)
    inputs, targets = blocks(stream, 5, 4)
    assert inputs.tolist()[1] == [5, 6, 7, 8, 9] and targets.tolist()[1] == [6, 7, 8, 9, 10]
    assert targets.tolist()[3] == [16, 17, 18, 19, 20]
    with pytest.raises(ValueError, match="holds 4 blocks of 5 tokens"):
        blocks(stream, 5, 5)


def test_a_tokens_logits_do_not_see_the_tokens_after_it():
    torch.manual_seed(0)
    model = CausalTransformerLM(vocab=31, length=8, width=16, layers=2, heads=2)
    tokens = torch.randint(31, (3, 8))
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 31
    before, after = model(tokens).view(3, 8, 31), model(changed).view(3, 8, 31)
    torch.testing.assert_close(before[:, :5], after[:, :5])
    assert (before[:, 5:] - after[:, 5:]).abs().max() > 1e-3


def test_adamw_takes_beta1_from_the_schedules_momentum():
    schedule = OmegaConf.create({"optimizer": "adamw", "momentum": 0.8})
    optimizer = build_optimizer(schedule, [torch.nn.Parameter(torch.ones(2))], lr=0.1, weight_decay=0.01)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["betas"] == (0.8, 0.95) and optimizer.defaults["weight_decay"] == 0.01


def blocks_per_model(container):
    return int(container["scale"]["batch_per_rank"])   # one rank a model


def function_params(saved):
    """Every parameter but the attention's key bias: it adds q . b_k to every score of a query, which
    the softmax ignores, so its gradient is 0 but for rounding, which Adam (dividing by sqrt(v)) turns
    into steps of the learning rate's size that differ between any two summation orders."""
    state = torch.load(saved, weights_only=True) if not isinstance(saved, torch.nn.Module) else saved.state_dict()
    kept = []
    for name, tensor in state.items():
        if name.endswith("in_proj_bias"):
            width = tensor.numel() // 3
            tensor = torch.cat([tensor[:width], tensor[2 * width:]])
        kept.append(tensor.detach().flatten())
    return torch.cat(kept)


@pytest.mark.slow
def test_two_process_codistillation_of_the_language_model_equals_algorithm1_per_token(run_job, tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "SCAN_CACHE", tmp_path / "cache")
    directory, container = run_job([*SMALL, "method=codistill", "method.period=1", "method.alpha=0.5"])
    for model, reference in enumerate(algorithm1(container, n_models=2, batch_per_model=blocks_per_model(container))):
        torch.testing.assert_close(function_params(directory / f"model{model}.pt"), function_params(reference),
                                   rtol=0, atol=2e-5)
    [plain, _] = algorithm1(container, n_models=2, batch_per_model=blocks_per_model(container), alpha_on=False)
    assert (function_params(directory / "model0.pt") - function_params(plain)).abs().max() > 1e-3
    evaluation, _ = last_eval(directory)
    assert evaluation["val_samples"] == 24 * 8   # every validation token is a sample
    # the corpus was generated once and read back: one cache file
    assert len(list((tmp_path / "cache").glob("lm-corpus-*.pt"))) == 1


@pytest.mark.slow
def test_gradient_clipping_in_the_engine_is_the_hand_rescaling_of_each_models_gradient(run_job, tmp_path,
                                                                                        monkeypatch):
    """schedule.clip_norm (the peers' recipe for language models) in a 2-process codistillation run,
    against the rescaling written out in one process. The bound is small enough that every update
    clips: unclipped, the models end elsewhere (not far: AdamW's step is nearly blind to a gradient's
    scale, so only the change of the rescaling from one update to the next moves it, yet 10 times the
    tolerance of the match)."""
    monkeypatch.setattr(datasets, "SCAN_CACHE", tmp_path / "cache")
    clipped = [*SMALL, "method=codistill", "method.period=1", "method.alpha=0.5", "schedule.clip_norm=0.05"]
    directory, container = run_job(clipped)
    assert container["schedule"]["clip_norm"] == 0.05
    for model, reference in enumerate(algorithm1(container, n_models=2, batch_per_model=blocks_per_model(container))):
        torch.testing.assert_close(function_params(directory / f"model{model}.pt"), function_params(reference),
                                   rtol=0, atol=2e-5)
    unclipped = algorithm1({**container, "schedule": {**container["schedule"], "clip_norm": None}}, n_models=2,
                           batch_per_model=blocks_per_model(container))
    assert (function_params(directory / "model0.pt") - function_params(unclipped[0])).abs().max() > 2e-4
