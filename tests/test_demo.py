"""`seqlab demo`, the main job until the applications exist, shows true facts."""

from __future__ import annotations

import io
import re

from rich.console import Console

from seqlab.cli import main
from seqlab.demo import main as demo


def test_demo_prints_the_tutorial_facts():
    buffer = io.StringIO()
    demo(Console(file=buffer, width=120))
    text = buffer.getvalue()
    assert "Total params: 36,193" in text and "Total params: 1,636,432" in text
    assert "equal: True" in text
    difference = re.search(r"max difference: (\S+) \(equal within float32 rounding: True\)", text)
    assert difference and float(difference.group(1)) < 1e-6


def test_cli_version_and_help(capsys):
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("seqlab 0.1.0 (torch ")
    assert main([]) == 2
