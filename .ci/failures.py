"""After `make test`: the failed and erroring tests of every tox env, read from their junit files,
printed last so that the tail of a CI log names them (tox -p interleaves the envs' output)."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(toxdir: Path) -> int:
    bad = 0
    for path in sorted(toxdir.glob("junit-*.xml")):
        env = path.stem.removeprefix("junit-")
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            print(f"{env}: no readable junit file ({exc})")
            continue
        for case in root.iter("testcase"):
            for kind in ("failure", "error"):
                found = case.find(kind)
                if found is not None:
                    bad += 1
                    message = (found.get("message") or "").splitlines()[0:1]
                    print(f"{env}: {kind.upper()} {case.get('classname')}::{case.get('name')}"
                          f"{' - ' + message[0][:200] if message else ''}")
    print(f"make test: {bad} failed or erroring tests in the junit files of {toxdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".tox")))
