"""A big map on Redis: ``*noop`` over 1,000 items and over 100,000, run by one
``littleflow engine`` and one ``littleflow worker`` process (concurrency 1) on a private Redis.

* tasks per second of the big map (submit to its last commit) against the small one's:
  target ≥ 80% (a map should not slow down as it grows);
* a two-task workflow ``noop → noop`` submitted while the big map runs (a quarter of a
  second after it): its time from submit to end, target < 0.5 s (a big workflow should not
  hold up the small ones).

Figures are printed, never checked. A map that takes longer than ``--timeout`` is
reported as such (its rate as an upper bound), and terminated.
``.venv/bin/python bench/bench_map.py [--items 100000] [--small 1000] [--timeout 600] [--quick]``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _system import System, finished, load, parser, table


def mapped(system: System, items: int, timeout: float, beside: float | None = None) -> dict:
    """``*noop`` over ``items`` items: seconds and tasks per second (None: not within ``timeout``);
    with ``beside``, a ``noop → noop`` submitted that many seconds after it, and its seconds."""
    client = system.client
    began = time.time()
    id = client.submit("*noop", list(range(items)))
    small = None
    if beside is not None:
        time.sleep(max(0.0, began + beside - time.time()))
        submitted = time.time()
        document = finished(client, client.submit("noop → noop"), timeout, poll=0.002)
        small = None if document is None else document["updated"] - submitted
    document = finished(client, id, max(1.0, began + timeout - time.time()), poll=0.05)
    if document is None:
        client.terminate(id)
        return {"seconds": None, "rate": items / timeout, "small": small}
    seconds = document["updated"] - began
    return {"seconds": seconds, "rate": items / seconds, "small": small}


def main() -> None:
    options = parser(__doc__.splitlines()[0])
    options.add_argument("--items", type=int, default=100_000, help="items of the big map (default 100,000)")
    options.add_argument("--small", type=int, default=1_000, help="items of the small map (default 1,000)")
    options.add_argument(
        "--timeout", type=float, default=600, help="seconds the big map may take (default 600)"
    )
    options.add_argument(
        "--beside",
        type=float,
        default=0.25,
        help="seconds after the big map's submit that the two-task workflow is submitted",
    )
    args = options.parse_args()
    if args.quick:
        args.items, args.small, args.timeout = 2_000, 200, 60
    with System(args.redis) as system:
        small = mapped(system, args.small, args.timeout)
        system.check()
        big = mapped(system, args.items, args.timeout, beside=args.beside)
        system.check()
    ratio = big["rate"] / small["rate"]
    big_time = (
        f"{big['seconds']:.3f} s" if big["seconds"] is not None else f"> {args.timeout:g} s (timed out)"
    )
    bound = "" if big["seconds"] is not None else "≤ "
    two = f"{big['small']:.3f} s" if big["small"] is not None else f"> {args.timeout:g} s"
    print(
        table(
            f"bench_map · 1 engine + 1 worker process (concurrency 1), private Redis · {load()}",
            [
                (f"*noop over {args.small:,}", f"{small['seconds']:.3f} s", "", None),
                ("  tasks/s", f"{small['rate']:,.0f}", "", None),
                (f"*noop over {args.items:,}", big_time, "", None),
                ("  tasks/s", f"{bound}{big['rate']:,.0f}", "", None),
                (f"  rate {args.items:,} / {args.small:,}", f"{bound}{ratio:.0%}", "≥ 80%", ratio >= 0.8),
                (
                    f"noop → noop beside the {args.items:,} map",
                    two,
                    "< 0.5 s",
                    big["small"] is not None and big["small"] < 0.5,
                ),
            ],
        )
    )


if __name__ == "__main__":
    main()
