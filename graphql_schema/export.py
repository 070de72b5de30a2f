"""Write the SDL to ``schema.graphql`` (``make schema``); reviewers read API diffs there."""

from __future__ import annotations

import sys
from pathlib import Path

from graphql_schema.schema import schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def main() -> int:
    SCHEMA_FILE.write_text(schema.as_str() + "\n")
    print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
