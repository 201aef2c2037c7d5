"""Writing a result table: OUT.json (the numbers), OUT.md (the table) and its block in a RESULTS.md,
and the footer that says which command, commit and machine made the file."""

import datetime
import os
import platform
from pathlib import Path

from asr_kd.utils.io import write_json_atomic, write_text_atomic


def update_results_md(path, key: str, lines) -> None:
    """Put a table into a RESULTS.md, replacing the block of an earlier run with the same key."""
    text, begin, end = _results_text(path), *_markers(key)
    block = f"{begin}\n<!-- written {datetime.date.today()} -->\n" + "\n".join(lines) + f"\n{end}\n"
    parts = _split_block(text, key)
    text = parts[0] + block + parts[1].lstrip("\n") if parts else text + block + "\n"
    write_text_atomic(Path(path), text)


def _results_text(path) -> str:
    p = Path(path)
    return p.read_text() if p.is_file() else "# RESULTS\n\n"


def _markers(key: str):
    return f"<!-- begin: {key} -->", f"<!-- end: {key} -->"


def _split_block(text: str, key: str):
    """(text before, text after) the block of ``key``, or None when the text has none."""
    begin, end = _markers(key)
    if begin not in text or end not in text:
        return None
    head, rest = text.split(begin, 1)
    return head, rest.split(end, 1)[1]


def write_table(out_stem, res: dict, lines, *, results_md=None, title: str = "") -> None:
    """OUT.json (the numbers), OUT.md (the table) and the RESULTS.md block."""
    out_stem = Path(out_stem)
    write_json_atomic(out_stem.with_suffix(".json"), res)
    write_text_atomic(out_stem.with_suffix(".md"), "\n".join(lines))
    if results_md:
        update_results_md(results_md, title, lines)


FOOTER_KEY = "made by"


def set_results_footer(
    path, command: str, commit: str, *, uncommitted: bool = False, stage_times=None, example=None
) -> str:
    """End a RESULTS.md with one block naming the command, the commit and the machine that made it
    (an earlier footer is replaced and moved to the end), and, given the recipe's ``stage_times``
    file (utils/stages.sh), what each stage took; ``example``: a file (a transcription example)
    shown verbatim in its own block above the footer. Returns the footer's sentence."""
    if example and Path(example).is_file():
        title = "Transcribing a test file with the exported student"
        update_results_md(path, title, [f"### {title}", "", "```", Path(example).read_text().rstrip("\n"), "```", ""])
    text, (begin, end) = _results_text(path), _markers(FOOTER_KEY)
    parts = _split_block(text, FOOTER_KEY)
    if parts:
        text = parts[0].rstrip("\n") + "\n\n" + parts[1].lstrip("\n")
    changes = " with uncommitted changes" if uncommitted else ""
    sentence = f"Made by `{command}` at commit {commit}{changes} on {machine()}."
    times = stage_times_sentence(stage_times) if stage_times and Path(stage_times).is_file() else ""
    body = f"{sentence}\n\n{times}" if times else sentence
    write_text_atomic(Path(path), text.rstrip("\n") + f"\n\n{begin}\n---\n\n{body}\n{end}\n")
    return sentence


def stage_times_sentence(path) -> str:
    """One sentence from a recipe's stage-times file (lines ``N<TAB>NAME<TAB>SECONDS``, appended as
    stages finish): the latest time of each stage, in stage order, and their sum."""
    latest = {}
    for line in Path(path).read_text().splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[0].isdigit() and fields[2].isdigit():
            latest[int(fields[0])] = (fields[1], int(fields[2]))
    if not latest:
        return ""
    total = sum(secs for _, secs in latest.values())
    parts = ", ".join(f"{n} {name} {secs}" for n, (name, secs) in sorted(latest.items()))
    return f"Stage times in seconds (the latest run of each stage): {parts}; {total // 60} min {total % 60} s in all."


def machine() -> str:
    """A short description: CPU cores and model, memory, GPU when there is one."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (OSError, ValueError):
        mem_gb = float("nan")
    out = f"{os.cpu_count()} CPU cores ({model}), {mem_gb:.0f} GB memory"
    try:
        import torch

        if torch.cuda.is_available():
            out += f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return out
