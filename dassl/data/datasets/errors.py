"""The one exception type for bad dataset input, so callers can tell data problems from bugs."""

from dassl.errors import UserError

__all__ = ["DatasetError", "README_HINT"]

# Every data error points here: the README explains the expected folder layouts and split files.
README_HINT = 'See the README section "Datasets" for the expected layout.'


class DatasetError(UserError, ValueError):
    """A dataset folder, split file or domain name does not match what the dataset expects."""
