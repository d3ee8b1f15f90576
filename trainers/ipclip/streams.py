"""The authorized and unauthorized training loaders of each IP-CLIP scenario.

Which split feeds each stream and which image-level pre-transforms turn authorized images into
unauthorized ones is the scenario's definition (scenarios.py, `Scenario.streams`); this module only
builds the loaders.
"""
from dassl.data.data_manager import build_data_loader, build_train_loader
from dassl.data.transforms import build_pre_transform
from dassl.data.transforms.pre_transforms import training_transforms
from dassl.errors import ConfigError

from . import transforms  # noqa: F401  (registers the scenario pre-transforms the streams name)
from .scenarios import get_scenario


class ScenarioStreams:
    """Builds the two training loaders and the bank-filling loaders of `cfg.TRAINER.IPCLIP.SCENARIO`."""

    def __init__(self, cfg, dm):
        self.cfg = cfg
        self.dm = dm
        self.specs = get_scenario(cfg.TRAINER.IPCLIP.SCENARIO).streams

    def _data(self, spec):
        data = self.dm.dataset.train_x if spec.split == "source" else self.dm.dataset.train_u
        if not data:
            raise ConfigError(
                f"the IP-CLIP scenario {self.cfg.TRAINER.IPCLIP.SCENARIO!r} needs the {spec.split} "
                "domains' train split, which is empty; check --source-domains / --target-domains "
                "(README, section Datasets)"
            )
        return data

    def train_loaders(self):
        """(authorized, unauthorized) loaders; the data manager's own loaders where they already fit."""
        loaders = []
        defaults = {"source": self.dm.train_loader_x, "target": self.dm.train_loader_u}
        batch_cfg = self.cfg.DATALOADER.TRAIN_X
        for name, spec in zip(("train_x", "train_u"), self.specs):
            if not spec.pre_transforms and defaults[spec.split] is not None:
                loaders.append(defaults[spec.split])
                continue
            pre, tfm = training_transforms(build_pre_transform(spec.pre_transforms, self.cfg),
                                           self.dm.tfm_train, self.dm.tfm_test)
            loaders.append(build_train_loader(self.cfg, self._data(spec), batch_cfg, tfm, name,
                                              pre_transform=pre))
        return tuple(loaders)

    def bank_loaders(self):
        """(authorized, unauthorized) loaders of the bank-filling pass: each stream's images in order,
        with its pre-transforms but without augmentation, at the test batch size."""
        return tuple(
            build_data_loader(
                self.cfg, sampler_type="SequentialSampler", data_source=self._data(spec),
                batch_size=self.cfg.DATALOADER.TEST.BATCH_SIZE, tfm=self.dm.tfm_test, is_train=False,
                pre_transform=build_pre_transform(spec.pre_transforms, self.cfg), name=name,
            )
            for name, spec in zip(("bank_x", "bank_u"), self.specs)
        )
