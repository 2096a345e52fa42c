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
import atexit, gc, json, sys
prefixes = tuple(json.loads(sys.argv[2]))
sys.argv = ["imgconv", *json.loads(sys.argv[1])]


@atexit.register  # the program ends the process itself (imgconv.entry.leave), after the atexit functions
def report():
    loaded = sorted(m for m in sys.modules if m.startswith(prefixes))
    print(json.dumps({"loaded": loaded, "collecting": gc.isenabled()}), file=sys.stderr)


from imgconv.launcher import main

main()
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
    return {"code": result.returncode, **json.loads(result.stderr.splitlines()[-1])}


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


def buffered() -> dict:
    """The environment with Python's standard output buffered, as it is by default."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


#: Programs whose exit shows what the interpreter does after them: threads
#: joined, atexit functions run, output flushed, the status.
EXITS = {
    "status, threads, atexit, buffered output": (
        "import atexit, sys, threading\n"
        "def program():\n"
        "    go = threading.Event()\n"
        "    threading.Thread(target=lambda: (go.wait(), print('thread done'))).start()\n"
        "    atexit.register(lambda: print('atexit ran'))\n"
        "    sys.stdout.write('buffered, no newline; ')\n"
        "    go.set()\n"
        "    raise SystemExit(3)\n"
    ),
    "returning normally": "def program():\n    print('done')\n",
    "a message for a status": "def program():\n    raise SystemExit('a message')\n",
    "no status": "def program():\n    raise SystemExit(None)\n",
}


@pytest.mark.parametrize("name", EXITS)
def test_a_whole_program_exits_as_the_interpreter_would(name, tmp_path):
    program = EXITS[name]
    through_entry = program + "from imgconv.entry import top_level\ntop_level(program)\n"
    plain = program + "program()\n"
    entry, interpreter = (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=buffered())
        for code in (through_entry, plain)
    )
    assert (entry.returncode, entry.stdout, entry.stderr) == (
        interpreter.returncode,
        interpreter.stdout,
        interpreter.stderr,
    )


def test_a_stdout_that_cannot_be_flushed_at_exit_is_reported_as_the_interpreter_does(tmp_path):
    program = "import sys\ndef program():\n    sys.stdout.write('x' * 10)\n"
    outcomes = []
    for code in (program + "from imgconv.entry import top_level\ntop_level(program)\n", program + "program()\n"):
        with open("/dev/full", "w") as full:
            result = subprocess.run(
                [sys.executable, "-c", code], stdout=full, stderr=subprocess.PIPE, text=True, env=buffered()
            )
        outcomes.append((result.returncode, result.stderr))
    assert outcomes[0] == outcomes[1] and outcomes[0][0] == 120
