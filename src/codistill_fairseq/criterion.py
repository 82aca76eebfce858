"""The codistillation criterion: fairseq's label-smoothed cross-entropy, with label smoothing that
can be removed or decayed per epoch, plus alpha x the mean over peers of the token-level MSE
between logits (paper Algorithm 1, line 4; Appendix A.3 for translation; or kl / soft_ce: the
task's --distill-loss, from method.loss).

    loss_i = CE_eps(e)(y, f_i(x)) + alpha(e) * 1/(n-1) * sum_{j != i} MSE(f_i(x), f_j(x))

The teachers f_j and the distillation term are the task's codistill.Codistiller's (token-level,
over the positions that are not padding); with any other task, or in validation, the term is
omitted. alpha is the Codistiller's alone (its alpha_at: the task's schedule, 0 during the
burn-in), which the distillation term applies and the task's records log. Label smoothing's
schedule is codistill_experiments.translation.label_smoothing's.
"""
import math
from dataclasses import dataclass, field

from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
)
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics

from codistill_experiments.names import LABEL_SMOOTHING_SCHEDULES
from codistill_experiments.translation.label_smoothing import label_smoothing_at


@dataclass
class CodistillCriterionConfig(LabelSmoothedCrossEntropyCriterionConfig):
    label_smoothing_schedule: ChoiceEnum(LABEL_SMOOTHING_SCHEDULES) = field(
        default="constant", metadata={"help": "constant, or exponential: label_smoothing * decay^(epochs done)"})
    label_smoothing_decay: float = field(default=1.0, metadata={"help": "per-epoch factor of the exponential "
                                                                        "label smoothing schedule"})


@register_criterion("codistill", dataclass=CodistillCriterionConfig)
class CodistillCriterion(LabelSmoothedCrossEntropyCriterion):
    def __init__(self, task, sentence_avg, label_smoothing, ignore_prefix_size=0, report_accuracy=False,
                 label_smoothing_schedule="constant", label_smoothing_decay=1.0):
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy)
        self.epsilon0, self.label_smoothing_schedule = label_smoothing, str(label_smoothing_schedule)
        self.label_smoothing_decay = label_smoothing_decay

    def _epochs_done(self):
        return getattr(self.task, "epoch", 1) - 1

    def current_label_smoothing(self):
        return label_smoothing_at(self.epsilon0, self.label_smoothing_schedule, self.label_smoothing_decay,
                                  self._epochs_done())

    def forward(self, model, sample, reduce=True):
        self.eps = self.current_label_smoothing()
        net_output = model(**sample["net_input"])
        ce_loss, nll_loss = self.compute_loss(model, net_output, sample, reduce=reduce)
        sample_size = sample["target"].size(0) if self.sentence_avg else sample["ntokens"]
        codistiller, teachers = getattr(self.task, "codistiller", None), []
        if model.training and codistiller is not None:
            teachers = codistiller.teachers_logits(self.task.update, sample["net_input"], net_output[0])
        loss, distill = ce_loss, ce_loss.new_zeros(())
        if teachers:
            target = model.get_targets(sample, net_output)
            weighted, distill = codistiller.distillation(self.task.update, net_output[0], teachers,
                                                         keep=target.ne(self.padding_idx))
            loss = ce_loss + weighted
        if model.training:
            self.task.last_label_smoothing = self.eps
        logging_output = {
            "loss": loss.data,
            "ce_loss": ce_loss.data,
            "nll_loss": nll_loss.data,
            "distill": distill.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["target"].size(0),
            "sample_size": sample_size,
        }
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        distill = sum(log.get("distill", 0) for log in logging_outputs)
        ce_loss = sum(log.get("ce_loss", 0) for log in logging_outputs)
        metrics.log_scalar("distill", distill / sample_size, sample_size, round=4)
        metrics.log_scalar("ce_loss", ce_loss / sample_size / math.log(2), sample_size, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
