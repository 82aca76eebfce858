"""Where a rank's wall time goes, for `make bench` (benchmarks/bench_reproduce.py). A rank of a
run started with CODISTILL_TIME_SPLIT=<folder> writes <folder>/<run id>-rank<r>.json when it ends:
its wall and CPU seconds (this process, every thread) in each phase, charged lap by lap: set-up
(from entering the engine to its first update: data, model, state, log), training (the updates,
their exchanges and the waits in their collectives), evaluation (validation and the gather of the
statistics), logging (records and progress lines), checkpoints (state saved and committed) and
the end (final weights, last barrier). Unset, as in every sweep, a lap costs one dictionary read."""
import json
import os
import time
from pathlib import Path

VARIABLE = "CODISTILL_TIME_SPLIT"


class TimeSplit:
    def __init__(self, name):
        self.folder, self.name = os.environ.get(VARIABLE), name
        self.wall, self.cpu = {}, {}
        self.mark = (time.perf_counter(), time.process_time())

    def lap(self, phase):
        """Charges the time since the previous lap (or the start) to `phase`."""
        if not self.folder:
            return
        now = (time.perf_counter(), time.process_time())
        self.wall[phase] = self.wall.get(phase, 0.0) + now[0] - self.mark[0]
        self.cpu[phase] = self.cpu.get(phase, 0.0) + now[1] - self.mark[1]
        self.mark = now

    def write(self):
        if not self.folder:
            return
        path = Path(self.folder) / f"{self.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"wall": self.wall, "cpu": self.cpu}) + "\n")
