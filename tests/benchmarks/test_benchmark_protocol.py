"""The pure pieces of the quality benchmark's protocol (benchmarks/_common.py,
benchmarks/quality_fashion_mnist.py), imported by path: the benchmarks are
scripts, not a package."""

import importlib.util
import json
import os
import sys
import types

import numpy as np
import pytest

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")


def _load(name, filename):
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCHMARKS, filename))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


common = _load("benchmarks_common_under_test", "_common.py")


@pytest.fixture(scope="module")
def quality():
    """quality_fashion_mnist.py, which imports `_common` as a sibling module."""
    sys.path.insert(0, BENCHMARKS)
    try:
        yield _load("benchmarks_quality_under_test", "quality_fashion_mnist.py")
    finally:
        sys.path.remove(BENCHMARKS)


# The validation split --------------------------------------------------------------


def _labels():
    # Unequal classes: 50, 120, 30 and 7 members, shuffled.
    labels = np.repeat(np.arange(4), [50, 120, 30, 7])
    return np.random.default_rng(3).permutation(labels)


def test_split_is_stratified_disjoint_and_complete():
    labels = _labels()
    held, rest = common.stratified_split(labels, 0.1, seed=0)
    # round(0.1 * n_c), at least one per class: 5, 12, 3, 1.
    assert np.bincount(labels[held], minlength=4).tolist() == [5, 12, 3, 1]
    assert np.intersect1d(held, rest).size == 0
    assert sorted(np.concatenate([held, rest]).tolist()) == list(range(len(labels)))
    assert np.all(np.diff(held) > 0) and np.all(np.diff(rest) > 0)


def test_split_is_seeded():
    labels = _labels()
    first, _ = common.stratified_split(labels, 0.1, seed=7)
    again, _ = common.stratified_split(labels, 0.1, seed=7)
    other, _ = common.stratified_split(labels, 0.1, seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_split_folder_round_trips_through_the_package_loader(tmp_path):
    import keras_pid_ssl as kps

    rng = np.random.default_rng(0)
    train = (rng.integers(0, 256, (12, 5, 4, 1), dtype=np.uint8), np.arange(12) % 10)
    test = (rng.integers(0, 256, (3, 5, 4, 1), dtype=np.uint8), np.array([9, 0, 4]))
    common.write_fashion_mnist_folder(str(tmp_path), train, test)
    for split, (images, labels) in (("train", train), ("test", test)):
        got_images, got_labels = kps.data.load("fashion_mnist", split, data_dir=str(tmp_path))
        np.testing.assert_array_equal(got_images, images)
        np.testing.assert_array_equal(got_labels, labels)
    # Reproducible bytes: writing again leaves the folder's hash unchanged.
    paths = [str(p) for p in tmp_path.iterdir()]
    before = common.sha256_files(paths, str(tmp_path))
    common.write_fashion_mnist_folder(str(tmp_path), train, test)
    assert common.sha256_files(paths, str(tmp_path)) == before


# The cache key ------------------------------------------------------------------------


def _package(root):
    package = root / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    (package / "sub" / "mod.py").write_text("def f():\n    return 2\n")
    (package / "notes.txt").write_text("not source\n")
    return package


def test_source_hash_changes_when_one_source_byte_changes(tmp_path):
    package = _package(tmp_path)
    before = common.package_source_hash(str(package))
    assert common.package_source_hash(str(package)) == before
    (package / "sub" / "mod.py").write_text("def f():\n    return 3\n")
    changed = common.package_source_hash(str(package))
    assert changed != before
    # A renamed module is another package, even with the same bytes.
    (package / "sub" / "mod.py").rename(package / "sub" / "mod2.py")
    assert common.package_source_hash(str(package)) not in (before, changed)


def test_source_hash_ignores_non_python_files_and_bytecode(tmp_path):
    package = _package(tmp_path)
    before = common.package_source_hash(str(package))
    (package / "notes.txt").write_text("edited\n")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "stale.py").write_text("junk\n")
    assert common.package_source_hash(str(package)) == before


def test_cache_key_covers_every_value_and_ignores_key_order():
    material = {"code": "abc", "config": {"lr": 0.001, "epochs": 10}, "versions": {"keras": "3"}}
    key = common.cache_key(material)
    assert key == common.cache_key(
        {"versions": {"keras": "3"}, "config": {"epochs": 10, "lr": 0.001}, "code": "abc"}
    )
    for changed in (
        {**material, "code": "abd"},
        {**material, "config": {"lr": 0.002, "epochs": 10}},
        {**material, "versions": {"keras": "3.1"}},
    ):
        assert common.cache_key(changed) != key


def test_a_run_of_other_code_is_reported_stale(quality, tmp_path, capsys):
    material = {"kind": "pretrain", "pretrain_kwargs": {"seed": 0}, "code": "new", "versions": {}}
    old = {**material, "code": "old"}
    other_config = {**material, "pretrain_kwargs": {"seed": 1}, "code": "old"}
    for name, m in (("oldkey", old), ("otherkey", other_config)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "material.json").write_text(json.dumps(m))
    assert quality.report_stale(str(tmp_path), material, "newkey") == ["oldkey"]
    assert "stale run" in capsys.readouterr().err


# Statistics ---------------------------------------------------------------------------


# Hand computation: differences 0.01, 0.02, 0.04; mean 0.07 / 3; deviations
# -1/75, -1/300, 1/60, whose squares sum to 7e-4 / 1.5 = 4.6667e-4; sample
# variance 2.3333e-4, std 0.0152753; t_{0.975, 2} = 4.302653;
# half-width 4.302653 * 0.0152753 / sqrt(3) = 0.0379453.
A = [0.80, 0.82, 0.85]
B = [0.79, 0.80, 0.81]


@pytest.mark.parametrize("use_scipy", [True, False])
def test_paired_difference_matches_a_hand_computation(use_scipy):
    if use_scipy:
        pytest.importorskip("scipy")
    d = common.paired_difference(A, B, use_scipy=use_scipy)
    assert d["n"] == 3
    np.testing.assert_allclose(d["diffs"], [0.01, 0.02, 0.04], atol=1e-12)
    np.testing.assert_allclose(d["mean"], 0.07 / 3, rtol=1e-12)
    np.testing.assert_allclose(d["std"], 0.0152753, rtol=1e-5)
    half = 4.302653 * 0.0152753 / np.sqrt(3)  # 0.0379453
    # The table has t_{0.975, 2} to 4 digits (4.303): 3e-6 off in the bounds.
    np.testing.assert_allclose(d["low"], 0.07 / 3 - half, atol=2e-5)
    np.testing.assert_allclose(d["high"], 0.07 / 3 + half, atol=2e-5)


def test_paired_difference_pairs_by_position_and_refuses_ragged_lists():
    # Unpaired (Welch) statistics would give another std: the pairing matters.
    d = common.paired_difference([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert d["std"] == 0.0 and d["low"] == d["high"] == 0.5
    with pytest.raises(ValueError):
        common.paired_difference([1.0, 2.0], [1.0])
    single = common.paired_difference([1.0], [0.25])
    assert single["mean"] == 0.75 and single["low"] != single["low"]  # NaN


def test_t_table_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df, value in common.T_TABLE_975.items():
        assert value == pytest.approx(float(stats.t.ppf(0.975, df)), abs=6e-4)
    # Between rows the table takes the lower row: wider, never narrower.
    assert common.t_quantile_975(35, use_scipy=False) == common.T_TABLE_975[30]
    assert common.t_quantile_975(35, use_scipy=False) > stats.t.ppf(0.975, 35)
    with pytest.raises(ValueError, match="df"):
        common.t_quantile_975(0)


# Evaluation pieces --------------------------------------------------------------------


def test_knn_accuracy_is_the_weighted_cosine_vote():
    # Bank on the unit circle: class 0 at 0 and 40 degrees, class 1 at 20 degrees.
    # The query at 25 degrees: k=1 -> class 1. k=3: weights exp(cos / 0.1) with
    # cosines cos(25)=0.906 and cos(15)=0.966 for class 0 (sum e^9.06 + e^9.66 =
    # 24,380) and cos(5)=0.996 for class 1 (e^9.96 = 21,180): class 0 wins.
    angles = np.deg2rad([0.0, 40.0, 20.0])
    bank = np.stack([np.cos(angles), np.sin(angles)], 1) * [[1.0], [3.0], [0.5]]  # norms ignored
    labels = np.array([0, 0, 1])
    query = np.array([[np.cos(np.deg2rad(25)), np.sin(np.deg2rad(25))]])
    assert common.knn_accuracy(bank, labels, query, np.array([1]), k=1, num_classes=2) == 1.0
    assert common.knn_accuracy(bank, labels, query, np.array([0]), k=3, num_classes=2) == 1.0


def test_linear_probe_accuracy_counts_correct_predictions():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-3, 0.5, (40, 2)), rng.normal(3, 0.5, (40, 2))])
    y = np.repeat([0, 1], 40)
    assert common.linear_probe_accuracy(x, y, x, y) == 1.0
    # Flipped test labels: every prediction is wrong, then half of them.
    assert common.linear_probe_accuracy(x, y, x, 1 - y) == 0.0
    assert common.linear_probe_accuracy(x, y, x, np.where(np.arange(80) % 2, y, 1 - y)) == 0.5


def test_loss_attribute_callback_sets_known_and_refuses_unknown_attributes():
    loss = types.SimpleNamespace(lambda_offdiag=5e-3)
    callback = common.loss_attribute_callback({"lambda_offdiag": 1e-2})
    callback.set_model(types.SimpleNamespace(ssl_loss=loss))
    callback.on_train_begin()
    assert loss.lambda_offdiag == 1e-2
    bad = common.loss_attribute_callback({"lambda_offdiagonal": 1e-2})
    bad.set_model(types.SimpleNamespace(ssl_loss=loss))
    with pytest.raises(ValueError, match="lambda_offdiagonal"):
        bad.on_train_begin()


# Protocol rules -----------------------------------------------------------------------


def test_tuning_budgets_must_be_equal(quality):
    assert quality.check_equal_budget(quality.DEFAULT_LEVERS) == {
        "pid": 3,
        "barlow_twins": 3,
        "vicreg": 3,
    }
    with pytest.raises(ValueError, match="same tuning budget"):
        quality.check_equal_budget({"pid": ["default", "ratio_0.3"], "vicreg": ["default"]})
    with pytest.raises(ValueError, match="Unknown setting"):
        quality.check_equal_budget({"pid": ["no_such_lever"]})


def test_grad_ratio_lever_scales_the_synergy_weight(quality, monkeypatch):
    calls = []

    def fake_pretrain_run(config, seed, args, data):
        calls.append((config["method"], config["lever"], config["lr"], seed))
        return {"run_dir": "x", "final_metrics": {"pid_grad_ratio": 0.25}}

    monkeypatch.setattr(quality, "pretrain_run", fake_pretrain_run)
    config = quality.entry("pid", "ratio_1.0", lr=2e-3)
    overrides, attributes, calibration = quality.resolve(config, 4, None, None)
    # Ratio 0.25 at w_syn=1, target 1.0: w_syn = 4.
    assert overrides == {"w_syn": 4.0} and attributes == {}
    assert calibration == {"target": 1.0, "reference_ratio": 0.25, "w_syn": 4.0}
    # Calibrated on the default PID run of the same seed and learning rate.
    assert calls == [("pid", "default", 2e-3, 4)]


def test_test_split_needs_final(quality):
    args = types.SimpleNamespace(final=False)
    with pytest.raises(RuntimeError, match="--final"):
        quality.evaluate({"key": "k", "run_dir": "x"}, 0, args, {}, "test")


def _result(tag, seed, value):
    return {"tag": tag, "label": tag, "seed": seed, "metrics": {"linear_10%": value}}


def test_floor_check_requires_two_points_over_both_floors(quality):
    results = [
        _result("raw_pixels", 0, 0.80),
        _result("random_init", 0, 0.78),
        _result("pid", 0, 0.825),  # +2.5 and +4.5 points
        _result("vicreg", 0, 0.815),  # +1.5 over raw pixels
    ]
    lines, all_pass = quality.floor_check(results, "linear_10%")
    assert not all_pass
    assert lines[0].startswith("- pid: +2.50 pts over raw_pixels, +4.50 pts over random_init")
    assert "-> beats" in lines[0] and "does NOT beat" in lines[1]
    _, all_pass = quality.floor_check(results[:3], "linear_10%")
    assert all_pass


def test_paired_rows_pair_by_seed(quality):
    results = [
        _result("pid", 1, 0.82),
        _result("pid", 0, 0.80),
        _result("pid", 2, 0.85),
        _result("barlow_twins", 0, 0.79),
        _result("barlow_twins", 2, 0.81),
        _result("barlow_twins", 1, 0.80),
    ]
    (row,) = quality.paired_rows(results, ["linear_10%"], ["pid"], ["barlow_twins"])
    # Per-seed differences +1, +2, +4 points: the hand computation above.
    assert row[:2] == ["pid - barlow_twins", 3]
    assert row[2] == "+2.33 [-1.46, +6.13] (+1.00, +2.00, +4.00)"


def _selection_args(quality, tmp_path, selected, **budget_changes):
    import argparse

    args = quality.add_budget_flags(argparse.ArgumentParser()).parse_args([])
    stored = {**quality.budget_for_selection(args), **budget_changes}
    path = tmp_path / "tuning.json"
    path.write_text(json.dumps({"budget": stored, "selected": selected}))
    args.selected = str(path)
    return args


def test_final_configurations_follow_the_validation_selection(quality, tmp_path):
    base = quality.base_lr(types.SimpleNamespace(lr=None, optimizer="adamw"))  # AdamW: 1e-3
    selected = {
        "pid": {"lever": "ratio_0.3", "lr": 2 * base, "w_syn": 0.213},
        "barlow_twins": {"lever": "lambda_1e-2", "lr": base},
        "vicreg": {"lever": "default", "lr": base},
    }
    args = _selection_args(quality, tmp_path, selected)
    configs = quality.final_configs(args, quality.METHODS)
    assert [(c["tag"], c["lever"], c["lr"], c.get("w_syn")) for c in configs] == [
        ("pid", "default", None, None),
        ("pid:selected", "ratio_0.3", 2 * base, 0.213),
        ("barlow_twins:selected", "lambda_1e-2", base, None),
        ("vicreg:selected", "default", base, None),
    ]
    # The selected ratio_T setting trains at the tuning's weight: no calibration run.
    overrides, _, calibration = quality.resolve(configs[1], 2, None, None)
    assert overrides == {"w_syn": 0.213}
    assert calibration == {"target": 0.3, "w_syn": 0.213, "from": "tuning"}
    # A ratio_T selection that names no weight is refused.
    del selected["pid"]["w_syn"]
    args = _selection_args(quality, tmp_path, selected)
    with pytest.raises(ValueError, match="names no w_syn"):
        quality.final_configs(args, quality.METHODS)
    # PID's selection is its default: one configuration, not two copies.
    selected["pid"] = {"lever": "default", "lr": base}
    args = _selection_args(quality, tmp_path, selected)
    tags = [c["tag"] for c in quality.final_configs(args, quality.METHODS)]
    assert tags == ["pid", "barlow_twins:selected", "vicreg:selected"]


def test_a_selection_made_at_another_budget_is_refused(quality, tmp_path):
    args = _selection_args(quality, tmp_path, {}, epochs=3)
    with pytest.raises(ValueError, match=r"another budget \(differs in \['epochs'\]\)"):
        quality.final_configs(args, quality.METHODS)


def test_a_selection_holds_whatever_the_evaluations_that_do_not_select(quality, tmp_path):
    # Selected on linear_10%: kNN and fine-tuning settings (older selections lack
    # finetune_batch_size) leave it valid.
    args = _selection_args(
        quality, tmp_path, {}, knn_k=[5], finetune_epochs=1, finetune_batch_size=None
    )
    tags = [c["tag"] for c in quality.final_configs(args, quality.METHODS)]
    assert tags == list(quality.METHODS)


def test_code_state_is_taken_once_per_process_from_the_imported_package(quality):
    import keras_pid_ssl

    state = quality.code_state()
    assert quality.code_state() is state  # the same snapshot for tuning and final stages
    assert state["package_source"] == common.package_source_hash(
        os.path.dirname(keras_pid_ssl.__file__)
    )


# Splitting the work over processes (--shard) ---------------------------------------


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_shards_partition_the_work(quality, parts):
    args = types.SimpleNamespace(shard=None)
    assert all(quality.in_shard(args, i) for i in range(7))
    owners = []
    for i in range(7):
        mine = []
        for part in range(parts):
            args.shard = quality.parse_shard(f"{part}/{parts}")
            if quality.in_shard(args, i):
                mine.append(part)
        owners.append(mine)
    # Every item in exactly one part, interleaved: item i in part i mod N.
    assert owners == [[i % parts] for i in range(7)]


@pytest.mark.parametrize("text", ["2/2", "-1/2", "1", "a/b", "0/0"])
def test_a_bad_shard_is_refused(quality, text):
    with pytest.raises(quality.argparse.ArgumentTypeError, match="0 <= I < N"):
        quality.parse_shard(text)


def test_a_shard_reports_under_the_runs_dir_and_a_whole_run_where_asked(quality, tmp_path):
    args = types.SimpleNamespace(shard=None, runs_dir=str(tmp_path))
    assert quality.shard_path(args, "results/tuning.json") == "results/tuning.json"
    args.shard = (1, 2)
    assert quality.shard_path(args, "results/tuning.json") == os.path.join(
        str(tmp_path), "shards", "tuning_part1of2.json"
    )


def test_write_text_replaces_the_file_whole_and_leaves_no_partial_file(tmp_path):
    path = tmp_path / "sub" / "report.json"
    common.write_text(str(path), "first")
    common.write_text(str(path), "second, longer")
    assert path.read_text() == "second, longer"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.json"]


def test_selection_takes_the_best_mean_and_records_the_calibrated_weight():
    sys.path.insert(0, BENCHMARKS)
    try:
        sweep = _load("benchmarks_sweep_under_test", "sweep_pid.py")
    finally:
        sys.path.remove(BENCHMARKS)

    def run(tag, lever, lr, seed, value, w_syn=None):
        calibration = None if w_syn is None else {"target": 0.3, "w_syn": w_syn}
        method = tag.split(":")[0]
        return {
            "tag": tag,
            "method": method,
            "lever": lever,
            "lr": lr,
            "seed": seed,
            "metrics": {"linear_10%": value},
            "calibration": calibration,
        }

    results = [
        run("pid:default:lr0.004", "default", 0.004, 0, 0.84),
        run("pid:default:lr0.004", "default", 0.004, 1, 0.86),  # mean 0.85
        run("pid:ratio_0.3:lr0.008", "ratio_0.3", 0.008, 0, 0.85, w_syn=0.2),
        run("pid:ratio_0.3:lr0.008", "ratio_0.3", 0.008, 1, 0.853, w_syn=0.25),  # 0.8515
        run("barlow_twins:default:lr0.004", "default", 0.004, 0, 0.86),
        run("barlow_twins:default:lr0.004", "default", 0.004, 1, 0.84),  # 0.85
        run("barlow_twins:lambda_1e-2:lr0.004", "lambda_1e-2", 0.004, 0, 0.849),
        run("barlow_twins:lambda_1e-2:lr0.004", "lambda_1e-2", 0.004, 1, 0.849),  # 0.849
    ]
    best = sweep.select(results, "linear_10%")
    assert best["pid"] == {
        "lever": "ratio_0.3",
        "lr": 0.008,
        "mean": pytest.approx(0.8515),
        "w_syn": 0.225,
    }
    assert best["barlow_twins"] == {"lever": "default", "lr": 0.004, "mean": pytest.approx(0.85)}


def test_a_reused_run_is_found_where_its_runs_folder_is_now(quality, tmp_path, monkeypatch):
    import keras_pid_ssl as kps

    trained = []

    def fake_pretrain(run_dir, **kwargs):
        trained.append(run_dir)
        return {"final_metrics": {"loss": 1.0}}

    monkeypatch.setattr(kps.training, "pretrain", fake_pretrain)
    args = types.SimpleNamespace(
        runs_dir=str(tmp_path / "first"),
        backbone="small_convnet",
        epochs=1,
        batch_size=8,
        optimizer="adamw",
        warmup_epochs=0,
        projector_dims="16,16",
        train_subset=0,
        probe_subset=8,
        monitor_size=0,
        verbose=0,
    )
    data = {"key": "k", "folders": {"validation": "unused"}}
    config = quality.entry("barlow_twins", lr=0.004)
    first = quality.pretrain_run(config, 0, args, data)
    assert trained == [first["run_dir"]]
    os.rename(tmp_path / "first", tmp_path / "moved")
    args.runs_dir = str(tmp_path / "moved")
    again = quality.pretrain_run(config, 0, args, data)
    assert trained == [first["run_dir"]]  # reused, not trained again
    assert again["run_dir"] == first["run_dir"].replace("first", "moved")
    assert os.path.isdir(again["run_dir"])
