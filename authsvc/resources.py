"""Where the folders that are not Python code live: ``migrations/`` (Alembic) and ``static/`` (CSS, JS, icons).

In the repository they are top-level folders. An installed wheel carries them inside the package
(``authsvc/migrations``, ``authsvc/static``; setup.py copies them there at build time), because nothing outside
the package is installed. A checkout — editable install, ``./run``, ``./test`` — always uses its own top-level
folders, so an edit there takes effect at once and a stray copy inside ``authsvc/`` can never shadow them.
"""

from __future__ import annotations

import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_CHECKOUT = os.path.dirname(PACKAGE_DIR)


def in_checkout() -> bool:
    """True when this package is imported from a source tree (editable install or checkout), not a wheel."""
    return os.path.isfile(os.path.join(_CHECKOUT, "pyproject.toml")) and \
        os.path.isdir(os.path.join(_CHECKOUT, "migrations"))


def resource_dir(name: str) -> str:
    """Absolute path of ``migrations`` or ``static``, from the checkout or from the installed package."""
    candidates = [os.path.join(_CHECKOUT, name), os.path.join(PACKAGE_DIR, name)] if in_checkout() else \
        [os.path.join(PACKAGE_DIR, name)]
    for path in candidates:
        if os.path.isdir(path):
            return path
    raise RuntimeError(f"authsvc is installed without its {name}/ folder (looked in {', '.join(candidates)}); "
                       "reinstall it from a wheel or sdist built with `python -m build`")
