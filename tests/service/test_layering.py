"""``service/`` never imports Ray Tune, torch or ``workers`` (DESIGN.md's layering): it runs the
study driver and the what-if replay as child processes, by module name."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import importlib, pkgutil, sys
import service
for module in pkgutil.walk_packages(service.__path__, "service."):
    importlib.import_module(module.name)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "workers") or
             m == "ray.tune" or m.startswith("ray.tune.")))
"""


def test_no_service_module_imports_ray_tune_torch_or_workers() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
