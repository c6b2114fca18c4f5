"""`python -m pgy_pipeline.simulator`: the standalone simulator (same options as `pgy-pipeline simulator`)."""

import sys

from pgy_pipeline.simulator.standalone import main

sys.exit(main())
