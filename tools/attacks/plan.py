"""Which attacks every finished IP-CLIP run of a results tree gets, and the train.py command of each.

Every attack is an ordinary train.py run in its own folder, `<run>/attacks/<name>/` (ATTACKS_FOLDER),
so the launchers, the skip-if-finished and resume logic and results.json work for it as for any run,
and the protected run's own files are only read. The IP-CLIP attacks start from the config the run
recorded (`train.py --run-config RUN`); the baselines (zero-shot CLIP, CoOp from scratch on the
attacker's shots) start from their trainer config and take the run's data, backbone and attacker keys
(EXPERIMENT_KEYS) from its record. Each protected seed is attacked with its own draw of the attacker's
images (ATTACK.DATA_SEED = the run's SEED), so the std over seeds includes the choice of images.
"""
from __future__ import annotations

import json
import os.path as osp
import sys
from dataclasses import dataclass
from pathlib import Path

from dassl.engine.run_record import FILENAME as RESULTS_FILE
from dassl.utils.tools import atomic_write
from tools.launchers import RunSpec
from tools.results.records import ATTACKS_FOLDER, ResultsError, Run, is_attack_record, run_from_results
from trainers.ipclip.attacks.attacker_data import donor_images
from trainers.ipclip.attacks.input_attacks import INPUT_ATTACKS, reference_statistics
from trainers.ipclip.attacks.style_transplant import TRANSPLANT_MODES
from trainers.ipclip.attacks.watermark_forgery import WatermarkKey, standard_forgeries
from trainers.ipclip.scenarios import get_scenario
from trainers.ipclip.transforms.watermark import NO_OFFSET

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IPCLIP = "IPCLIP"
#: The attacker's budgets k (issue 12): labelled shots per class, or unlabelled authorized images.
DEFAULT_BUDGETS = (1, 4, 16)
#: Attack families --attacks chooses from; the baselines are planned whenever their attack is.
FAMILIES = ("finetune", "transplant", "input", "forgery")
#: Input attacks that match a few authorized images' statistics (their budget is that number).
MATCHING_ATTACKS = ("attack_color_match", "attack_histogram_match")
ATTACK_PREFIX = "attack_"
REFERENCE_NAME = "reference.json"
#: Keys a baseline takes from the protected run's record: its data (dataset, splits, test sets, the
#: scenario's image transforms), its CLIP, the scenario (the attacker's data) and the attack settings.
EXPERIMENT_KEYS = ("DATASET", "INPUT.WATERMARK", "INPUT.STRONG_STYLE", "INPUT.AUTH_MIX", "MODEL.BACKBONE.NAME",
                   "MODEL.CLIP.CACHE_DIR", "TRAINER.IPCLIP.SCENARIO", "ATTACK", "CONFIG_NAME", "RUN_TAG")
WATERMARK = "watermark"
#: Row labels (families) the report keys on.
ZERO_SHOT_FAMILY, FROM_SCRATCH_FAMILY, FINETUNE_FAMILY = "zero-shot CLIP", "CoOp from scratch", "fine-tuning"
#: TEST.FINAL_MODEL of a run whose results.json reports its last epoch, the model the attacks load.
LAST_EPOCH_MODEL = "last_step"
FORGED_WATERMARK = "forged_watermark"


@dataclass(frozen=True)
class Attack:
    """One attack (or baseline) of one budget: its folder name, the row it fills and how it is judged.

    measured: the role ("unauthorized" or "authorized") of the test sets whose accuracy is the
    attacked inputs' (authorization forgery: the forged key stands where the owner's key was).
    judged: whether beating the best baseline counts against the protection (not for an ownership
    forgery, whose accuracy is high when the mark is specific).
    """

    name: str
    family: str
    budget: int | None = None
    baseline: bool = False
    measured: str = "unauthorized"
    judged: bool = True


@dataclass(frozen=True)
class ProtectedRun:
    """A finished IP-CLIP training run of the tree, read from its results.json."""

    path: Path
    run: Run
    config: dict

    @property
    def scenario(self) -> str:
        return self.config["TRAINER"]["IPCLIP"]["SCENARIO"]

    @property
    def seed(self) -> int:
        return self.run.seed

    @property
    def epoch(self) -> int:
        """The epoch of its final model (the one its results.json reports)."""
        return self.config["OPTIM"]["MAX_EPOCH"]

    @property
    def label(self) -> str:
        return f"{self.scenario} {self.run.key.pair} seed {self.seed}"

    def attack_dir(self, name: str) -> Path:
        return self.path / ATTACKS_FOLDER / name


@dataclass
class PlannedAttack:
    """An attack on one run: what it is, the run that does it, and what must exist before it starts."""

    target: ProtectedRun
    attack: Attack
    spec: RunSpec
    reference: tuple | None = None  # (path, budget): the matching attacks' statistics file to write


def read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ResultsError(f"{path}: cannot be read as JSON ({err}); move or delete it, or rerun that run.") from err


def find_protected_runs(root) -> tuple[list[ProtectedRun], list[str]]:
    """Every finished IP-CLIP training run below `root` whose final checkpoint is there, and a note
    for each IP-CLIP run left out (unfinished, eval-only, collapsed, no checkpoint)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise ResultsError(f"results tree {root} is not a folder; pass the output folder of your runs")
    runs, notes = [], []
    for path in sorted(root.rglob(RESULTS_FILE)):
        if not path.is_file() or is_attack_record(path):
            continue
        data = read_record(path)
        if (data.get("run") or {}).get("trainer") != IPCLIP:
            continue
        run = run_from_results(data, path)
        protected = ProtectedRun(path.parent, run, data.get("config") or {})
        final_model = (protected.config.get("TEST") or {}).get("FINAL_MODEL", LAST_EPOCH_MODEL)
        why = ("not finished" if not run.finished else "an eval-only record" if run.key.eval_only
               else run.defect or (f"TEST.FINAL_MODEL {final_model}: the attacks load the last epoch"
                                   if final_model != LAST_EPOCH_MODEL else ""))
        if not why:
            learner = protected.path / "ip_learner" / f"model.pth.tar-{protected.epoch}"
            why = "" if learner.is_file() else f"no final checkpoint {learner}"
        if why:
            notes.append(f"{path.parent}: not attacked ({why})")
        else:
            runs.append(protected)
    return runs, notes


def _literal(value) -> str:
    """A config value as a KEY VALUE override train.py reads back unchanged (yacs literal_eval)."""
    return repr(tuple(value) if isinstance(value, list) else value)


def experiment_opts(config: dict) -> list[str]:
    """KEY VALUE overrides of the EXPERIMENT_KEYS of a recorded config."""
    opts = []

    def walk(node, prefix):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, name + ".")
            elif any(name == k or name.startswith(k + ".") for k in EXPERIMENT_KEYS):
                opts.extend([name, _literal(value)])

    walk(config, "")
    return opts


def test_set_items(config: dict) -> list[str]:
    return list(config["DATASET"]["TEST_SETS"])


def with_pre_transform(items, name) -> list[str]:
    """Test set items with one more pre-transform applied to every image, after the others."""
    return [f"{item}+{name}" for item in items]


def with_forged_mark(items) -> list[str]:
    """Test set items with the owner's `watermark` replaced by `forged_watermark`."""
    out = []
    for item in items:
        name, _, rest = item.partition("=")
        parts = [FORGED_WATERMARK if p.strip() == WATERMARK else p for p in rest.split("+")]
        out.append(f"{name}={'+'.join(parts)}")
    return out


def cli_list(items) -> str:
    return "[" + ",".join(repr(i) for i in items) + "]"


class CommandBuilder:
    """train.py commands of the attacks on one run; `opts`: KEY VALUE pairs added to every one."""

    def __init__(self, target: ProtectedRun, python=sys.executable, opts=(), coop_config=None,
                 zero_shot_config=None):
        self.target = target
        self.python = python
        self.opts = list(opts)
        config_name = target.config.get("CONFIG_NAME") or ""
        self.coop_config = coop_config or f"configs/trainers/CoOp/{config_name}.yaml"
        self.zero_shot_config = zero_shot_config or f"configs/trainers/ZeroshotCLIP/{config_name}.yaml"

    def _base(self, out):
        return [self.python, "train.py", "--output-dir", str(out)]

    def attack_seed(self):
        return ["ATTACK.DATA_SEED", str(self.target.seed)]

    def ipclip(self, out, trainer=None, eval_only=False, opts=()):
        """An IP-CLIP attack: the run's recorded config (--run-config), and its final model when
        eval-only."""
        run = str(self.target.path)
        command = self._base(out) + ["--run-config", run]
        if trainer:
            command += ["--trainer", trainer]
        if eval_only:
            command += ["--eval-only", "--model-dir", run, "--load-epoch", str(self.target.epoch)]
        return command + self.attack_seed() + list(opts) + self.opts

    def baseline(self, out, trainer, config_file, eval_only=False):
        """A baseline: its trainer config, then the run's EXPERIMENT_KEYS and seed."""
        if not osp.isfile(osp.join(REPO, config_file)) and not osp.isfile(config_file):
            raise ResultsError(f"the {trainer} baseline of {self.target.path} needs the trainer config "
                               f"{config_file}, which does not exist; name one with --coop-config / "
                               "--zero-shot-config")
        command = self._base(out) + ["--trainer", trainer, "--config-file", config_file,
                                     "--seed", str(self.target.seed)]
        if eval_only:
            command.append("--eval-only")
        return command + experiment_opts(self.target.config) + self.attack_seed() + self.opts


def plan_attacks(target: ProtectedRun, budgets=DEFAULT_BUDGETS, families=FAMILIES, **builder_options
                 ) -> list[PlannedAttack]:
    """Every attack and baseline of `families` on one run, with its command."""
    build = CommandBuilder(target, **builder_options)
    items = test_set_items(target.config)
    planned = []

    out = target.attack_dir

    def add(attack, command, reference=None):
        spec = RunSpec(f"{attack.name} on {target.label}", str(out(attack.name)), tuple(command))
        planned.append(PlannedAttack(target, attack, spec, reference))

    add(Attack("baseline_zero_shot", ZERO_SHOT_FAMILY, baseline=True),
        build.baseline(out("baseline_zero_shot"), "ZeroshotCLIP", build.zero_shot_config, eval_only=True))
    if "finetune" in families:
        for k in budgets:
            shots = ["ATTACK.FINETUNE.SHOTS", str(k)]
            name = f"baseline_coop_k{k}"
            add(Attack(name, FROM_SCRATCH_FAMILY, k, baseline=True),
                build.baseline(out(name), "KShotCoOp", build.coop_config) + shots)
            name = f"finetune_k{k}"
            add(Attack(name, FINETUNE_FAMILY, k),
                build.ipclip(out(name), "IPCLIPFinetuneAttack",
                             opts=["ATTACK.FINETUNE.MODEL_DIR", str(target.path), *shots]))
    if "transplant" in families:
        for mode in TRANSPLANT_MODES:
            for k in budgets:
                name = f"transplant_{mode}_k{k}"
                add(Attack(name, f"style transplant ({mode})", k),
                    build.ipclip(out(name), "IPCLIPStyleTransplant", eval_only=True,
                                 opts=["ATTACK.TRANSPLANT.SHOTS", str(k), "ATTACK.TRANSPLANT.MODE", mode]))
    if "input" in families:
        for pre in INPUT_ATTACKS:
            short = pre[len(ATTACK_PREFIX):]
            sets = ["DATASET.TEST_SETS", cli_list(with_pre_transform(items, pre))]
            if pre not in MATCHING_ATTACKS:
                add(Attack(short, short.replace("_", " ")), build.ipclip(out(short), eval_only=True, opts=sets))
                continue
            for k in budgets:
                name = f"{short}_k{k}"
                reference = out(name) / REFERENCE_NAME
                add(Attack(name, short.replace("_", " "), k),
                    build.ipclip(out(name), eval_only=True,
                                 opts=sets + ["ATTACK.REFERENCE_FILE", str(reference)]),
                    reference=(reference, k))
    if "forgery" in families and uses_mark(target.scenario, items):
        planned += _forgeries(target, build, items)
    return planned


def uses_mark(scenario, items) -> bool:
    """Whether the owner's mark is the scenario's business (a training stream carries it) and a test
    set shows it: then forging it is an attack on the protection."""
    trained = any(WATERMARK in spec.pre_transforms for spec in get_scenario(scenario).streams)
    return trained and any(WATERMARK in item.split("=", 1)[-1].split("+") for item in items)


def _forgeries(target, build, items) -> list[PlannedAttack]:
    """One eval-only run per standard forgery of the owner's mark, the mark replaced in every set.
    Where the mark is the licence key (the authorized stream carries it: authorization), the forged
    images stand where the authorized ones stood, and a forgery that unlocks the model beats the
    protection; where it switches the model off (ownership), a high accuracy means the mark is specific:
    reported, not judged."""
    mark = target.config["INPUT"]["WATERMARK"]
    owner = WatermarkKey(mark["PATTERN"], mark["PERIOD"], tuple(mark["COLOR"]), mark["ALPHA"],
                         tuple(mark.get("OFFSET", NO_OFFSET)))
    key_unlocks = WATERMARK in get_scenario(target.scenario).streams[0].pre_transforms
    planned = []
    for what, settings in standard_forgeries(owner).items():
        name = f"forgery_{what}"
        opts = ["DATASET.TEST_SETS", cli_list(with_forged_mark(items))]
        for key, value in settings.items():
            opts += [f"ATTACK.FORGERY.{key}", _literal(value)]
        attack = Attack(name, f"forged {what}", measured="authorized" if key_unlocks else "unauthorized",
                        judged=key_unlocks)
        out = target.attack_dir(name)
        command = build.ipclip(out, eval_only=True, opts=opts)
        planned.append(PlannedAttack(target, attack, RunSpec(f"{name} on {target.label}", str(out), tuple(command))))
    return planned


def write_reference(planned: PlannedAttack, config_of) -> Path | None:
    """The matching attack's statistics of its k authorized donor images, written once (never
    rewritten) before the attack runs; `config_of(spec)` builds the attack's config."""
    if planned.reference is None:
        return None
    path, budget = planned.reference
    path = Path(path)
    if path.is_file():
        return path
    statistics = reference_statistics(donor_images(config_of(planned.spec), budget))
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(statistics, f)

    atomic_write(str(path), write)
    return path
