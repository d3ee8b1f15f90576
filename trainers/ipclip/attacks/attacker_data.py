"""What an attacker holds: a few images of their own, drawn reproducibly from TRAIN splits only.

* Labelled shots (the fine-tuning attack and its from-scratch CoOp baseline): ATTACK.FINETUNE.SHOTS
  images per class of each domain the scenario's `attacker_data` names (trainers/ipclip/scenarios.py),
  from those domains' train splits, with the scenario's pre-transforms (ownership: the owner's mark).
* Unlabelled donors (the style transplant, the matching attacks' reference statistics): k images of the
  authorized stream's train split, with its pre-transforms (authorization: the licence key).

A draw depends on ATTACK.DATA_SEED and the image paths only, not on the order a dataset lists them nor
on the global RNG (which SEED drives), so the attack and its baseline see the same images and a rerun
sees them again. Each group is drawn as a prefix of one seeded permutation: the k = 1 draw is part of
the k = 4 draw, which is part of the k = 16 draw. Test splits are never read here.
"""
from collections import defaultdict

import numpy as np

from dassl.data.data_manager import build_data_loader, build_train_loader
from dassl.data.datasets import build_dataset
from dassl.data.transforms import build_pre_transform
from dassl.data.transforms.pre_transforms import training_transforms
from dassl.errors import ConfigError
from dassl.utils import read_image

from ..scenarios import ATTACKER_DOMAINS, get_scenario

__all__ = ["draw_per_class", "draw_images", "attacker_domains", "attacker_train_split", "shots_loader",
           "donor_data", "donor_loader", "donor_images"]


def _by_path(data):
    return sorted(data, key=lambda datum: datum.impath)


def draw_per_class(data, shots, seed):
    """`shots` items of every (domain, class) of `data` (all of a smaller group), reproducibly from
    `seed`; the result is sorted by path."""
    if shots < 1:
        raise ConfigError(f"ATTACK.FINETUNE.SHOTS must be >= 1 (labelled images per class), got {shots}")
    groups = defaultdict(list)
    for datum in _by_path(data):
        groups[(datum.domain, datum.label)].append(datum)
    rng = np.random.default_rng(seed)
    drawn = []
    for key in sorted(groups):
        items = groups[key]
        order = rng.permutation(len(items))  # drawn whatever `shots` is: budgets are nested
        drawn += [items[i] for i in order[:shots]]
    return _by_path(drawn)


def draw_images(data, count, seed, what="ATTACK.TRANSPLANT.SHOTS"):
    """`count` items of `data`, whatever their class, reproducibly from `seed`; sorted by path."""
    if count < 1:
        raise ConfigError(f"{what} must be >= 1 (unlabelled authorized images), got {count}")
    items = _by_path(data)
    if count > len(items):
        raise ConfigError(f"{what} is {count}, but the authorized train split has {len(items)} images")
    order = np.random.default_rng(seed).permutation(len(items))
    return _by_path([items[i] for i in order[:count]])


def attacker_domains(cfg, all_domains):
    """The domains of the scenario's attacker_data, resolved against the run's source and target."""
    kind = get_scenario(cfg.TRAINER.IPCLIP.SCENARIO).attacker_data.domains
    if kind not in ATTACKER_DOMAINS:
        raise ConfigError(f"attacker_data domains {kind!r} is not one of {ATTACKER_DOMAINS} "
                          "(trainers/ipclip/scenarios.py)")
    sources = list(cfg.DATASET.SOURCE_DOMAINS)
    chosen = {"target": list(cfg.DATASET.TARGET_DOMAINS), "source": sources,
              "others": [d for d in all_domains if d not in sources], "all": list(all_domains)}[kind]
    if not chosen:
        raise ConfigError(f"the {cfg.TRAINER.IPCLIP.SCENARIO} attacker labels images of the {kind} "
                          "domains, and there are none; check --source-domains / --target-domains")
    return chosen


def attacker_train_split(cfg, dataset):
    """The train split of the attacker's domains (`dataset`: the run's own, built from `cfg`)."""
    domains = attacker_domains(cfg, list(dataset.domains or []))
    if domains == list(cfg.DATASET.TARGET_DOMAINS):
        return dataset.train_u
    if domains == list(cfg.DATASET.SOURCE_DOMAINS):
        return dataset.train_x
    # Other domains: the same dataset with those as targets (its train_u is their train split).
    other = cfg.clone()
    other.defrost()
    other.DATASET.TARGET_DOMAINS = tuple(domains)
    other.VERBOSE = False
    return build_dataset(other).train_u


def shots_loader(cfg, dm, name="attacker_shots"):
    """The training loader of the attacker's labelled shots: ATTACK.FINETUNE.SHOTS per class and
    domain drawn with ATTACK.DATA_SEED, the scenario's pre-transforms, then the run's train
    augmentation, at the DATALOADER.TRAIN_X batch size."""
    data = draw_per_class(attacker_train_split(cfg, dm.dataset), cfg.ATTACK.FINETUNE.SHOTS,
                          cfg.ATTACK.DATA_SEED)
    names = get_scenario(cfg.TRAINER.IPCLIP.SCENARIO).attacker_data.pre_transforms
    pre, tfm = training_transforms(build_pre_transform(names, cfg), dm.tfm_train, dm.tfm_test)
    print(f"Attacker's data: {len(data)} labelled train images ({cfg.ATTACK.FINETUNE.SHOTS} per class and "
          f"domain, ATTACK.DATA_SEED {cfg.ATTACK.DATA_SEED}){' + ' + '+'.join(names) if names else ''}")
    return build_train_loader(cfg, data, cfg.DATALOADER.TRAIN_X, tfm, name, pre_transform=pre)


def _authorized_stream(cfg):
    return get_scenario(cfg.TRAINER.IPCLIP.SCENARIO).streams[0]


def donor_data(cfg, dataset, count):
    """`count` unlabelled images of the authorized stream's train split (ATTACK.DATA_SEED)."""
    spec = _authorized_stream(cfg)
    data = dataset.train_x if spec.split == "source" else dataset.train_u
    return draw_images(data, count, cfg.ATTACK.DATA_SEED)


def donor_loader(cfg, dm, count):
    """The donors, in order, with the authorized stream's pre-transforms and the test transform."""
    return build_data_loader(
        cfg, sampler_type="SequentialSampler", data_source=donor_data(cfg, dm.dataset, count),
        batch_size=cfg.DATALOADER.TEST.BATCH_SIZE, tfm=dm.tfm_test, is_train=False,
        pre_transform=build_pre_transform(_authorized_stream(cfg).pre_transforms, cfg), name="donors",
    )


def donor_images(cfg, count):
    """The donors as PIL images after the authorized stream's pre-transforms (for
    input_attacks.reference_statistics); builds the run's dataset from `cfg`."""
    pre = build_pre_transform(_authorized_stream(cfg).pre_transforms, cfg)
    images = [read_image(datum.impath) for datum in donor_data(cfg, build_dataset(cfg), count)]
    return [pre(img) for img in images] if pre is not None else images
