"""Running the simulator as its own process: `pgy-pipeline simulator` and `python -m pgy_pipeline.simulator`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import date

from pgy_pipeline.simulator.app import DEFAULT_TOKEN, Simulator
from pgy_pipeline.simulator.faults import DEFAULT_RANDOM_FAULTS
from pgy_pipeline.simulator.limiter import LIMIT_REPLIES, HiddenLimit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8089, help="port (default 8089; 0 = any free port)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help=f"token the simulator accepts (default {DEFAULT_TOKEN})")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    parser.add_argument("--today", type=date.fromisoformat, default=None, help="China date to pretend it is")
    parser.add_argument("--publish-lag", type=int, default=0, help="days the latest dateKey lags yesterday")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="probability of a transient fault per call")
    parser.add_argument(
        "--faults",
        type=lambda text: tuple(name.strip() for name in text.split(",") if name.strip()),
        default=DEFAULT_RANDOM_FAULTS,
        help=f"comma-separated faults drawn by --fault-rate (default {','.join(DEFAULT_RANDOM_FAULTS)})",
    )
    parser.add_argument("--restate-rate", type=float, default=0.0, help="probability a call restates a past value")
    parser.add_argument("--seed", type=int, default=0, help="seed of the series and of the random faults")
    parser.add_argument("--limit-rps", type=float, default=None, help="hidden limit: requests per second")
    parser.add_argument("--limit-in-flight", type=int, default=None, help="hidden limit: requests in flight")
    parser.add_argument(
        "--limit-reply", choices=LIMIT_REPLIES, default="code_302", help="how the hidden limit refuses a request"
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted (Ctrl-C or SIGTERM), after printing how to point the pipeline here."""
    try:
        hidden = None
        if args.limit_rps is not None or args.limit_in_flight is not None:
            hidden = HiddenLimit(args.limit_rps, args.limit_in_flight, args.limit_reply)
        sim = Simulator(
            host=args.host,
            port=args.port,
            token=args.token,
            latency_s=args.latency_ms / 1000,
            today=args.today,
            publish_lag_days=args.publish_lag,
            fault_rate=args.fault_rate,
            random_faults=args.faults,
            restate_rate=args.restate_rate,
            seed=args.seed,
            hidden_limit=hidden,
        ).start()
    except (ValueError, OSError) as exc:  # an unknown fault name, a port in use
        print(f"pgy-pipeline simulator: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(f"Just One API simulator listening on {sim.base_url} (latest dateKey {sim.latest_date})", flush=True)
    print("Point the pipeline at it with:", flush=True)
    print(f"  export PGY_API_BASE_URL={sim.base_url}", flush=True)
    print(f"  export PGY_API_TOKEN={sim.token}", flush=True)
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgy_pipeline.simulator", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
