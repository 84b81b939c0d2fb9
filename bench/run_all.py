"""`make bench`: run every benchmark script (each writes bench/results/NAME.json), then render BENCHMARKS.md.

Long: the 20M-event generation and the 5M-event ingestion take minutes. Pass names to run only some:
    .venv/bin/python bench/run_all.py ingest accuracy
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = ["ingest", "generate", "load_movielens", "train_speed", "accuracy", "pipeline", "vectors", "serving"]


def main() -> None:
    chosen = sys.argv[1:] or SCRIPTS
    unknown = [name for name in chosen if name not in SCRIPTS]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; choose from {SCRIPTS}")
    failed = []
    for name in chosen:
        script = BENCH / f"{name}.py"
        if not script.exists():
            print(f"skip {name}: {script} does not exist")
            continue
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=BENCH.parent).returncode != 0:
            failed.append(name)
    subprocess.run([sys.executable, str(BENCH / "render.py")], check=True)
    if failed:
        sys.exit(f"failed: {failed}")


if __name__ == "__main__":
    main()
