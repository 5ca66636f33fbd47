#!/usr/bin/python3 -IS
"""runc, with two limits of this machine applied to each container's config first.

containerd's runc runtime runs this instead of runc (`BinaryName` in the node's containerd
config). The VM the test ground runs on refuses two things Kubernetes asks for:

* a negative ``oom_score_adj`` (pod sandboxes ask for -998): runc then fails with
  "can't get final child's PID from pipe: EOF";
* raising ``RLIMIT_NOFILE`` above the machine's hard limit: "error setting rlimits".

So before `runc create`/`run` (the bundle's config.json) and `runc exec` (--process FILE), it
clamps ``oomScoreAdj`` to >= 0 and every rlimit to the hard limit this process has, then execs
the real runc with the same arguments. These are properties of this machine, not of
Kubernetes; on a normal host the wrapper changes nothing. Only Python's standard library (the
system interpreter, -I -S), since it runs for every runc call.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from typing import Any

RUNC = os.environ.get("VIVIFIED_RUNC", "/usr/bin/runc")
RLIMITS = {"RLIMIT_NOFILE": resource.RLIMIT_NOFILE, "RLIMIT_NPROC": resource.RLIMIT_NPROC}


def clamp_process(process: dict[str, Any]) -> bool:
    changed = False
    for rlimit in process.get("rlimits") or []:
        which = RLIMITS.get(rlimit.get("type", ""))
        if which is None:
            continue
        _, hard = resource.getrlimit(which)
        if hard == resource.RLIM_INFINITY:
            continue
        for key in ("hard", "soft"):
            if int(rlimit.get(key, 0)) > hard:
                rlimit[key] = hard
                changed = True
    if int(process.get("oomScoreAdj", 0)) < 0:
        process["oomScoreAdj"] = 0
        changed = True
    return changed


def clamp_file(path: str, bundle: bool) -> None:
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError):
        return  # runc reports it
    changed = clamp_process((spec.get("process") or {}) if bundle else spec)
    if bundle and int((spec.get("linux") or {}).get("oomScoreAdj", 0) or 0) < 0:
        spec["linux"]["oomScoreAdj"] = 0
        changed = True
    if changed:
        tmp = f"{path}.vivified"
        with open(tmp, "w") as f:
            json.dump(spec, f)
        os.replace(tmp, path)


def option(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def main() -> None:
    args = sys.argv[1:]
    commands = [a for a in args if a in ("create", "run", "exec")]
    if commands:
        if commands[0] in ("create", "run"):
            bundle = option(args, "--bundle", "-b") or os.getcwd()
            clamp_file(os.path.join(bundle, "config.json"), bundle=True)
        else:
            process = option(args, "--process", "-p")
            if process:
                clamp_file(process, bundle=False)
    os.execv(RUNC, [RUNC, *args])  # noqa: S606 (runc, the caller's arguments)


if __name__ == "__main__":
    main()
