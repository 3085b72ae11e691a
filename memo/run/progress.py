"""Progress of a run: a tqdm bar on a terminal, a plain log line now and then otherwise."""

import sys
import time

from tqdm import tqdm


class Progress:
    """Counts finished points by status and shows done/total, failures and the ETA."""

    def __init__(self, total: int, stream=None, every_s: float = 30.0):
        self.total = total
        self.counts = {"ok": 0, "error": 0, "timeout": 0, "skipped": 0}
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.start = self.last_line = time.monotonic()
        self.bar = (
            tqdm(total=total, unit="pt", file=self.stream, dynamic_ncols=True)
            if self.stream.isatty()
            else None
        )

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def update(self, outcome) -> None:
        self.counts[outcome.status] += 1
        failed = self.counts["error"] + self.counts["timeout"]
        if outcome.status == "skipped":  # another process runs or ran it
            self.write(f"skipped: point {outcome.id}: {outcome.message}")
        elif outcome.status != "ok":
            self.write(f"{outcome.status}: point {outcome.id}: {outcome.message}")
        if self.bar is not None:
            self.bar.set_postfix(failed=failed, refresh=False)
            self.bar.update(1)
        elif time.monotonic() - self.last_line >= self.every_s or self.done == self.total:
            self.last_line = time.monotonic()
            elapsed = self.last_line - self.start
            eta = elapsed / self.done * (self.total - self.done)
            self.write(
                f"{self.done}/{self.total} points, {failed} failed, {elapsed:.0f} s elapsed, ETA {eta:.0f} s"
            )

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
