"""`make bench`: every figure of issue 7, one table, also written to bench/results.json.

    python -m bench [--quick] [--only webhook,slow_model,...] [--output PATH]

Everything runs on 127.0.0.1 and on this machine: the load generators, the fake model and the
fake Twilio share the CPU with the server under test, so read figures as ratios measured in
the same run, never as absolute capacity.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    concurrency,
    cpu_cost,
    first_message,
    micro_chunking,
    nudges,
    scale_out,
    slow_model,
    webhook,
)
from bench.common import Procs, Row, machine

Figure = Callable[[Procs, bool], list[Row]]
FIGURES: dict[str, Figure] = {
    "webhook": webhook.run,
    "slow_model": slow_model.run,
    "first_message": first_message.run,
    "concurrency": concurrency.run,
    "scale_out": scale_out.run,
    "micro_chunking": micro_chunking.run,
    "cpu_cost": cpu_cost.run,
    "nudges": nudges.run,
}
COLUMNS = ("figure", "sprout", "baseline", "ratio", "target", "met")


def table(rows: list[Row]) -> str:
    cells = [list(COLUMNS)] + [[str(getattr(r, c)) for c in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([f"| {lines[0]} |", rule, *(f"| {line} |" for line in lines[1:])])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller N, shorter runs (smoke)")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(FIGURES))
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name] or list(FIGURES)
    unknown = set(chosen) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(sorted(unknown))}")

    # SIGTERM (a CI timeout, kill PID) unwinds like Ctrl-C, so the children are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    rows: list[Row] = []
    errors: dict[str, str] = {}
    procs = Procs()
    try:
        for name in chosen:
            t0 = time.monotonic()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            try:
                rows += FIGURES[name](procs, args.quick)
            except Exception as error:  # one broken figure must not hide the others
                traceback.print_exc()
                errors[name] = f"{type(error).__name__}: {error}"[:500]
                rows.append(Row(name, f"ERROR: {type(error).__name__}", met="NO"))
            finally:
                procs.close()  # nothing a figure started outlives it
            print(f"[bench] {name} done in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    finally:
        procs.close()

    info = {
        **machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench", *sys.argv[1:]]),
        "quick": args.quick,
        "duration_s": round(time.monotonic() - started),
        "note": "load generator, fakes and server share this machine's CPU; loopback only",
    }
    text = table(rows)
    print(text)
    print(
        f"\n{info['nproc']} cores ({info['cpu']}), Python {info['python']}, {info['date']}; "
        "load generator and fakes on the same cores as the server."
    )
    args.output.write_text(
        json.dumps(
            {"machine": info, "rows": [asdict(r) for r in rows], "errors": errors, "table": text},
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
