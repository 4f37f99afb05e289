"""Step schedules follow --max-num-iterations through nerfstudio's own CLI parsing (subprocess: one tyro parse)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PARSE = r"""
import json, sys, yaml
import tyro
from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion
config = tyro.cli(AnnotatedBaseConfigUnion, args=sys.argv[1:])
loaded = yaml.load(yaml.dump(config), Loader=yaml.Loader)  # what ns-eval / ns-render read back from config.yml
def summary(c):
    return {"sched": {k: g["scheduler"].max_steps for k, g in c.optimizers.items() if g.get("scheduler")},
            "stop_split_at": c.pipeline.model.stop_split_at,
            "warmup": c.pipeline.model.motion.static_warmup_steps}
print(json.dumps({"parsed": summary(config), "loaded": summary(loaded)}))
"""


def _parse(*args: str) -> dict:
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", PARSE, "dynsplat-4dgs", *args, "dynsplat-dnerf", "--data", "x"],
        capture_output=True, text=True, check=True, env=env, timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_schedules_fit_max_iterations_and_explicit_values_are_kept():
    default = _parse()["parsed"]
    assert set(default["sched"].values()) == {20000} and default["stop_split_at"] == 15000
    assert default["warmup"] == 3000

    short = _parse("--max-num-iterations", "3000", "--optimizers.hexplane-mlp.scheduler.max-steps", "1234")
    for which in ("parsed", "loaded"):
        sched = short[which]["sched"]
        assert sched["hexplane_mlp"] == 1234, "an explicit value is kept"
        assert sched["means"] == sched["hexplane_grid"] == sched["camera_opt"] == 3000
        assert short[which]["stop_split_at"] == 2250  # 75 % of the run, as 15000 of 20000
        assert short[which]["warmup"] == 450  # 15 %, as 3000 of 20000

    warm = _parse("--max-num-iterations", "3000", "--pipeline.model.motion.static-warmup-steps", "300")["parsed"]
    assert warm["warmup"] == 300

    off = _parse("--max-num-iterations", "3000", "--fit-schedules", "False")["parsed"]
    assert set(off["sched"].values()) == {20000} and off["stop_split_at"] == 15000 and off["warmup"] == 3000
