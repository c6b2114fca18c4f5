"""A local Just One API (real HTTP on 127.0.0.1) for the demo, the tests and the benchmarks.

`with Simulator(today=...) as sim:` gives a `sim.base_url` and `sim.token` for a TrendClient, `sim.inject(kol_id,
"code_303")` (see faults.FAULTS) and `sim.billed_calls`. Standalone: `pgy-pipeline simulator --port 8089` (or
`python -m pgy_pipeline.simulator`). See docs/api-client.md (the simulator).
"""

from __future__ import annotations

from pgy_pipeline.simulator.app import DEFAULT_TOKEN, CallRecord, Simulator, SimulatorConfig
from pgy_pipeline.simulator.faults import FAULTS, VALID_VARIANTS

__all__ = ["DEFAULT_TOKEN", "FAULTS", "VALID_VARIANTS", "CallRecord", "Simulator", "SimulatorConfig"]
