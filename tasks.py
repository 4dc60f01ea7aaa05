"""invoke tasks: the same entry points as ./run, for people who use invoke.

invoke setup | invoke test [--tier unit] | invoke demo | invoke bench | invoke lint
"""

from invoke import task


@task
def setup(c):
    c.run("./run setup", pty=False)


@task(help={"tier": "unit, integration, browser or fault (default: all)"})
def test(c, tier=""):
    c.run(f"./run test {'-m ' + tier if tier else ''}", pty=False)


@task
def demo(c, epochs=None):
    c.run(f"./run demo {'--epochs ' + str(epochs) if epochs else ''}", pty=False)


@task
def services(c, action="status"):
    """Start/stop/status of the local Label Studio of ./workspace."""
    c.run(f".venv/bin/wb ls {action}", pty=False)


@task
def bench(c, name=""):
    """Run one benchmark script (benchmarks/NAME.py) or list them."""
    if not name:
        c.run("ls benchmarks/*.py")
        return
    c.run(f".venv/bin/python benchmarks/{name}.py", pty=False)


@task
def lint(c):
    """ruff: lint and format check (fails on a finding); `invoke lint --fix` fixes both."""
    c.run(".venv/bin/python -m ruff check workbench tests benchmarks tasks.py", pty=False)
    c.run(".venv/bin/python -m ruff format --check workbench tests benchmarks tasks.py", pty=False)
