"""`defs`: what `dagster dev -w workspace.yaml`, `dg dev`, `dagster asset materialize -m pgy_pipeline.definitions`
and the webserver load.

Everything Dagster-shaped is loaded from the `pgy_pipeline/defs/` folder of the installed package, as a `dg`
project does, so a module added there is part of the code location without being listed anywhere. The resources
are bound here, configured from the environment. See docs/deployment.md (installing as a wheel / container).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from dagster import ComponentTree, Definitions, PreviewWarning, in_process_executor

import pgy_pipeline.defs
from pgy_pipeline.defs.resources import default_resources

_PACKAGE_ROOT = Path(pgy_pipeline.defs.__file__).resolve().parents[1]


def _folder_defs() -> Definitions:
    """Everything in pgy_pipeline/defs/. A function, not a module attribute: `-m pgy_pipeline.definitions`
    refuses a module holding more than one Definitions object at module scope."""
    with warnings.catch_warnings():
        # The folder loader marks its own internals as preview; `load_from_defs_folder` silences the same notices.
        warnings.simplefilter("ignore", PreviewWarning)
        tree = ComponentTree.from_module(defs_module=pgy_pipeline.defs, project_root=_PACKAGE_ROOT.parent)
        return tree.build_defs()


# Every run executes its steps one after another inside the run worker (the in-process executor). The steps of a
# run depend on each other (fetch and load, then its checks) and the expensive one waits on the API, so the
# default multiprocess executor would only add a Python process per step (each importing Dagster and this
# package: seconds of CPU and ~100 MB); pools are honoured the same way by both executors.
defs = Definitions.merge(_folder_defs(), Definitions(resources=default_resources(), executor=in_process_executor))
