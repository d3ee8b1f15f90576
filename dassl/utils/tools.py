"""Small file-system, JSON, seeding and lookup helpers shared across the engine."""
import difflib
import errno
import json
import os
import os.path as osp
import random
import sys
import tempfile
import time
import urllib.request
import warnings

import numpy as np
import PIL
import torch
from PIL import Image

from dassl.errors import ConfigError, MissingFileError, UnreadableImageError

__all__ = [
    "mkdir_if_missing",
    "check_isfile",
    "read_json",
    "write_json",
    "set_random_seed",
    "download_url",
    "read_image",
    "collect_env_info",
    "listdir_nohidden",
    "get_most_similar_str_to_a_from_b",
    "check_availability",
    "tolist_if_not",
]


def mkdir_if_missing(dirname):
    """Create a directory tree, tolerating a concurrent creator."""
    if not dirname or osp.isdir(dirname):
        return
    try:
        os.makedirs(dirname)
    except OSError as err:
        if err.errno != errno.EEXIST:
            raise


def check_isfile(fpath):
    """Return whether `fpath` is a file, warning (not raising) when it is not."""
    isfile = osp.isfile(fpath)
    if not isfile:
        warnings.warn(f'No file found at "{fpath}"')
    return isfile


def read_json(fpath):
    with open(fpath, "r") as f:
        return json.load(f)


def write_json(obj, fpath):
    """Dump JSON in upstream's layout (indent 4), creating the parent folder."""
    mkdir_if_missing(osp.dirname(fpath))
    with open(fpath, "w") as f:
        json.dump(obj, f, indent=4, separators=(",", ": "))


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
#: Suffix of atomic_write's temporary files; a killed writer leaves one (see run_folder).
TMP_SUFFIX = ".tmp"


def atomic_write(fpath, write_fn):
    """Run ``write_fn(tmp_path)`` then rename onto `fpath`, so a crash never leaves a torn file.

    The temporary name is unique (mkstemp in the same folder): two writers of one file each write
    their own and the last rename wins whole, never a mix of both.
    """
    dirname = osp.dirname(osp.abspath(fpath))
    fd, tmp = tempfile.mkstemp(prefix="." + osp.basename(fpath) + ".", suffix=TMP_SUFFIX, dir=dirname)
    os.close(fd)
    try:
        write_fn(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, fpath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def set_random_seed(seed):
    """Seed every generator a run draws from (python, numpy, torch CPU and all CUDA devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def download_url(url, dst):
    """Download `url` to `dst`, showing progress on stderr; the file appears only once complete."""
    mkdir_if_missing(osp.dirname(dst))
    print(f'* url="{url}"')
    print(f'* destination="{dst}"')
    start = time.time()

    def report(count, block_size, total_size):
        done = count * block_size
        elapsed = max(time.time() - start, 1e-6)
        speed_kb = done / 1024 / elapsed
        if total_size > 0:
            pct = min(100.0, 100.0 * done / total_size)
            msg = f"\r...{pct:.0f}%, {done / 2**20:.1f} MB, {speed_kb:.0f} KB/s"
        else:
            msg = f"\r...{done / 2**20:.1f} MB, {speed_kb:.0f} KB/s"
        sys.stderr.write(msg)
        sys.stderr.flush()

    tmp = dst + ".part"
    try:
        urllib.request.urlretrieve(url, tmp, report)
    except Exception as err:
        if osp.exists(tmp):
            os.remove(tmp)
        raise RuntimeError(
            f'Could not download "{url}" to "{dst}": {err}. '
            "Check the network, or download the file by hand and place it at that path."
        ) from err
    os.replace(tmp, dst)
    sys.stderr.write("\n")


def read_image(path):
    """Open an image as RGB; fails with the path in the message if it cannot be read."""
    if not osp.isfile(path):
        raise MissingFileError(f'Image not found: "{path}"')
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, PIL.UnidentifiedImageError) as err:
        raise UnreadableImageError(
            f'Cannot read image "{path}" ({err}); is it a valid image file? Replace or remove it (and its '
            "line in the split files, if the dataset has them)."
        ) from err


def collect_env_info():
    """Describe torch/CUDA/OS for the log; never fails the run if probing the system breaks."""
    try:
        from torch.utils.collect_env import get_pretty_env_info

        info = get_pretty_env_info()
    except Exception as err:  # probing shells out (nvidia-smi, pip, ...) and may fail anywhere
        info = (
            f"PyTorch version: {torch.__version__}\n"
            f"CUDA available: {torch.cuda.is_available()}\n"
            f"(full environment report unavailable: {type(err).__name__}: {err})"
        )
    info += f"\n        Pillow ({PIL.__version__})"
    return info


def listdir_nohidden(path, sort=False):
    """List a directory without dot-files; `sort=True` for a platform-independent order."""
    items = [f for f in os.listdir(path) if not f.startswith(".")]
    if sort:
        items.sort()
    return items


def get_most_similar_str_to_a_from_b(a, b):
    """Return the string in `b` closest to `a` (difflib ratio), for "did you mean" messages."""
    best, best_score = None, -1.0
    for candidate in b:
        score = difflib.SequenceMatcher(None, a, candidate).ratio()
        if score > best_score:
            best, best_score = candidate, score
    return best


def check_availability(requested, available):
    """Raise a ValueError suggesting the closest valid name when `requested` is not available."""
    if requested not in available:
        suggestion = get_most_similar_str_to_a_from_b(requested, available)
        raise ConfigError(
            f'The requested one is expected to belong to {list(available)}, '
            f'but got [{requested}] (do you mean [{suggestion}]?)'
        )


def tolist_if_not(x):
    if not isinstance(x, list):
        x = [x]
    return x
