"""What a call without the server imports: each command loads its own module only.

A cold ``imgconv apply`` on a PPM pays for every module it imports, so the
ones it never uses (the server, the Dask cluster, the other commands, rich's
progress bar, scipy) must stay out.  These run the real console entry point
in a fresh interpreter and look at ``sys.modules`` afterwards; they time nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest

from imgconv.cli import COMMANDS, cli

#: Module prefixes that a cold apply on a small PPM has no use for.
NOT_FOR_APPLY = (
    "imgconv.server",
    "imgconv.batch.cluster",
    "imgconv.batch.workers",
    "imgconv.cli.features",
    "imgconv.cli.info",
    "imgconv.cli.pool",
    "imgconv.features",
    "imgconv.pooling",
    "rich",
    "scipy",
    "distributed",
    "dask",
)

SCRIPT = """
import gc, json, sys
from imgconv.launcher import main
prefixes = tuple(json.loads(sys.argv[2]))
sys.argv = ["imgconv", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    code = exc.code
loaded = sorted(m for m in sys.modules if m.startswith(prefixes))
print(json.dumps({"code": code, "loaded": loaded, "collecting": gc.isenabled()}), file=sys.stderr)
"""


def imports_of(args: list[str], prefixes: tuple[str, ...], cwd, env=None) -> dict:
    """Run ``imgconv ARGS`` through the console entry point: its exit code, the listed
    modules it loaded, and whether the garbage collector runs at its end."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(args), json.dumps(prefixes)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stderr.splitlines()[-1])


@pytest.fixture
def small_ppm(tmp_path):
    path = tmp_path / "small.ppm"
    path.write_bytes(b"P6 4 3 255\n" + bytes(range(36)))
    return path


def test_apply_on_a_ppm_imports_only_what_apply_needs(small_ppm, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCONV_")}
    args = ["apply", "-k", "sharpen", small_ppm.name, "out.ppm"]
    outcome = imports_of(args, NOT_FOR_APPLY, tmp_path, env)
    # The collector, paused while the program started, runs again for the work.
    assert outcome == {"code": 0, "loaded": [], "collecting": True}
    assert (tmp_path / "out.ppm").read_bytes().startswith(b"P6")


def test_help_loads_every_command_but_no_image_library(tmp_path):
    outcome = imports_of(["--help"], ("imgconv.cli.", "imgconv.server.", "numpy", "PIL", "rich", "scipy"), tmp_path)
    assert outcome["code"] == 0
    modules = {spec.split(":")[0] for spec in COMMANDS.values()}
    # The server's commands import click and nothing else of the server.
    assert sorted(modules) == [m for m in outcome["loaded"] if m in modules]
    assert not [m for m in outcome["loaded"] if m.split(".")[0] in ("numpy", "PIL", "rich", "scipy")]
    assert "imgconv.server.client" not in outcome["loaded"]


def test_every_lazy_command_is_the_command_it_names():
    context = click.Context(cli)
    assert cli.list_commands(context) == sorted(COMMANDS)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        assert isinstance(command, click.Command) and command.name == name


@pytest.mark.skipif(not hasattr(click.exceptions, "NoSuchCommand"), reason="click < 8.4 suggests no command")
def test_a_mistyped_command_is_matched_against_every_command(tmp_path):
    # In a fresh process no command is loaded yet: the suggestion still comes from all of them.
    result = subprocess.run([sys.executable, "-m", "imgconv", "featres"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.endswith("Error: No such command 'featres'. Did you mean 'features'?\n")


def test_a_command_without_file_work_ends_with_the_collector_still_paused(tmp_path):
    assert imports_of(["kernels", "show", "sharpen"], (), tmp_path) == {"code": 0, "loaded": [], "collecting": False}


def test_a_program_that_embeds_the_command_line_keeps_its_collector_settings(small_ppm, tmp_path):
    script = (
        "import gc, sys\n"
        "from imgconv.cli import main\n"
        "gc.disable()\n"
        "try:\n"
        "    main(['apply', '-k', 'sharpen', 'small.ppm', 'out.ppm'])\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, gc.isenabled())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.stdout == "0 False\n"
