"""run.py --describe TRIAL, and the checks that fail a spec before its run: plot entries
against the trial's columns, value formats (hidden), "did you mean" for names."""

import dataclasses

import pytest

import run
import trials.train
from memo.run import describe
from memo.run.spec import SpecError, load_spec


def test_describe_train_lists_every_param_with_its_comment_and_every_metric(capsys):
    assert run.main(["--describe", "train"]) == 0
    out = capsys.readouterr().out
    for field in dataclasses.fields(trials.train.Params):
        assert f"\n  {field.name} (" in out, field.name
    assert "(no comment)" not in out  # every field is documented in the source
    assert '  hidden (a string) = "512": mlp: hidden widths joined by "x"' in out
    assert '  corruption (one of "none", "shuffled_pixels", "random_pixels", "gaussian")' in out
    assert "  [probes (all off by default)]" in out  # a comment block above a field: a heading
    for metric, meaning in trials.train.METRICS.items():
        assert f"  {metric} " in out and meaning in out
    assert (
        "  stop_at_interpolation (true or false) = true: stop once the training set is fit" in out
    )
    assert "zhang_fig1_small" in out.split("experiments:")[1]


def test_describe_reads_comments_above_a_field_and_at_its_end():
    @dataclasses.dataclass
    class P:
        # a section
        a: int = 1  # the end-of-line comment
        # the comment above b,
        # over two lines
        b: float = 2.0
        c: str = "x"

    docs, sections = describe.field_comments(P)
    assert docs == {"a": "the end-of-line comment", "b": "the comment above b, over two lines"}
    assert sections == {"a": "a section"}


def test_describe_an_alias_and_an_unknown_trial(capsys):
    assert run.main(["--describe", "algorithm"]) == 0
    assert capsys.readouterr().out.startswith("trial memorize: ")
    assert run.main(["--describe", "trian"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no trial 'trian' (did you mean 'train'?); known trials:")
    assert len(err.strip().splitlines()) == 1


def _spec(plots, trial="synthetic"):
    return {"trial": trial, "param_grid": {"x": [1.0, 2.0]}, "plots": plots}


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            {"type": "line", "name": "v", "x": "x", "y": "valeu"},
            "key 'y': the trial gives no column 'valeu' (did you mean 'value'?)",
        ),
        (
            {"type": "curves", "name": "c", "metric": "value"},
            "key 'metric': 'value' is one number per run; curves need a per-epoch *_curve metric",
        ),
        (
            {"type": "line", "name": "l", "x": "x", "y": "curve"},
            "key 'y': 'curve' is a per-epoch list; use the curves plot type",
        ),
        ({"type": "line", "name": "w", "x": "x", "y": "value", "where": {"z": 1}}, "'where.z'"),
        ({"type": "heatmap", "name": "h", "pivtot": {}}, "key 'pivtot': unknown key"),
    ],
)
def test_a_plot_naming_a_missing_column_fails_the_dry_run_with_one_line(
    write_spec, capsys, entry, message
):
    good = {"type": "line", "name": "ok", "x": "x", "y": "value", "hue": "seed"}
    path = write_spec("exp", _spec([good, entry]))
    assert run.main(["--name", "exp", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: plots[1] {entry['name']!r}: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (path.parent.parent / "results" / "exp").exists()  # nothing ran


def test_plots_of_a_trial_family_metric_pass(write_spec):
    from memo.plots.check import check_plots

    ok = {"type": "line", "name": "g", "x": "lr", "y": "align_grad_body_0_final"}
    listy = {"type": "line", "name": "s", "x": "lr", "y": "align_grad_body_0"}
    write_spec("exp", {"trial": "train", "param_grid": {"lr": [0.1]}, "plots": [ok, listy]})
    problems = check_plots(load_spec("exp"))
    assert len(problems) == 1 and "plots[1] 's'" in problems[0] and "per-epoch list" in problems[0]


def test_every_shipped_experiment_passes_the_plot_check():
    from memo.store import paths
    from memo.plots.check import check_plots

    for path in sorted(paths.PROJECT.joinpath("experiments").glob("*.json")):
        assert check_plots(load_spec(str(path))) == [], path.name


@pytest.mark.parametrize("hidden", ["512,512", "512x0", "wide"])
def test_a_bad_hidden_fails_at_spec_time_naming_it(write_spec, hidden):
    write_spec("exp", {"trial": "train", "param_grid": {"hidden": [hidden]}})
    with pytest.raises(SpecError, match=rf"hidden: .*got '{hidden}'"):
        load_spec("exp").points()


def test_the_hidden_check_accepts_exactly_what_the_mlp_builder_reads():
    from memo.nets import parse_hidden

    for text in ["512", "512x512", "", "0", "00", "x512", "5 X 5", "+5", "512,512", "0x5", "-5"]:
        try:
            parse_hidden(text)
            builder = True
        except ValueError:
            builder = False
        try:
            trials.train.check_hidden(text)
            checked = True
        except ValueError:
            checked = False
        assert builder == checked, text


def test_did_you_mean_for_a_param_and_an_experiment(write_spec):
    write_spec("exp", {"trial": "train", "param_grid": {"label_nosie": [0.1]}})
    with pytest.raises(SpecError, match=r"no param 'label_nosie' \(did you mean 'label_noise'\?\)"):
        load_spec("exp")
    with pytest.raises(SpecError, match=r"no such experiment file \(did you mean 'exp'\?\)"):
        load_spec("epx")
