"""Build hook only; every piece of metadata lives in pyproject.toml.

The repository keeps ``migrations/`` and ``static/`` at the top level (the layout the design asks for). A wheel must
carry them, so ``build_py`` copies them in as package data: ``authsvc/migrations/`` and ``authsvc/static/`` in the
wheel. The same list feeds the sdist, which therefore carries the top-level folders and builds the same wheel.
At run time ``authsvc.resources.resource_dir`` finds the installed copy, or the checkout's folder in an editable
install or a plain checkout (where nothing is copied).
"""

from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py

# top-level folder in the checkout → folder inside the installed ``authsvc`` package
SHIPPED_FOLDERS = ("migrations", "static")


def _files_under(folder: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")) or name.startswith("."):
                continue
            found.append(os.path.relpath(os.path.join(dirpath, name), folder))
    return found


class BuildPyWithSharedFolders(build_py):
    def _shared_folders(self) -> list[tuple[str, str, str, list[str]]]:
        entries = []
        for name in SHIPPED_FOLDERS:
            if not os.path.isdir(name):
                raise SystemExit(f"setup.py: the {name}/ folder is missing; the wheel would not work without it")
            entries.append(("authsvc", name, os.path.join(self.build_lib, "authsvc", name), _files_under(name)))
        return entries

    def _get_data_files(self):
        return super()._get_data_files() + self._shared_folders()

    def get_data_files_without_manifest(self):
        return super().get_data_files_without_manifest() + self._shared_folders()


setup(cmdclass={"build_py": BuildPyWithSharedFolders})
