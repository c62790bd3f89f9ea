"""Every script's --help is true: each option shows the default the code uses (argparse's own
value), the defaults the code decides at run time are the ones the help names, and the
description of a choice matches the rule that makes it."""
import argparse

import pytest

from conftest import load_script
from labench.compute.setup import CPU_BATCH, default_batch_size
from labench.flows.cli import HelpFormatter
from saliency.metric import default_batch_size as metric_batch_size

SCRIPTS = [("generate_pt", []), ("generate_attributions", []), ("eval", []), ("plot", ["heatmaps"]),
           ("plot", ["grid"]), ("plot", ["curves"]), ("tables", []), ("report", []), ("sanity", [])]


def parser_of(script, argv, monkeypatch):
    """The parser a script's main builds, caught when it parses."""
    caught = []

    def catch(self, args=None, namespace=None):
        caught.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    with pytest.raises(SystemExit):
        load_script(script).main(list(argv))
    parser = caught[0]
    if argv:  # a subcommand's own parser
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[argv[0]]
    return parser


def shown_help(parser, action):
    formatter = parser._get_formatter()
    return formatter._expand_help(action) if action.help else ""


@pytest.mark.parametrize("script, argv", SCRIPTS)
def test_every_option_shows_the_default_the_code_uses(script, argv, monkeypatch):
    parser = parser_of(script, argv, monkeypatch)
    assert isinstance(parser._get_formatter(), HelpFormatter)
    unexplained = []
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
            continue
        text = shown_help(parser, action)
        value = " ".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else str(action.default)
        if f"(default: {action.default})" not in text and "default" not in text.replace(f"(default: {value})", ""):
            unexplained.append(action.option_strings[0])
    assert unexplained == []


def test_help_names_the_batch_sizes_the_code_chooses(monkeypatch):
    eval_help = shown_help(*batch_action(parser_of("eval", [], monkeypatch)))
    assert f"default: {metric_batch_size('cpu')} on a CPU" in eval_help
    generate_help = shown_help(*batch_action(parser_of("generate_attributions", [], monkeypatch)))
    assert f"at most {CPU_BATCH} on a CPU" in generate_help
    assert default_batch_size("sm", "resnet50", "cpu") == CPU_BATCH and default_batch_size("big", "resnet50", "cpu") == 8


def batch_action(parser):
    return parser, next(a for a in parser._actions if "--batch_size" in a.option_strings)


def test_tables_la_help_names_the_rule_that_picks_the_setting(monkeypatch):
    from labench.spec.identity import choose_setting

    parser = parser_of("tables", [], monkeypatch)
    text = shown_help(parser, next(a for a in parser._actions if "--la" in a.option_strings))
    assert "most work" in text
    # the rule: 20/20/20 when present, else the most work (max_iter x sampling_times), not the best AUC
    assert choose_setting("la", [(10, 30, 30), (20, 20, 20)]) == (20, 20, 20)
    assert choose_setting("la", [(10, 30, 30), (20, 20, 10)]) == (10, 30, 30)


def test_one_name_for_the_image_count_in_every_script(monkeypatch):
    """--images N means the first N images wherever an image count is taken; the older names
    (--limit, --count, --n) stay as aliases of the same option."""
    for script, argv, old in [("generate_attributions", [], "--limit"), ("eval", [], "--limit"),
                              ("plot", ["heatmaps"], "--count"), ("generate_pt", [], "--n"), ("report", [], None),
                              ("sanity", [], None)]:
        parser = parser_of(script, argv, monkeypatch)
        action = next(a for a in parser._actions if "--images" in a.option_strings)
        assert old is None or old in action.option_strings, script
        monkeypatch.undo()
        namespace = argparse.ArgumentParser.parse_args(parser, ["--images", "3"])
        assert getattr(namespace, action.dest) == 3
        if old:
            assert getattr(argparse.ArgumentParser.parse_args(parser, [old, "3"]), action.dest) == 3
    from labench.flows.grid import grid_options

    assert grid_options(["--images", "3"]).base.limit == grid_options(["--limit", "3"]).base.limit == 3


def test_one_name_for_each_folder_in_every_script(monkeypatch):
    """--maps_dir and --scores_dir name the same folders in every script that reads or writes them;
    the published names (--prefix, --attr_prefix, --scores_prefix) are aliases of the same options."""
    expected = {("generate_attributions", ()): {"--maps_dir": "--prefix"},
                ("eval", ()): {"--maps_dir": "--attr_prefix", "--scores_dir": "--prefix"},
                ("plot", ("heatmaps",)): {"--maps_dir": "--attr_prefix"}, ("plot", ("grid",)): {"--maps_dir": "--attr_prefix"},
                ("plot", ("curves",)): {"--scores_dir": "--scores_prefix"}, ("tables", ()): {"--scores_dir": "--scores_prefix"}}
    for (script, argv), names in expected.items():
        parser = parser_of(script, argv, monkeypatch)
        monkeypatch.undo()
        for ours, published in names.items():
            action = next(a for a in parser._actions if ours in a.option_strings)
            assert published in action.option_strings, (script, ours)
            parse = argparse.ArgumentParser.parse_args
            assert getattr(parse(parser, [ours, "x"]), action.dest) == getattr(parse(parser, [published, "x"]), action.dest) == "x"
    from labench.flows.grid import grid_options

    assert grid_options(["--maps_dir", "m", "--scores_dir", "s"]).base == grid_options(["--attr_prefix", "m", "--scores_prefix", "s"]).base
