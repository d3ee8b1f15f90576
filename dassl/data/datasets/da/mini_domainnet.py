"""Mini-DomainNet: images under `domainnet/<domain>/<class>/`, with the official mini split lists
`domainnet/splits_mini/<domain>_{train,test}.txt` ("relative/path label" per line), 126 classes.

The official lists replace the stratified split; the per-domain caps still apply (a class-stratified
subset drawn from DATASET.SPLIT_SEED), and the result is stored in the split folder like any other.
"""
import os.path as osp

from ..build import DATASET_REGISTRY
from ..errors import README_HINT, DatasetError
from .domain_folders import DomainFolders
from .splits import SplitItem, read_path_label_lines

__all__ = ["miniDomainNet"]


@DATASET_REGISTRY.register()
class miniDomainNet(DomainFolders):
    dataset_dir = "domainnet"
    domains = ["clipart", "painting", "real", "sketch"]
    official_split_dir = "splits_mini"

    def layout_hint(self):
        return (
            f'"{self.dataset_dir}/<domain>/<class>/<image>" with the official lists '
            f'"{self.dataset_dir}/{self.official_split_dir}/<domain>_{{train,test}}.txt"'
        )

    def split_policy_record(self):
        record = self.policy.record()
        record.pop("test_fraction")  # the official lists decide train/test
        record["official_lists"] = self.official_split_dir
        return record

    def official_list(self, domain, part):
        path = osp.join(self.dataset_root, self.official_split_dir, f"{domain}_{part}.txt")
        if not osp.isfile(path):
            raise DatasetError(
                f'miniDomainNet: official split list "{path}" is missing. Expected '
                f"{self.layout_hint()}. {README_HINT}"
            )
        return path

    def read_official(self, domain, part, check_files=False):
        """Parse one official list into (items, {label: class folder})."""
        path = self.official_list(domain, part)
        items, folders = [], {}
        expected = '"<domain>/<class>/<image> <label>"'
        for where, relpath, label in read_path_label_lines(path, expected):
            if label < 0:
                raise DatasetError(f'{where} has the negative label {label}; expected {expected}. '
                                   f"{README_HINT}")
            components = relpath.split("/")
            if len(components) < 3:
                raise DatasetError(
                    f'{where}: "{relpath}" is not of the form <domain>/<class>/<image>. {README_HINT}'
                )
            folder = components[-2]
            if folders.setdefault(label, folder) != folder:
                raise DatasetError(
                    f'{where}: label {label} is used for class folders "{folders[label]}" and "{folder}".'
                )
            if check_files and not osp.isfile(osp.join(self.dataset_root, relpath)):
                raise DatasetError(
                    f'{where} names "{relpath}", but there is no such file under '
                    f'"{self.dataset_root}". {README_HINT}'
                )
            items.append(SplitItem(relpath, label))
        return items, folders

    def class_folders_of_data(self):
        """Class folders in label order, from the labels of every official list."""
        folders = {}
        for domain in self.domains:
            for part in ("train", "test"):
                for label, folder in self.read_official(domain, part)[1].items():
                    if folders.setdefault(label, folder) != folder:
                        raise DatasetError(
                            f"miniDomainNet: label {label} means \"{folders[label]}\" in one official list "
                            f'and "{folder}" in "{self.official_list(domain, part)}". {README_HINT}'
                        )
        if not folders:
            raise DatasetError(f"miniDomainNet: the official split lists are empty. {README_HINT}")
        missing = sorted(set(range(max(folders) + 1)) - set(folders))
        if missing:
            raise DatasetError(
                f"miniDomainNet: the official lists never use label(s) {missing[:10]}; labels must be "
                f"0..K-1. {README_HINT}"
            )
        return [folders[label] for label in range(len(folders))]

    def make_domain_split(self, domain, rng):
        train, _ = self.read_official(domain, "train", check_files=True)
        test, _ = self.read_official(domain, "test", check_files=True)
        return train, test
