"""What a value of a config must satisfy beyond its type: a `Rule` (allowed values, bounds, a whole
number, an integer, a length), declared on the schema field it constrains (`spec`), or for a key a
config may add (`+data.holdout`) in its schema's `optional_keys`, and checked for every job by
`problems_of`, which names the key, the value and what is allowed."""
import dataclasses
import math
import typing
from dataclasses import dataclass, field

from omegaconf import MISSING

RULE = "rule"
# A number as written, 1 or 1.0: the run id hashes the resolved config, so a field never converts one.
# typing.Union, not int | float: the schemas' `Number | None` then stays the typing.Optional[Union[int, float]]
# the run ids were verified with.
Number = typing.Union[int, float]  # noqa: UP007
# A list of numbers as written. Typed List[Any], not List[Number]: omegaconf 2.3 yields its UnionNode
# wrappers, not the values, when a List[Union[int, float]] is iterated (omegaconf#1310, fixed after
# 2.3), so `sum(cfg.schedule.lr.milestones)` would fail. The field's rule checks each value is a number.
Numbers = list[typing.Any]
WORKLOAD_NAME = "the workload file sets it: workload=<file> chooses another"


@dataclass(frozen=True)
class Rule:
    choices: tuple = None   # the values allowed
    at_least: float = None
    above: float = None
    at_most: float = None
    below: float = None
    whole: bool = False     # an integral number: a value computed by interpolation may be 4.0
    integer: bool = False   # an int (4, not 4.0): for a key no schema field types (an optional key)
    nullable: bool = False  # null allowed too, for an optional key (a field's type says it for the field)
    length: int = None      # a list of this many values, each one following the rule
    why: str = None

    def holds(self, value):
        if value is None and self.nullable:
            return True
        if isinstance(value, list):
            return (self.length is None or len(value) == self.length) and all(map(self._holds, value))
        return self._holds(value)

    def _holds(self, value):
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float)):
            return False
        if not math.isfinite(value):   # inf passes a lower bound alone, and trains nothing a run can use
            return False
        return ((not self.whole or float(value).is_integer())
                and (self.at_least is None or value >= self.at_least) and (self.above is None or value > self.above)
                and (self.at_most is None or value <= self.at_most) and (self.below is None or value < self.below))

    def describe(self, integer=False):
        if self.choices is not None:
            text = "allowed: " + ", ".join(map(str, self.choices))
        elif self.below is not None or self.at_most is not None:
            low = f"[{self.at_least}" if self.at_least is not None else f"({self.above}"
            high = f"{self.below})" if self.below is not None else f"{self.at_most}]"
            text = f"must be in {low}, {high}"
        else:
            kind = "a whole number " if self.whole else "an integer " if integer or self.integer else ""
            text = "must be " + kind + (f">= {self.at_least}" if self.at_least is not None else f"> {self.above}")
        if self.length is not None:
            text = f"must be {self.length} values, each {text.removeprefix('must be ')}"
        return f"{text} ({self.why})" if self.why else text


def spec(rule=None, **fields):
    """A required schema field (no default: the config file gives its value) with a rule: a Rule,
    or a Rule's fields, or a Rule with some of its fields replaced (`spec(COUNT, why=...)`)."""
    return field(default=MISSING, metadata={RULE: dataclasses.replace(rule, **fields) if rule else Rule(**fields)})


def named(name, why):
    """The `name` field of a schema's configs: that one name (its default too, so that the schema
    knows its own name)."""
    return field(default=name, metadata={RULE: Rule(choices=(name,), why=why)})


def shares(group, after=None):
    """A schema's fields that several schemas share, declared once: a class decorator (under
    @dataclass) that adds the fields of the dataclass `group`, in its order, right after the
    class's own field `after` (None: after all of them). The fields stay where the config files
    write them, so a resolved config keeps its keys and their order."""
    def add(cls):
        own = list(cls.__dict__.get("__annotations__", {}).items())
        at = len(own) if after is None else [name for name, _ in own].index(after) + 1
        for shared in dataclasses.fields(group):
            setattr(cls, shared.name, field(default=shared.default, default_factory=shared.default_factory,
                                             metadata=shared.metadata))
        cls.__annotations__ = dict(own[:at] + [(shared.name, shared.type) for shared in dataclasses.fields(group)]
                                   + own[at:])
        return cls
    return add


COUNT = Rule(at_least=1)
NON_NEGATIVE = Rule(at_least=0)
POSITIVE = Rule(above=0)
FRACTION = Rule(at_least=0, below=1)


def dataclass_in(annotation):
    """The dataclass an annotation names (Optional[X] too), or None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if dataclasses.is_dataclass(candidate):
            return candidate
    return None


def problems_of(value, schema, key):
    """Every value of `value` (a resolved config node, a plain dict) that breaks a rule its schema
    declares, nested schemas included, as 'key=value: what is allowed'. A schema may list rules for
    keys that a config may add (`+key=...`) in a class attribute `optional_keys`; a schema with
    `closed = True` refuses any other key, which nothing would read. key: the node's own key
    ('' for the job's root, whose keys are named alone)."""
    problems, declared = [], {f.name: f for f in dataclasses.fields(schema)}
    optional = getattr(schema, "optional_keys", {})
    for name, item in value.items():
        full = f"{key}.{name}" if key else name
        if name in declared:
            nested = dataclass_in(declared[name].type)
            if nested is not None and isinstance(item, dict):
                problems += problems_of(item, nested, full)
            rule, integer = declared[name].metadata.get(RULE), declared[name].type in (int, int | None)
        elif getattr(schema, "closed", False) and name not in optional:
            owner = " ".join(part for part in (key, getattr(schema, "name", "")) if part) or "the job"
            problems.append(f"{full}={item!r}: {owner} does not read this key (it reads "
                            f"{', '.join(sorted([*declared, *optional]))}); remove the override")
            continue
        else:
            rule, integer = optional.get(name), False
        if rule is not None and (item is not None or name not in declared) and not rule.holds(item):
            infinite = isinstance(item, float) and not math.isfinite(item)
            problems.append(f"{full}={item!r}: {'not a finite number; ' * infinite}{rule.describe(integer)}")
    return problems
