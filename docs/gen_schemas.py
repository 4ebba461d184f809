"""Regenerate the JSON Schemas at the end of docs/internals.md from physical/records.py:
    python docs/gen_schemas.py
(tests/test_records.py checks the file is current)."""
from pathlib import Path

from physical.records import schema_markdown

HEADING = "## Schemas of the run files (generated)\n\n"
path = Path(__file__).with_name("internals.md")
text = path.read_text(encoding="utf-8")
text = text.split(HEADING)[0].rstrip() + "\n\n"
path.write_text(text + HEADING + schema_markdown(), encoding="utf-8")
print(f"wrote {path}")
