"""Utilities with upstream Dassl's public names (tools, logger, meters, registry, torchtools)."""
from .logger import *  # noqa: F401,F403
from .logger import __all__ as _logger_all
from .meters import *  # noqa: F401,F403
from .meters import __all__ as _meters_all
from .registry import *  # noqa: F401,F403
from .registry import __all__ as _registry_all
from .tools import *  # noqa: F401,F403
from .tools import __all__ as _tools_all
from .torchtools import *  # noqa: F401,F403
from .torchtools import __all__ as _torchtools_all
from .torchtools import get_rng_state, set_rng_state  # noqa: F401  (engine extension, not in __all__)

__all__ = _tools_all + _logger_all + _meters_all + _registry_all + _torchtools_all
