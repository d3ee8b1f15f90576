"""`Datum` (one labelled image) and `DatasetBase` (the four splits plus per-domain test splits).

The module path, class name and the four underscore attributes of `Datum` match upstream Dassl, so
pickled lists of `Datum` written by upstream code (CoOp's few-shot caches) load unchanged.
"""
import os
import os.path as osp
import random
import tarfile
import zipfile
from collections import OrderedDict, defaultdict

from .errors import DatasetError

__all__ = ["Datum", "DatasetBase"]


class Datum:
    """One image with its class label, domain index and class name."""

    def __init__(self, impath="", label=0, domain=0, classname=""):
        if not isinstance(impath, str):
            raise TypeError(f"Datum.impath must be a str path, got {type(impath).__name__}: {impath!r}")
        if not osp.isfile(impath):
            raise DatasetError(f'Datum: no image file at "{impath}".')
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = classname

    @property
    def impath(self):
        return self._impath

    @property
    def label(self):
        return self._label

    @property
    def domain(self):
        return self._domain

    @property
    def classname(self):
        return self._classname

    def __repr__(self):
        return (
            f"Datum(impath={self._impath!r}, label={self._label}, domain={self._domain}, "
            f"classname={self._classname!r})"
        )


class DatasetBase:
    """Holds train_x / train_u / val / test and, for domain datasets, the test split of every domain.

    Class count and names are derived from `train_x` (upstream behaviour); subclasses that know
    their full class list may overwrite `_num_classes`, `_lab2cname` and `_classnames`.
    """

    dataset_dir = ""  # the folder under DATASET.ROOT
    domains = []  # every domain of the dataset

    def __init__(self, train_x=None, train_u=None, val=None, test=None, test_domains=None):
        self._train_x = train_x
        self._train_u = train_u
        self._val = val
        self._test = test
        self._test_domains = OrderedDict(test_domains or {})
        data = train_x or []
        self._num_classes = self.get_num_classes(data) if data else 0
        self._lab2cname, self._classnames = self.get_lab2cname(data)

    @property
    def train_x(self):
        return self._train_x

    @property
    def train_u(self):
        return self._train_u

    @property
    def val(self):
        return self._val

    @property
    def test(self):
        return self._test

    @property
    def test_domains(self):
        """OrderedDict domain name -> test split of that domain (empty for non-domain datasets)."""
        return self._test_domains

    @property
    def lab2cname(self):
        return self._lab2cname

    @property
    def classnames(self):
        return self._classnames

    @property
    def num_classes(self):
        return self._num_classes

    @staticmethod
    def get_num_classes(data_source):
        """Largest label + 1 (labels are assumed to be 0..K-1)."""
        return max(item.label for item in data_source) + 1

    @staticmethod
    def get_lab2cname(data_source):
        """Return ({label: classname}, [classnames ordered by label])."""
        mapping = {item.label: item.classname for item in data_source}
        labels = sorted(mapping)
        return {label: mapping[label] for label in labels}, [mapping[label] for label in labels]

    def check_input_domains(self, source_domains, target_domains):
        """Raise a DatasetError unless both lists are non-empty and every name is a known domain."""
        if not source_domains:
            raise DatasetError(
                "DATASET.SOURCE_DOMAINS is empty; set it to one or more of "
                f"{list(self.domains)} (e.g. --source-domains {self.domains[0] if self.domains else 'NAME'})."
            )
        if not target_domains:
            raise DatasetError(
                "DATASET.TARGET_DOMAINS is empty; set it to one or more of "
                f"{list(self.domains)} (e.g. --target-domains {self.domains[-1] if self.domains else 'NAME'})."
            )
        self.is_input_domain_valid(source_domains)
        self.is_input_domain_valid(target_domains)

    def is_input_domain_valid(self, input_domains):
        for domain in input_domains:
            if domain not in self.domains:
                raise DatasetError(
                    f'Unknown domain "{domain}" for {type(self).__name__}; '
                    f"valid domains are {list(self.domains)}."
                )

    def download_data(self, url, dst, from_gdrive=True):
        """Fetch an archive with gdown and unpack it next to `dst` (upstream helper)."""
        if not from_gdrive:
            raise NotImplementedError("download_data only supports Google Drive links (from_gdrive=True).")
        try:
            import gdown
        except ImportError as err:
            raise RuntimeError(
                f'Downloading "{url}" needs the gdown package (pip install gdown), or download it by '
                f'hand to "{dst}".'
            ) from err
        os.makedirs(osp.dirname(dst) or ".", exist_ok=True)
        gdown.download(url, dst, quiet=False)
        target = osp.dirname(dst)
        if dst.endswith(".zip"):
            with zipfile.ZipFile(dst) as archive:
                archive.extractall(target)
        elif dst.endswith((".tar", ".tar.gz", ".tgz")):
            with tarfile.open(dst) as archive:
                archive.extractall(target, filter="data")
        else:
            raise NotImplementedError(f'Cannot unpack "{dst}": expected .zip, .tar or .tar.gz.')
        print(f"File extracted to {target}")

    def generate_fewshot_dataset(self, *data_sources, num_shots=-1, repeat=False):
        """Sample `num_shots` items per class from each source (Python's global RNG, as upstream)."""
        if num_shots < 1:
            return data_sources[0] if len(data_sources) == 1 else data_sources
        print(f"Creating a {num_shots}-shot dataset")
        outputs = []
        for data_source in data_sources:
            sampled = []
            for items in self.split_dataset_by_label(data_source).values():
                if len(items) >= num_shots:
                    sampled.extend(random.sample(items, num_shots))
                elif repeat:
                    sampled.extend(random.choices(items, k=num_shots))
                else:
                    sampled.extend(items)
            outputs.append(sampled)
        return outputs[0] if len(outputs) == 1 else outputs

    @staticmethod
    def split_dataset_by_label(data_source):
        groups = defaultdict(list)
        for item in data_source:
            groups[item.label].append(item)
        return groups

    @staticmethod
    def split_dataset_by_domain(data_source):
        groups = defaultdict(list)
        for item in data_source:
            groups[item.domain].append(item)
        return groups
