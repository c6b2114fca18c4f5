"""A local Just One API (real HTTP on 127.0.0.1) for the demo, the tests and the benchmarks.

    with Simulator(today=date(2026, 3, 9), latency_s=0.1) as sim:
        client = TrendClient(sim.base_url, Secret(sim.token))
        sim.inject(kol_id, "code_303")   # see faults.FAULTS for every kind
        ...
        sim.billed_calls                 # what the platform would have charged

Standalone: `pgy-pipeline simulator --port 8089` (or `python -m pgy_pipeline.simulator`).
"""

from __future__ import annotations

from pgy_pipeline.simulator.app import DEFAULT_TOKEN, CallRecord, Simulator, SimulatorConfig
from pgy_pipeline.simulator.faults import FAULTS, VALID_VARIANTS

__all__ = ["DEFAULT_TOKEN", "FAULTS", "VALID_VARIANTS", "CallRecord", "Simulator", "SimulatorConfig"]
