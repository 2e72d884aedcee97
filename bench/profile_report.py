"""Where each service's CPU goes, from the py-spy stacks `bench/pipeline.py --profile`
wrote (sampled only while a thread holds the GIL: Python's own CPU).

    python bench/profile_report.py bench/results/profile
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"(?P<func>.*) \((?P<path>[^:]*):\d+\)$")


def package(path: str) -> str:
    # py-spy shortens site-packages paths to "package/module.py".
    head = path.split("/")[0]
    return "stdlib" if head.endswith(".py") else head


def report(stacks: Path, top: int) -> None:
    by_package: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        frames = [m for m in (FRAME.match(f) for f in stack.split(";")) if m]
        if frames:
            by_package[package(frames[-1]["path"])] += samples
        seen: set[str] = set()
        for frame in frames:
            if frame["path"].startswith(("shared/", "services/")) or "/work/" in frame["path"]:
                key = f"{frame['func']} ({frame['path'].split('/work/main/')[-1]})"
                if key not in seen:
                    seen.add(key)
                    ours[key] += samples
    print(f"== {stacks.stem}: {total} samples")
    print("  leaf frames by package:")
    for name, samples in by_package.most_common(8):
        print(f"    {samples / total:6.1%}  {name}")
    print("  project functions, inclusive:")
    for name, samples in ours.most_common(top):
        print(f"    {samples / total:6.1%}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    for stacks in sorted(args.folder.glob("*.txt")):
        report(stacks, args.top)


if __name__ == "__main__":
    main()
