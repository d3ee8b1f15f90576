"""`DataManager` (dataset + loaders), `DatasetWrapper` (Datum -> dict of tensors), `build_data_loader`.

Beyond upstream: `test_loaders`, one loader per named test set of DATASET.TEST_SETS (pre-transforms
applied by the wrapper), and RandomSampler loaders that own a generator seeded from torch's global
RNG when they are built, so the data order is fixed by `set_random_seed` no matter what else draws
from the global RNG later (model initialisation, dropout, ...).
"""
import inspect
from collections import OrderedDict

import torch
import torchvision.transforms as T
from tabulate import tabulate
from torch.utils.data import DataLoader, Dataset

from dassl.errors import ConfigError
from dassl.utils import read_image

from .datasets import build_dataset
from .datasets.errors import README_HINT, DatasetError
from .samplers import build_sampler
from .test_sets import parse_test_sets
from .transforms import PRE_TRANSFORM_REGISTRY, build_pre_transform, build_transform
from .transforms.transforms import interpolation_mode

__all__ = ["DataManager", "DatasetWrapper", "build_data_loader", "build_train_loader"]


def _seeded_generator():
    generator = torch.Generator()
    generator.manual_seed(int(torch.randint(2**62, ()).item()))
    return generator


def _accepts_keyword(cls, name):
    params = inspect.signature(cls).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def build_data_loader(
    cfg,
    sampler_type="SequentialSampler",
    data_source=None,
    batch_size=64,
    n_domain=0,
    n_ins=2,
    tfm=None,
    is_train=True,
    dataset_wrapper=None,
    pre_transform=None,
    name="",
):
    """A DataLoader over `data_source` (a list of Datum); `name` only labels error messages.

    Workers are started afresh every epoch and seeded from the loader's own generator (whose state
    the engine checkpoints), so a resumed run draws the same augmentations as an uninterrupted one.
    """
    label = f' "{name}"' if name else ""
    if not data_source:
        raise DatasetError(
            f"The{label} data loader has no data: the split it reads is empty. Check the dataset, "
            "its domains and the split files."
        )
    generator = _seeded_generator() if sampler_type == "RandomSampler" else None
    sampler = build_sampler(
        sampler_type,
        cfg=cfg,
        data_source=data_source,
        batch_size=batch_size,
        n_domain=n_domain,
        n_ins=n_ins,
        generator=generator,
    )
    wrapper_cls = dataset_wrapper or DatasetWrapper
    kwargs = {"transform": tfm, "is_train": is_train}
    if pre_transform is not None:
        if not _accepts_keyword(wrapper_cls, "pre_transform"):
            raise TypeError(
                f"{wrapper_cls.__name__} does not take pre_transform=, which the{label} test set needs; "
                "add that keyword to the custom dataset wrapper (see dassl.data.DatasetWrapper)."
            )
        kwargs["pre_transform"] = pre_transform
    num_workers = cfg.DATALOADER.NUM_WORKERS
    loader = DataLoader(
        wrapper_cls(cfg, data_source, **kwargs),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=is_train and len(data_source) >= batch_size,
        pin_memory=torch.cuda.is_available() and cfg.USE_CUDA,
        generator=generator,
    )
    if len(loader) == 0:
        raise ConfigError(
            f"The{label} data loader yields no batch ({len(data_source)} samples, batch size "
            f"{batch_size}, sampler {sampler_type}); lower the batch size or change the sampler."
        )
    return loader


def build_train_loader(cfg, data_source, batch_cfg, tfm, name, dataset_wrapper=None,
                       pre_transform=None):
    """A training loader whose sampler and batch come from a DATALOADER.TRAIN_X / TRAIN_U node."""
    return build_data_loader(
        cfg,
        sampler_type=batch_cfg.SAMPLER,
        data_source=data_source,
        batch_size=batch_cfg.BATCH_SIZE,
        n_domain=batch_cfg.N_DOMAIN,
        n_ins=batch_cfg.N_INS,
        tfm=tfm,
        is_train=True,
        dataset_wrapper=dataset_wrapper,
        pre_transform=pre_transform,
        name=name,
    )


class DataManager:
    """Builds the dataset, the transforms and every loader a trainer needs."""

    def __init__(self, cfg, custom_tfm_train=None, custom_tfm_test=None, dataset_wrapper=None):
        dataset = build_dataset(cfg)

        if custom_tfm_train is None:
            tfm_train = build_transform(cfg, is_train=True)
        else:
            print("* Using custom transform for training")
            tfm_train = custom_tfm_train
        if custom_tfm_test is None:
            tfm_test = build_transform(cfg, is_train=False)
        else:
            print("* Using custom transform for testing")
            tfm_test = custom_tfm_test

        loader_cfg = cfg.DATALOADER
        x_cfg = loader_cfg.TRAIN_X
        self.train_loader_x = build_train_loader(
            cfg, dataset.train_x, x_cfg, tfm_train, "train_x", dataset_wrapper=dataset_wrapper
        )
        self.train_loader_u = None
        if dataset.train_u:
            u_cfg = x_cfg if loader_cfg.TRAIN_U.SAME_AS_X else loader_cfg.TRAIN_U
            self.train_loader_u = build_train_loader(
                cfg, dataset.train_u, u_cfg, tfm_train, "train_u", dataset_wrapper=dataset_wrapper
            )

        def test_loader(data_source, name, pre_transform=None):
            return build_data_loader(
                cfg,
                sampler_type=loader_cfg.TEST.SAMPLER,
                data_source=data_source,
                batch_size=loader_cfg.TEST.BATCH_SIZE,
                tfm=tfm_test,
                is_train=False,
                dataset_wrapper=dataset_wrapper,
                pre_transform=pre_transform,
                name=name,
            )

        used = list(cfg.DATASET.SOURCE_DOMAINS) + list(cfg.DATASET.TARGET_DOMAINS)
        empty = [d for d in dict.fromkeys(used) if d in (dataset.test_domains or {}) and not dataset.test_domains[d]]
        if empty:
            raise DatasetError(
                f"the test split of domain(s) {empty} has no image: check that domain's folder and its "
                f"split files (DATASET.SPLIT_DIR), or choose other --source-domains / --target-domains. "
                f"{README_HINT}"
            )
        self.val_loader = test_loader(dataset.val, "val") if dataset.val else None
        self.test_loader = test_loader(dataset.test, "test")

        self.test_loaders = OrderedDict()
        if not cfg.DATASET.TEST_SETS:
            self.test_loaders["test"] = self.test_loader
        else:
            if not dataset.test_domains:
                raise ConfigError(
                    f"DATASET.TEST_SETS is set, but dataset {cfg.DATASET.NAME} has no per-domain test "
                    "splits (domain datasets such as DomainFolders provide them). Leave "
                    "DATASET.TEST_SETS empty to evaluate on its test split."
                )
            named_sets = parse_test_sets(
                cfg.DATASET.TEST_SETS,
                domains=list(dataset.test_domains),
                source_domains=cfg.DATASET.SOURCE_DOMAINS,
                target_domains=cfg.DATASET.TARGET_DOMAINS,
                pre_transform_names=PRE_TRANSFORM_REGISTRY.registered_names(),
            )
            for named in named_sets:
                empty = [domain for domain in named.domains if not dataset.test_domains[domain]]
                if empty:
                    raise DatasetError(
                        f'the test set "{named.name}" takes the test split of domain(s) {empty}, which '
                        f"has no image: check that domain's folder and its split files, or leave it out "
                        f"of DATASET.TEST_SETS. {README_HINT}"
                    )
                data = [datum for domain in named.domains for datum in dataset.test_domains[domain]]
                self.test_loaders[named.name] = test_loader(
                    data, named.name, build_pre_transform(named.pre_transforms, cfg)
                )

        self._num_classes = dataset.num_classes
        self._num_source_domains = len(cfg.DATASET.SOURCE_DOMAINS)
        self._lab2cname = dataset.lab2cname
        self.dataset = dataset
        self.tfm_train = tfm_train
        self.tfm_test = tfm_test

        if cfg.VERBOSE:
            self.show_dataset_summary(cfg)

    @property
    def num_classes(self):
        return self._num_classes

    @property
    def num_source_domains(self):
        return self._num_source_domains

    @property
    def lab2cname(self):
        return self._lab2cname

    def show_dataset_summary(self, cfg):
        dataset = self.dataset
        table = [["Dataset", cfg.DATASET.NAME]]
        if cfg.DATASET.SOURCE_DOMAINS:
            table.append(["Source", ", ".join(cfg.DATASET.SOURCE_DOMAINS)])
        if cfg.DATASET.TARGET_DOMAINS:
            table.append(["Target", ", ".join(cfg.DATASET.TARGET_DOMAINS)])
        table.append(["# classes", f"{self.num_classes:,}"])
        table.append(["# train_x", f"{len(dataset.train_x):,}"])
        if dataset.train_u:
            table.append(["# train_u", f"{len(dataset.train_u):,}"])
        if dataset.val:
            table.append(["# val", f"{len(dataset.val):,}"])
        table.append(["# test", f"{len(dataset.test):,}"])
        if cfg.DATASET.TEST_SETS:
            for name, loader in self.test_loaders.items():
                table.append([f"# test ({name})", f"{len(loader.dataset):,}"])
        print(tabulate(table))


class DatasetWrapper(Dataset):
    """Reads a Datum's image and returns a dict: img (or img, img2, ... for a list of transforms;
    a list of K tensors when DATALOADER.K_TRANSFORMS = K > 1 in training), label, domain, impath,
    index, and img0 (resized, unaugmented) when DATALOADER.RETURN_IMG0.

    `pre_transform` (PIL -> PIL) edits the image first, at its original resolution.
    """

    def __init__(self, cfg, data_source, transform=None, is_train=False, pre_transform=None):
        self.cfg = cfg
        self.data_source = data_source
        self.transform = transform
        self.is_train = is_train
        self.pre_transform = pre_transform
        self.k_tfm = cfg.DATALOADER.K_TRANSFORMS if is_train else 1
        self.return_img0 = cfg.DATALOADER.RETURN_IMG0
        if self.k_tfm > 1 and transform is None:
            raise ConfigError(
                f"DATALOADER.K_TRANSFORMS = {self.k_tfm} asks for several augmented views per image, "
                "but no transform is given (INPUT.NO_TRANSFORM is on?)."
            )
        ops = [T.Resize(tuple(cfg.INPUT.SIZE), interpolation=interpolation_mode(cfg)), T.ToTensor()]
        if "normalize" in cfg.INPUT.TRANSFORMS:
            ops.append(T.Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD))
        self.to_tensor = T.Compose(ops)

    def __len__(self):
        return len(self.data_source)

    def __getitem__(self, idx):
        item = self.data_source[idx]
        output = {"label": item.label, "domain": item.domain, "impath": item.impath, "index": idx}
        img0 = read_image(item.impath)
        if self.pre_transform is not None:
            img0 = self.pre_transform(img0)
        if self.transform is None:
            output["img"] = img0
        elif isinstance(self.transform, (list, tuple)):
            for i, tfm in enumerate(self.transform):
                output["img" if i == 0 else f"img{i + 1}"] = self._apply(tfm, img0)
        else:
            output["img"] = self._apply(self.transform, img0)
        if self.return_img0:
            output["img0"] = self.to_tensor(img0)
        return output

    def _apply(self, tfm, img):
        views = [tfm(img) for _ in range(self.k_tfm)]
        return views[0] if len(views) == 1 else views
