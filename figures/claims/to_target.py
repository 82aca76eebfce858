"""Bits to reach a target as a fewest_bits claim reads them (cost `bits_to_target`): each setting of
a claim's group read from its seed-mean curve (figures/logs/to_target.py)."""
from ..logs.to_target import BITS, BITS_TO_TARGET, to_target
from .groups import NotRun, select, setting_keys

__all__ = ["BITS", "BITS_TO_TARGET", "bits_to_target"]


def bits_to_target(records, group, metric, target, by=None):
    """{knob value (or None): bits} of a claim's group split by `by`: each setting's ToTarget.bits
    (inf where its seed-mean curve never reaches `target`)."""
    selected = select(records, group)
    if selected.empty:
        raise NotRun(f"no finished run matches {group}")
    if by is None:
        return {None: to_target(selected, metric, target).bits}
    return {key: to_target(part, metric, target).bits for key, part in selected.groupby(setting_keys(selected, by))}
