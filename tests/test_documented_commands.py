"""Every command the README and docs/ show names flags that exist: each `multiview SUB`, `realdata SUB` and
`python scripts/NAME.py` command in them is read, and every --flag it uses is checked against that command's own
options (click's for the CLIs, argparse's for the scripts), so no page can name a flag that does not exist."""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

import click

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"(?:torchrun [^`\n]*?-m |\b)(multiview|realdata) ([a-z]+)((?:[^`\n|;&]|\\\n)*)")
SCRIPT = re.compile(r"python (scripts/[a-z_0-9]+\.py)((?:[^`\n|;&]|\\\n)*)")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def _click_options(cli: click.Group, sub: str) -> set[str] | None:
    command = cli.commands.get(sub)
    if command is None:
        return None
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}


def _script_options(path: str) -> set[str]:
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    if hasattr(module, "build_parser"):
        parser = module.build_parser()
    else:  # the parser its main() builds, caught where it would parse the command line
        class Caught(Exception):
            pass

        def catch(self, *args, **kwargs):
            raise Caught(self)

        original = argparse.ArgumentParser.parse_args
        argparse.ArgumentParser.parse_args = catch
        try:
            module.main()
        except Caught as e:
            parser = e.args[0]
        finally:
            argparse.ArgumentParser.parse_args = original
    return {o for a in parser._actions for o in a.option_strings}


def _uses() -> list[tuple[str, str, str, str]]:
    """(page, kind, command, flag) for every flag of every documented command."""
    out = []
    for page in PAGES:
        text = page.read_text()
        for m in COMMAND.finditer(text):
            for flag in FLAG.findall(m.group(3)):
                out.append((page.name, m.group(1), m.group(2), flag))
        for m in SCRIPT.finditer(text):
            for flag in FLAG.findall(m.group(2)):
                out.append((page.name, "script", m.group(1), flag))
    return out


def test_every_documented_flag_exists():
    from multiview.cli import main as multiview
    from realdata.cli import main as realdata

    clis = {"multiview": multiview, "realdata": realdata}
    scripts: dict[str, set[str]] = {}
    uses = _uses()
    assert len(uses) > 100  # the pages do show commands
    wrong = []
    for page, kind, command, flag in uses:
        if kind == "script":
            known = scripts.setdefault(command, _script_options(command))
        else:
            known = _click_options(clis[kind], command)
            if known is None:
                wrong.append(f"{page}: `{kind} {command}` is not a command")
                continue
        if flag not in known:
            wrong.append(f"{page}: `{command}` has no {flag}")
    assert not sorted(set(wrong)), "\n".join(sorted(set(wrong)))


def test_the_fast_help_lists_each_command_with_its_own_first_line():
    from multiview.cli import main as multiview
    from multiview.entry import main as multiview_entry
    from realdata.cli import main as realdata
    from realdata.entry import main as realdata_entry

    for real, lazy in ((multiview, multiview_entry), (realdata, realdata_entry)):
        assert list(lazy.summaries) == list(real.commands)
        for name, command in real.commands.items():
            assert lazy.summaries[name] == command.get_short_help_str(limit=300), name
        assert lazy.help.split()[:8] == real.help.split()[:8]


def test_help_does_not_import_torch():
    import subprocess

    for cli in ("multiview", "realdata"):
        probe = (f"import sys; from {cli}.entry import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
                 "print('torch' in sys.modules, file=sys.stderr)")
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True,
                             timeout=120)
        assert out.stderr.strip() == "False" and "Commands:" in out.stdout, out


def test_the_fast_group_still_suggests_and_runs_commands():
    from click.testing import CliRunner

    from multiview.entry import main as multiview_entry

    res = CliRunner().invoke(multiview_entry, ["sweeep"])
    assert res.exit_code != 0 and "Did you mean 'sweep'?" in res.output
    res = CliRunner().invoke(multiview_entry, ["report", "--help"])
    assert res.exit_code == 0 and "--judge-seeds" in res.output
