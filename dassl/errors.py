"""Bad input, told apart from bugs: every error a user can cause (a config value, a file, a folder)
derives from UserError, and its message says what was expected, where, and how to fix it. train.py
prints these without a traceback; any other exception is a bug and keeps its traceback."""

__all__ = ["UserError", "ConfigError", "MissingFileError", "UnknownNameError", "CheckpointError",
           "UnreadableImageError", "user_message"]


class UserError(Exception):
    """Input the program cannot use; the message names it and the fix."""


class ConfigError(UserError, ValueError):
    """A config value (YAML file, command line) that cannot be used."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named (a checkpoint, a config file, an image) does not exist."""


class UnknownNameError(UserError, KeyError):
    """A name looked up in a registry (trainer, dataset, ...) that nothing registered."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file that cannot be used (unreadable, or missing what it must hold)."""


class UnreadableImageError(UserError, OSError):
    """An image file of the dataset that PIL cannot read (corrupt, truncated, not an image)."""


def user_message(err):
    """The message of a UserError for the console. One raised in a data-loader worker comes back
    wrapped with the worker's traceback; the user needs its last line, which is the message."""
    text = str(err)
    if "Original Traceback" in text:
        lines = [line for line in text.splitlines() if line.strip()]
        last = lines[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text
