"""Writing a result table: OUT.json (the numbers), OUT.md (the table) and its block in a RESULTS.md."""

import datetime
from pathlib import Path

from asr_kd.utils.io import write_json_atomic, write_text_atomic


def update_results_md(path, key: str, lines) -> None:
    """Put a table into a RESULTS.md, replacing the block of an earlier run with the same key."""
    p = Path(path)
    text = p.read_text() if p.is_file() else "# RESULTS\n\n"
    begin, end = f"<!-- begin: {key} -->", f"<!-- end: {key} -->"
    block = f"{begin}\n<!-- written {datetime.date.today()} -->\n" + "\n".join(lines) + f"\n{end}\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text + block + "\n"
    write_text_atomic(p, text)


def write_table(out_stem, res: dict, lines, results_md=None, title: str = "") -> None:
    """OUT.json (the numbers), OUT.md (the table) and the RESULTS.md block."""
    out_stem = Path(out_stem)
    write_json_atomic(out_stem.with_suffix(".json"), res)
    write_text_atomic(out_stem.with_suffix(".md"), "\n".join(lines))
    if results_md:
        update_results_md(results_md, title, lines)
