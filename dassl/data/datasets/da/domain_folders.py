"""`DomainFolders`: any `<dataset folder>/<domain>/<class>/<image>` tree as a domain dataset.

Each domain is split once into train/test by the split policy (`splits.py`); the dataset then exposes
train_x = train split of the source domains, train_u = train split of the target domains (labelled),
test = test split of the target domains, and test_domains = the test split of every domain.
"""
import os.path as osp
from collections import OrderedDict

from PIL import Image

from dassl.utils import listdir_nohidden

from ..base_dataset import DatasetBase, Datum
from ..build import DATASET_REGISTRY
from ..errors import README_HINT, DatasetError
from .splits import SplitItem, SplitPolicy, SplitStore, cap_per_class, stratified_split

__all__ = ["DomainFolders", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# Sub-folders of a dataset folder that are never domains (the default split folder lives there).
RESERVED_FOLDERS = ("splits",)
# An optional level between a domain folder and its class folders (Office-31 copies have it).
OPTIONAL_LEVEL = "images"


@DATASET_REGISTRY.register()
class DomainFolders(DatasetBase):
    """Domain dataset read from class folders; subclasses set `dataset_dir` and `domains`.

    `dataset_dir = ""` means DATASET.ROOT itself is the tree; `domains = None` discovers the domains
    from its sub-folders. `domain_dirs` maps a domain name to its folder when they differ.
    """

    dataset_dir = ""
    domains = None
    domain_dirs = {}

    def __init__(self, cfg):
        root = osp.abspath(osp.expanduser(cfg.DATASET.ROOT))
        self.dataset_root = osp.join(root, self.dataset_dir) if self.dataset_dir else root
        self.verbose = bool(cfg.VERBOSE)
        self.prepare_data(self.dataset_root)
        if not osp.isdir(self.dataset_root):
            raise DatasetError(
                f'{type(self).__name__}: dataset folder "{self.dataset_root}" does not exist. '
                f"Expected {self.layout_hint()} under DATASET.ROOT "
                f'("{cfg.DATASET.ROOT}"). {README_HINT}'
            )
        self.domains = list(self.domains) if self.domains else self.discover_domains(cfg)
        source_domains, target_domains = list(cfg.DATASET.SOURCE_DOMAINS), list(cfg.DATASET.TARGET_DOMAINS)
        self.check_input_domains(source_domains, target_domains)

        self.policy = SplitPolicy.from_cfg(cfg)
        split_dir = cfg.DATASET.SPLIT_DIR or osp.join(self.dataset_root, "splits", f"seed{self.policy.seed}")
        self.split_dir = osp.abspath(osp.expanduser(split_dir))
        self.store = SplitStore(self.split_dir, self.dataset_root)
        self.class_folders = self.resolve_class_folders()
        classnames = [self.folder_to_classname(name) for name in self.class_folders]

        splits = OrderedDict((domain, self.domain_split(domain)) for domain in self.domains)

        def data(domain_list, part):
            """Datums of one part (0 train, 1 test); domain = index within `domain_list`."""
            return [
                self.make_datum(item, index, classnames)
                for index, domain in enumerate(domain_list)
                for item in splits[domain][part]
            ]

        super().__init__(
            train_x=data(source_domains, 0),
            train_u=data(target_domains, 0),
            test=data(target_domains, 1),
            test_domains=OrderedDict(
                (domain, [self.make_datum(item, index, classnames) for item in splits[domain][1]])
                for index, domain in enumerate(self.domains)
            ),
        )
        # Every class of the dataset, even one a cap removed from train_x.
        self._num_classes = len(classnames)
        self._classnames = classnames
        self._lab2cname = dict(enumerate(classnames))

    # -- hooks for subclasses ---------------------------------------------------------------------
    def prepare_data(self, dataset_root):
        """Called before anything is read; a generated dataset creates its files here."""

    def layout_hint(self):
        hint = (
            f'"{self.dataset_dir or "<ROOT>"}/<domain>/<class>/<image>"'
            f" (optionally <domain>/{OPTIONAL_LEVEL}/<class>/<image>)"
        )
        if self.domains:
            folders = [self.domain_dirs.get(d, d) for d in self.domains]
            hint += f" with domain folders {', '.join(folders)}"
        return hint

    def class_folders_of_data(self):
        """Class folder names in label order as the data itself defines them (sorted folder names,
        identical in every domain)."""
        per_domain = OrderedDict((domain, self._scan_class_folders(domain)) for domain in self.domains)
        reference_domain, reference = next(iter(per_domain.items()))
        problems = []
        for domain, names in per_domain.items():
            lacking = sorted(set(reference) - set(names))
            extra = sorted(set(names) - set(reference))
            if lacking or extra:
                problems.append(
                    f'"{domain}" lacks {lacking} and has extra {extra} compared with "{reference_domain}"'
                )
        if problems:
            raise DatasetError(
                f"{type(self).__name__}: every domain must have the same class folders, but "
                + "; ".join(problems)
                + f". {README_HINT}"
            )
        return sorted(reference)

    def make_domain_split(self, domain, rng):
        """The (train, test) items of a domain before caps; called once, when its files are created."""
        return stratified_split(self.scan_domain_images(domain), self.policy.test_fraction, rng)

    def split_policy_record(self):
        return self.policy.record()

    # -- reading the tree -------------------------------------------------------------------------
    def discover_domains(self, cfg):
        split_dir = osp.realpath(osp.expanduser(cfg.DATASET.SPLIT_DIR)) if cfg.DATASET.SPLIT_DIR else ""
        found = [
            name
            for name in listdir_nohidden(self.dataset_root, sort=True)
            if osp.isdir(osp.join(self.dataset_root, name))
            and name not in RESERVED_FOLDERS
            and osp.realpath(osp.join(self.dataset_root, name)) != split_dir
        ]
        if not found:
            raise DatasetError(
                f'{type(self).__name__}: no domain folders in "{self.dataset_root}". Expected '
                f"{self.layout_hint()}. {README_HINT}"
            )
        return found

    def domain_folder(self, domain):
        """The folder holding the class folders of `domain` (an `images/` level is skipped)."""
        path = osp.join(self.dataset_root, self.domain_dirs.get(domain, domain))
        if not osp.isdir(path):
            raise DatasetError(
                f'{type(self).__name__}: domain folder "{path}" does not exist. Expected '
                f"{self.layout_hint()}. {README_HINT}"
            )
        subfolders = [n for n in listdir_nohidden(path) if osp.isdir(osp.join(path, n))]
        if subfolders == [OPTIONAL_LEVEL]:
            path = osp.join(path, OPTIONAL_LEVEL)
        return path

    def _scan_class_folders(self, domain):
        path = self.domain_folder(domain)
        names = [n for n in listdir_nohidden(path, sort=True) if osp.isdir(osp.join(path, n))]
        if not names:
            raise DatasetError(
                f'{type(self).__name__}: domain folder "{path}" has no class folders. Expected '
                f"{self.layout_hint()}. {README_HINT}"
            )
        return names

    def scan_domain_images(self, domain):
        """Every image of a domain as split items, each checked to be a readable image."""
        folder = self.domain_folder(domain)
        items = []
        for label, class_folder in enumerate(self.class_folders):
            class_path = osp.join(folder, class_folder)
            if not osp.isdir(class_path):
                raise DatasetError(
                    f'{type(self).__name__}: class folder "{class_path}" is missing (classnames.txt in '
                    f'"{self.split_dir}" lists "{class_folder}"). {README_HINT}'
                )
            names = [
                n
                for n in listdir_nohidden(class_path, sort=True)
                if n.lower().endswith(IMAGE_EXTENSIONS) and osp.isfile(osp.join(class_path, n))
            ]
            if not names:
                raise DatasetError(
                    f'{type(self).__name__}: class folder "{class_path}" holds no images '
                    f"(expected files ending in {', '.join(IMAGE_EXTENSIONS)}). Remove the folder from "
                    f"every domain or add its images. {README_HINT}"
                )
            for name in names:
                path = osp.join(class_path, name)
                check_readable_image(path)
                items.append(SplitItem(osp.relpath(path, self.dataset_root).replace(osp.sep, "/"), label))
        return items

    # -- splits -----------------------------------------------------------------------------------
    def resolve_class_folders(self):
        """classnames.txt of the split folder when present (it fixes the label order), else the data's."""
        from_data = self.class_folders_of_data()
        from_file = self.store.read_classnames()
        if from_file is None:
            return from_data
        if sorted(from_file) != sorted(from_data):
            raise DatasetError(
                f'classnames.txt in "{self.split_dir}" lists other classes than the data has: '
                f"missing from the data {sorted(set(from_file) - set(from_data))}, missing from the file "
                f"{sorted(set(from_data) - set(from_file))}. Point DATASET.SPLIT_DIR at the split made "
                f"for this data. {README_HINT}"
            )
        return from_file

    def domain_split(self, domain):
        """(train, test) items of a domain: read from its split files, created first if missing."""
        record = self.split_policy_record()
        if self.store.has_split(domain):
            self.store.check_policy(record)
            if self.verbose:
                print(f'Reading split of "{domain}" from {self.split_dir}')
            return self.store.read_split(domain, self.class_folders)
        self.store.check_policy(record)
        if self.verbose:
            print(f'Creating split of "{domain}" in {self.split_dir} ({_describe(record)})')
        rng = self.policy.rng(domain)
        train, test = self.make_domain_split(domain, rng)
        train = cap_per_class(train, self.policy.max_train_per_domain, rng)
        test = cap_per_class(test, self.policy.max_test_per_domain, rng)
        self.store.write_split(domain, train, test, self.class_folders, record)
        return self.store.read_split(domain, self.class_folders)

    def make_datum(self, item, domain_index, classnames):
        return Datum(
            impath=osp.join(self.dataset_root, *item.relpath.split("/")),
            label=item.label,
            domain=domain_index,
            classname=classnames[item.label],
        )

    @staticmethod
    def folder_to_classname(folder):
        return folder.replace("_", " ").lower()


def check_readable_image(path):
    """Cheap integrity check (header and structure, no full decode)."""
    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as err:  # PIL raises many types for broken files
        raise DatasetError(
            f'Cannot read image "{path}" ({type(err).__name__}: {err}). Replace or delete the file.'
        ) from err


def _describe(record):
    return ", ".join(f"{key}={value}" for key, value in record.items())
