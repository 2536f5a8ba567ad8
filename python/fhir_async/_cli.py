"""The ``fhir-async`` console script: the command line of docs/cli.md.

``pip install fhir-async`` installs it; it runs the same Rust code as
``cargo install --path cli`` (one implementation, two ways in).
"""

import sys
from typing import List, Optional

from . import _native


def main(argv: Optional[List[str]] = None) -> None:
    """Runs ``fhir-async`` with ``argv`` (default: the process's) and exits with its code."""
    args = list(sys.argv if argv is None else argv)
    if not args:
        args = ["fhir-async"]
    args[0] = "fhir-async"
    sys.exit(_native.cli_main(args))


if __name__ == "__main__":
    main()
