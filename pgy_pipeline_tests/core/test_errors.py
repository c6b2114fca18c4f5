"""One exception root: every exception class the project defines derives from PgyError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pgy_pipeline
from pgy_pipeline.errors import InternalSignal, PgyError


def _project_exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(pgy_pipeline.__path__, "pgy_pipeline."):
        if info.name.endswith(".__main__"):  # a command's entry point: importing it runs the command
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name:
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_project_exception_derives_from_pgy_error() -> None:
    classes = _project_exception_classes()
    assert len(classes) >= 10, sorted(classes)  # the walk found the project's errors, not an empty package
    strays = sorted(name for name, cls in classes.items() if not issubclass(cls, PgyError))
    assert strays == []


def test_internal_signals_are_named_as_such() -> None:
    signals = {name.rsplit(".", 1)[1] for name, cls in _project_exception_classes().items()
               if issubclass(cls, InternalSignal) and cls is not InternalSignal}  # fmt: skip
    assert signals == {"StopRun", "Malformed", "MergeConflict", "BadParams"}
