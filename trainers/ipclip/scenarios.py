"""IP-CLIP's four scenarios, defined once: what each trains on, what it is tested on, which test
sets are authorized and unauthorized, the metric that judges it, its loss node and its run folders.

train.py (default test sets), the IP-CLIP trainer (streams, loss node), tools/launch.py (run
folders), tools/robustness.py and tools/parse_results.py (roles, metrics) all read this module, so a
new scenario is one entry in SCENARIOS. It imports nothing heavy (its only project import is the
error type of dassl.errors).
"""
from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field
from typing import NamedTuple

from dassl.errors import ConfigError

# split: "source" (the source domains' train split) or "target" (the target domains' train split);
# pre_transforms: registered image-level transforms (dassl.data.transforms.PRE_TRANSFORM_REGISTRY)
# applied at the original resolution before the usual train transform.
StreamSpec = namedtuple("StreamSpec", ["split", "pre_transforms"])
# The unauthorized data an attacker holds a few labelled images of (the fine-tuning attack,
# trainers/ipclip/attacks/): the domains whose TRAIN split they come from ("target": the run's target
# domains, "source", "others": every domain but the source, "all": every domain) and the
# pre-transforms that make those images unauthorized.
AttackerData = namedtuple("AttackerData", ["domains", "pre_transforms"])
ATTACKER_DOMAINS = ("target", "source", "others", "all")

AUTHORIZED_SET = "authorized"
UNAUTHORIZED_SET = "unauthorized"
WATERMARKED_SUFFIX = "_wm"
#: Published means (ViT-B/16, the authors' splits) where the source does not say which dataset.
ANY_DATASET = "*"
#: The test sets of a CoOp reference. It trains on the source alone, so one run per (dataset config,
#: source, seed) serves every scenario's table: these sets cover every role (reference_names).
REFERENCE_TEST_SETS = (f"{AUTHORIZED_SET}=source", "{domain}=each",
                       "{domain}" + WATERMARKED_SUFFIX + "=each+watermark")
#: How a scenario's "unauthorized" set reads in a reference tested on REFERENCE_TEST_SETS.
UNAUTHORIZED_IN_REFERENCE = ("target", "watermarked_source", "")


class Roles(NamedTuple):
    """The test sets averaged into "a" and into "u" for the IP metrics."""

    authorized: tuple[str, ...]
    unauthorized: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    name: str
    #: (authorized, unauthorized) training streams.
    streams: tuple
    #: DATASET.TEST_SETS of its runs (IP-CLIP and the CoOp reference alike).
    test_sets: tuple
    #: Whether it names a target domain (target_specified); the others train on the source alone.
    needs_target: bool
    #: What a and u are, for titles, plots and formulas.
    role_text: str
    #: Metric columns of its table after the accuracies and drops, the headline metric first.
    metrics: tuple
    #: What a missing reference leaves blank in its table.
    needs_reference: str
    #: Published headline means by dataset (ANY_DATASET: the dataset is not stated).
    published: dict = field(default_factory=dict)
    #: Which sets of a reference stand for its "unauthorized" set (UNAUTHORIZED_IN_REFERENCE).
    unauthorized_in_reference: str = ""
    #: What an attacker who wants the model on unauthorized inputs labels a few of (AttackerData).
    attacker_data: AttackerData = AttackerData("target", ())

    @property
    def headline(self) -> str:
        return self.metrics[0]

    @property
    def loss_node(self) -> str:
        """The config node of its loss weights: TRAINER.IPCLIP.LOSS.<loss_node>."""
        return self.name.upper()

    def pair_folder(self, source: str, target: str = "") -> str:
        """The folder naming one experiment: <source>_<target>, or <source>_<scenario> where the
        scenario needs no target (the runs then pass the source as target)."""
        return f"{source}_{target}" if self.needs_target else f"{source}_{self.name}"

    def reference_names(self, names, reference_sets, source_domains=(), target_domains=()):
        """The sets of a reference run that stand for these sets of the IP-CLIP run: the same name
        where the reference has it (a reference of this scenario), else, for a shared reference
        (REFERENCE_TEST_SETS), the target domains' or the watermarked source's sets for
        "unauthorized". None when the reference lacks one."""
        stand_in = {
            "target": tuple(target_domains),
            "watermarked_source": tuple(f"{d}{WATERMARKED_SUFFIX}" for d in source_domains),
            "": (),
        }[self.unauthorized_in_reference]
        found = []
        for name in names:
            if name in reference_sets:
                found.append(name)
            elif name == UNAUTHORIZED_SET and stand_in and all(n in reference_sets for n in stand_in):
                found.extend(stand_in)
            else:
                return None
        return tuple(found)

    def roles(self, set_names, source_domains=()) -> Roles | None:
        """Which of `set_names` are "a" and "u" (role_text); None when a set a role needs is missing
        or u would be empty. CoOp references are read with the roles of the IP-CLIP run they serve."""
        names = list(set_names)
        if self.name == "authorization":
            a = tuple(f"{domain}{WATERMARKED_SUFFIX}" for domain in source_domains)
            u = tuple(n for n in names if n not in a)
        else:
            a = (AUTHORIZED_SET,)
            if self.name == "ownership" or (self.name != "target_free" and UNAUTHORIZED_SET in names):
                u = (UNAUTHORIZED_SET,)
            else:
                not_u = {AUTHORIZED_SET, *source_domains} if self.name == "target_free" else {AUTHORIZED_SET}
                u = tuple(n for n in names if n not in not_u)
        if not a or not u or not all(n in names for n in a + u):
            return None
        return Roles(a, u)


_SCENARIOS = (
    Scenario(
        "target_specified",
        streams=(StreamSpec("source", ()), StreamSpec("target", ())),
        test_sets=("authorized=source", "unauthorized=target"),
        needs_target=True,
        role_text="a = 'authorized' (source), u = 'unauthorized' (target)",
        metrics=("w", "d"),
        needs_reference="Drop/W",
        published={"Office31": 74.84, "OfficeHome": 55.10, "miniDomainNet": 54.68},
        unauthorized_in_reference="target",
    ),
    Scenario(
        "target_free",
        streams=(StreamSpec("source", ()), StreamSpec("source", ("strong_style",))),
        test_sets=("authorized=source", "{domain}=each"),
        needs_target=False,
        role_text="a = 'authorized' (source), u = mean over the per-domain sets except the source",
        metrics=("w", "d"),
        needs_reference="Drop/W",
        published={ANY_DATASET: 53.46},
        # any other domain is unauthorized: the attacker labels a few images of each
        attacker_data=AttackerData("others", ()),
    ),
    Scenario(
        "ownership",
        streams=(StreamSpec("source", ()), StreamSpec("source", ("watermark",))),
        test_sets=("authorized=source", "unauthorized=source+watermark"),
        needs_target=False,
        role_text="a = 'authorized' (clean source), u = 'unauthorized' (watermarked source)",
        metrics=("o",),
        needs_reference="Drop/O",
        published={ANY_DATASET: 71.3},
        unauthorized_in_reference="watermarked_source",
        # a thief wants the model to work on marked images too, which defeats the owner's proof
        attacker_data=AttackerData("source", ("watermark",)),
    ),
    Scenario(
        "authorization",
        streams=(StreamSpec("source", ("watermark",)), StreamSpec("source", ("auth_mixture",))),
        test_sets=("{domain}=each", "{domain}" + WATERMARKED_SUFFIX + "=each+watermark"),
        needs_target=False,
        role_text="a = '<source>_wm' (licence key), u = mean over every other set",
        metrics=("d",),
        needs_reference="Drop (D needs none)",
        published={"Office31": 58.78, "OfficeHome": 53.89, "miniDomainNet": 48.39},
        # use without a licence: clean images of every domain
        attacker_data=AttackerData("all", ()),
    ),
)
SCENARIOS = {s.name: s for s in _SCENARIOS}
SCENARIO_NAMES = tuple(SCENARIOS)
DEFAULT_SCENARIO = "target_specified"


def get_scenario(name: str) -> Scenario:
    if name not in SCENARIOS:
        raise ConfigError(f"unknown IP-CLIP scenario {name!r}: expected one of {', '.join(SCENARIO_NAMES)} "
                          "(trainers/ipclip/scenarios.py defines them)")
    return SCENARIOS[name]


def cli_test_sets(items) -> str:
    """Test set items (e.g. a scenario's test_sets) as the value of a `DATASET.TEST_SETS` override."""
    return "[" + ",".join(f"'{item}'" for item in items) + "]"
