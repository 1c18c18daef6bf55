"""docs/SECURITY.md maps every security requirement to a named test: each name it gives must exist, so a renamed or
deleted test cannot leave a requirement pointing at nothing."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REF = re.compile(r"`(tests/[\w/]+\.py)(?:::([\w\[\]\-\.]+))?`|`::([\w\[\]\-\.]+)`")


def test_every_test_named_in_security_md_exists():
    with open(os.path.join(ROOT, "docs", "SECURITY.md"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    checked, missing, sources = 0, [], {}
    for line in lines:
        current = None  # a `::name` continues the last file named on the same line
        for m in REF.finditer(line):
            if m.group(1):
                current, name = m.group(1), m.group(2)
            else:
                name = m.group(3)
            if current is None:
                continue
            path = os.path.join(ROOT, current)
            if not os.path.exists(path):
                missing.append(current)
                continue
            if name:
                text = sources.setdefault(path, open(path, encoding="utf-8").read())
                base = name.split("[")[0]
                if not re.search(rf"(def|class) {re.escape(base)}\b", text):
                    missing.append(f"{current}::{name}")
            checked += 1
    assert checked > 500
    assert missing == []
