"""Importing a file much larger than the memory it may use: peak RSS growth stays far below the file size.

The import runs in a child process so that its peak RSS (``ru_maxrss``) is its own. The child first imports
a small file to load every code path, then measures its RSS, imports the big file and reads its peak.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

BLOCK_ROWS = 10_000
BLOCKS = 90  # 900,000 rows, about 307 MB
CHUNK_ROWS = 10_000
#: the cap: peak RSS growth during the import must stay under this share of the file's size
MAX_SHARE_OF_FILE = 1 / 3
VOCABULARY = (
    "dress fabric fit love soft color size small large great nice return quality shirt pants wear "
    "comfortable cute beautiful disappointed perfect tight loose length waist material price"
)

CHILD = """
import json, sys
from pathlib import Path

import psutil

from loopwise.config import Settings
from loopwise.data import import_dataset
from loopwise.storage import Store

def _hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")

big, warm, home, chunk = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
store = Store.open(Settings(home=home))
columns = {"text_column": "review", "label_column": "sentiment", "chunk_size": chunk}
import_dataset(store, warm, name="warm-up", **columns)
# Reset this process's peak-RSS mark (VmHWM). ru_maxrss would not do: Linux carries it across exec, so it
# would include the forked copy of the (large) test process.
Path("/proc/self/clear_refs").write_text("5")
base = psutil.Process().memory_info().rss
version = import_dataset(store, big, name="big", **columns)
peak = _hwm()
rows = {name: split.rows for name, split in version.splits.items()}
print(json.dumps({"base": base, "peak": peak, "rows": rows, "read": version.source["rows_read"]}))
"""


def _write_big_csv(path: Path) -> int:
    """Review-like rows: a block of random sentences from a small vocabulary, written BLOCKS times."""
    rng = random.Random(0)
    words = VOCABULARY.split()
    lines = []
    for _ in range(BLOCK_ROWS):
        text = " ".join(rng.choices(words, k=rng.randint(30, 70)))
        lines.append(f'"{text}",{rng.choice(["-1", "0", "1", "1"])}\n')
    block = "".join(lines)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("review,sentiment\n")
        for _ in range(BLOCKS):
            handle.write(block)
    return path.stat().st_size


def test_import_memory_stays_far_below_the_file_size(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    size = _write_big_csv(big)
    warm = tmp_path / "warm.csv"
    with open(big, encoding="utf-8") as source:
        warm.write_text("".join(source.readline() for _ in range(2_001)), encoding="utf-8")
    try:
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(big), str(warm), str(tmp_path / "home"), str(CHUNK_ROWS)],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        big.unlink()
    assert result.returncode == 0, result.stderr[-3_000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    growth = report["peak"] - report["base"]
    print(f"file {size / 1e6:.0f} MB, peak RSS growth {growth / 1e6:.0f} MB ({growth / size:.0%})")
    assert report["read"] == BLOCK_ROWS * BLOCKS
    assert sum(report["rows"].values()) == BLOCK_ROWS * BLOCKS
    assert set(report["rows"]) == {"train", "validation", "test"}
    assert size > 280e6
    cap = size * MAX_SHARE_OF_FILE
    assert growth < cap, f"peak RSS grew {growth / 1e6:.0f} MB; cap {cap / 1e6:.0f} MB"
