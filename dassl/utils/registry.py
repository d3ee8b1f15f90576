"""Name -> object registries (trainers, datasets, evaluators, ...)."""

from dassl.errors import UnknownNameError

__all__ = ["Registry"]


class Registry:
    """Maps a class's ``__name__`` to the class; usable as ``@REG.register()`` or ``REG.register(obj)``."""

    def __init__(self, name):
        self._name = name
        self._obj_map = {}

    def _do_register(self, name, obj, force=False):
        if name in self._obj_map and not force:
            raise KeyError(
                f'An object named "{name}" was already registered in "{self._name}" registry'
            )
        self._obj_map[name] = obj

    def register(self, obj=None, force=False):
        if obj is None:
            def wrapper(fn_or_class):
                self._do_register(fn_or_class.__name__, fn_or_class, force=force)
                return fn_or_class

            return wrapper
        self._do_register(obj.__name__, obj, force=force)
        return obj

    def get(self, name):
        if name not in self._obj_map:
            raise UnknownNameError(f'Object name "{name}" does not exist in "{self._name}" registry; '
                                   f"registered: {sorted(self._obj_map)}")
        return self._obj_map[name]

    def registered_names(self):
        return list(self._obj_map.keys())

    def __contains__(self, name):
        return name in self._obj_map
