"""The command line states each default once, from the code's constants: help text never
restates a value in prose (``show_default`` shows the constant), and an option whose
None means "the workspace's setting, else the code's default" says so from the constants.
"""

from __future__ import annotations

import re
from dataclasses import fields
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner

from workbench.cli import cli
from workbench.detection.names import DEFAULT_BACKBONE
from workbench.workspace import DEFAULT_LEVEL, DEFAULT_WORKSPACE

# options whose default is None on purpose and whose help names the fallback; the help
# of each must contain these values (taken from the constants, so it cannot drift)
DESCRIBED_FALLBACKS = {
    ("wb", "--workspace"): [DEFAULT_WORKSPACE],
    ("wb retrain", "--backbone"): [DEFAULT_BACKBONE],
    ("wb retrain", "--level"): [DEFAULT_LEVEL],
    ("wb retrain", "--image-size"): ["backbone", "wb backbones"],
    ("wb demo", "--image-size"): ["backbone", "wb backbones"],
}


def _commands(command: click.Command, path: str = "wb"):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, f"{path} {name}")


def _options():
    return [
        (path, cmd, p)
        for path, cmd in _commands(cli)
        for p in cmd.params
        if isinstance(p, click.Option)
    ]


def _help(path: str, cmd: click.Command, opt: click.Option) -> str:
    ctx = click.Context(cmd, info_name=path)
    record = opt.get_help_record(ctx)
    return record[1] if record else ""


def _default(opt: click.Option):
    """The default as click reports it (None when the option has none)."""
    return opt.to_info_dict()["default"]


def _flag(opt: click.Option) -> str:
    return max(opt.opts, key=len)


def test_the_walk_sees_every_command_area():
    paths = {path for path, _ in _commands(cli)}
    assert {
        "wb retrain",
        "wb dedup",
        "wb serve",
        "wb evaluate",
        "wb prioritize",
        "wb demo",
        "wb dedup resolve",
    } <= paths
    assert len(_options()) > 80


def test_no_help_restates_a_default_that_is_not_shown_from_the_code():
    bad = []
    for path, _cmd, opt in _options():
        text = opt.help or ""
        key = (path, _flag(opt))
        if "[default" in text.lower():
            bad.append(f"{key}: writes click's [default: ...] by hand")
        if opt.show_default or opt.is_flag or not re.search(r"\bdefault\b", text, re.IGNORECASE):
            continue
        # "default" in prose with show_default off: only a described fallback of None
        if _default(opt) is not None:
            bad.append(f"{key}: default {_default(opt)!r} described in prose, not shown")
        elif (
            re.search(r"\bdefault\b:?\s*\(?[\d.]", text, re.IGNORECASE)
            and key not in DESCRIBED_FALLBACKS
        ):
            bad.append(f"{key}: a value after 'default' in prose: {text!r}")
    assert not bad, "\n".join(bad)


def test_described_fallbacks_name_the_codes_defaults():
    opts = {(path, _flag(opt)): (cmd, opt) for path, cmd, opt in _options()}
    for key, words in DESCRIBED_FALLBACKS.items():
        _cmd, opt = opts[key]
        assert _default(opt) is None and not opt.show_default, key
        for word in words:
            assert word in opt.help, (key, word)


def _train_defaults():
    from workbench.detection.train import TrainConfig

    return {f.name: f.default for f in fields(TrainConfig)}


def test_retrain_shows_the_train_configs_defaults():
    opts = {_flag(p): p for p in cli.commands["retrain"].params if isinstance(p, click.Option)}
    defaults = _train_defaults()
    ctx = click.Context(cli.commands["retrain"], info_name="wb retrain")
    shown = 0
    for flag, opt in opts.items():
        name = flag[2:].replace("-", "_")
        if name in defaults and opt.show_default:
            assert opt.get_default(ctx) == defaults[name], flag
            assert f"[default: {defaults[name]}]" in " ".join(
                _help("wb retrain", cli.commands["retrain"], opt).split()
            ), flag
            shown += 1
    assert shown >= 14
    assert "[default: 15]" in _help("wb retrain", cli.commands["retrain"], opts["--patience"])


@pytest.mark.parametrize(
    "path, flag, constant",
    [
        (
            "dedup",
            "--max-distance",
            lambda: __import__("workbench.dedup.run", fromlist=["x"]).DEFAULT_MAX_DISTANCE,
        ),
        (
            "dedup",
            "--verify-distance",
            lambda: __import__("workbench.dedup.run", fromlist=["x"]).DEFAULT_VERIFY_DISTANCE,
        ),
        (
            "serve",
            "--min-score",
            lambda: __import__("workbench.labelstudio.tasks", fromlist=["x"]).DISPLAY_MIN_SCORE,
        ),
        (
            "evaluate",
            "--score-threshold",
            lambda: (
                __import__("workbench.detection.evaluate", fromlist=["x"]).DEFAULT_SCORE_THRESHOLD
            ),
        ),
    ],
)
def test_shown_defaults_are_the_constants(path, flag, constant):
    cmd = cli.commands[path]
    opt = next(p for p in cmd.params if flag in getattr(p, "opts", ()))
    ctx = click.Context(cmd, info_name=f"wb {path}")
    assert opt.show_default and opt.get_default(ctx) == constant()
    assert f"default: {constant()}" in _help(f"wb {path}", cmd, opt)


def test_dedup_takes_pairs_up_to_distance_2_without_a_pixel_check():
    from workbench.dedup.run import DEFAULT_MAX_DISTANCE, DedupOptions

    assert DEFAULT_MAX_DISTANCE == DedupOptions().max_distance == 2
    out = CliRunner().invoke(cli, ["dedup", "--help"]).output
    assert "[default: 2;" in " ".join(out.split()) and "default: 6" not in out


def test_one_display_score_floor():
    from workbench.backend.app import BackendSettings
    from workbench.labelstudio.tasks import DISPLAY_MIN_SCORE

    assert BackendSettings().min_score == DISPLAY_MIN_SCORE


def test_retrain_without_options_trains_the_workspaces_config(tmp_path, monkeypatch):
    import workbench.detection.retrain as retrain_mod
    from workbench.detection.train import TrainConfig
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws", Taxonomy.default())
    ws.set("model", "backbone", "mobilenet_v3")
    seen = []

    def fake_retrain(ws_, catalog, options, on_event=None):
        seen.append(options)
        return SimpleNamespace(versions=[], promoted=None, to_dict=dict)

    monkeypatch.setattr(retrain_mod, "retrain", fake_retrain)
    run = CliRunner().invoke(cli, ["--workspace", str(ws.root), "retrain", "--json"])
    assert run.exit_code == 0, run.output
    assert seen[0].train == TrainConfig.for_workspace(Workspace.open(ws.root))
    assert seen[0].train.backbone == "mobilenet_v3"
    run = CliRunner().invoke(
        cli,
        [
            "--workspace",
            str(ws.root),
            "retrain",
            "--json",
            "--patience",
            "3",
            "--level",
            "category",
            "--no-negatives",
        ],
    )
    assert run.exit_code == 0, run.output
    cfg = seen[1].train
    assert (cfg.patience, cfg.level, cfg.negatives, cfg.max_epochs) == (
        3,
        "category",
        False,
        _train_defaults()["max_epochs"],
    )


def test_prioritize_offers_and_defaults_to_what_the_active_configs_take():
    from workbench.active import selection, uncertainty
    from workbench.cli import prioritize

    assert prioritize.STRATEGIES == selection.STRATEGIES
    cmd = cli.commands["prioritize"]
    ctx = click.Context(cmd, info_name="wb prioritize")
    opts = {_flag(p): p for p in cmd.params if isinstance(p, click.Option)}
    expected = {
        "--score": uncertainty.UncertaintyConfig().score,
        "--aggregate": uncertainty.UncertaintyConfig().aggregate,
        "--strategy": selection.SelectionConfig().strategy,
        "--batch": selection.SelectionConfig().batch,
        "--seed": selection.SelectionConfig().seed,
    }
    for flag, value in expected.items():
        assert opts[flag].show_default and opts[flag].get_default(ctx) == value, flag
        assert f"[default: {value}" in " ".join(_help("wb prioritize", cmd, opts[flag]).split())
    assert list(opts["--score"].type.choices) == list(uncertainty.SCORES)
