"""docs/sup-language.md and docs/sup-cli.md are copies of the specifications in ../shared/.

Each copy is one HTML comment line followed by the shared file, byte for byte. The check is
skipped where ../shared/ (beside the repository root) does not have the file.
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.mark.parametrize("name", ["sup-language.md", "sup-cli.md"])
def test_docs_copy_matches_shared(name):
    shared = SHARED / name
    if not shared.is_file():
        pytest.skip(f"{shared} not present")
    copy = (ROOT / "docs" / name).read_bytes()
    first, sep, rest = copy.partition(b"\n")
    assert sep and first.startswith(b"<!--") and first.rstrip().endswith(b"-->"), \
        f"docs/{name} must start with a one-line HTML comment"
    assert rest == shared.read_bytes(), f"docs/{name} is out of step with {shared}"
