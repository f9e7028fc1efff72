"""The course benchmark: both course models and the original course's two models, binary and 4-class,
trained on the shipped leakage-safe split of the real Sartaj images and evaluated on its held-out test
part (plus the binary models on Navoneel's yes/no images, cross-dataset duplicates removed).

    BRAINXPERT_DATA_DIR=../shared/datasets BRAINXPERT_WEIGHTS_DIR=../shared/weights \\
        python benchmarks/run_benchmark.py [--quick] [--only mobilenet custom_cnn ...]

Writes benchmarks/results/results.json and results.md (every metric with a 95% bootstrap CI,
efficiency, wall times, seed, machine). Settings are the course defaults (config.DEFAULTS) except
where the original protocol says otherwise. ``--quick`` shrinks everything (smoke run, not results).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from brainxpert_utils import artifacts, config, datasets, evaluation, models, pipeline, splits, training  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ("mobilenet", "custom_cnn", "original_mobilenet", "original_cnn")
TASKS = ("binary", "multiclass")
TARGETS = [("mobilenet_binary", "accuracy", 0.97), ("mobilenet_binary", "balanced_accuracy", 0.95),
           ("mobilenet_multiclass", "accuracy", 0.92), ("custom_cnn_binary", "accuracy", 0.92)]
TIME_TARGET_S = 30 * 60


def machine_info() -> dict:
    """CPU, cores, versions: what the timings mean."""
    import keras
    import tensorflow as tf

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "platform": platform.platform()}


class Clock:
    """Wall time and load average of each step (the machine is shared: load > cores means contention)."""

    def __init__(self):
        self.start, self.steps = time.perf_counter(), []

    def step(self, name: str, since: float) -> float:
        seconds = round(time.perf_counter() - since, 1)
        self.steps.append({"step": name, "seconds": seconds, "load_avg_1min": round(os.getloadavg()[0], 2)})
        print(f"[{time.perf_counter() - self.start:7.1f} s] {name}: {seconds} s (load {os.getloadavg()[0]:.1f})", flush=True)
        return seconds


def to_binary(ds):
    """Map a 4-class dataset's labels to binary (decode the images once for both tasks)."""
    import tensorflow as tf

    classes = datasets.get_dataset("sartaj").class_names
    mapping = tf.constant(pipeline.label_ids(list(classes), "binary", "sartaj"))
    return ds.map(lambda x, y: (x, tf.gather(mapping, y)))


def sartaj_data(split_df, folder, size: int, limit: int | None, seed: int) -> dict:
    """{(task, subset): dataset} at one image size; decoded once (cached uint8), shared by both tasks."""
    out = {}
    for subset in ("train", "val", "test"):
        ds = pipeline.make_dataset(split_df, folder, subset, task="multiclass", image_size=size, seed=seed,
                                   limit=limit, verbose=subset == "train")
        out[("multiclass", subset)], out[("binary", subset)] = ds, to_binary(ds)
    return out


def navoneel_data(size: int, data_dir, limit: int | None):
    """Navoneel's yes/no images minus every near/exact duplicate of a Sartaj image (shipped CSV)."""
    table = splits.load_split(config.repo_root() / "data" / "splits" / "navoneel_external.csv", dataset="navoneel")
    folder = datasets.dataset_dir("navoneel", data_dir)
    return pipeline.make_dataset(table, folder, "test", task="binary", image_size=size, limit=limit, verbose=False)


def build(model: str, task: str, defaults: dict, weights, size: int):
    classes = 2 if task == "binary" else 4
    if model == "mobilenet":
        return models.build_mobilenet_classifier((size, size, 3), classes, alpha=defaults["mobilenet_alpha"],
                                                 weights=weights, dropout=defaults["head_dropout"])
    if model == "original_mobilenet":
        return models.build_original_mobilenet((size, size, 3), classes, weights=weights)
    if model == "custom_cnn":
        return models.build_custom_cnn((size, size, 3), classes, blocks=defaults["cnn_blocks"],
                                       dropout=defaults["cnn_dropout"])
    return models.build_original_cnn((size, size, 3), classes)


def fit_transfer(name: str, tasks, data, defaults: dict, weights, size: int, args, clock: Clock) -> dict:
    """MobileNet (course recipe) or the original frozen MobileNet: one activation cache, one head per task."""
    original = name == "original_mobilenet"
    fine_tune = 0 if original else defaults["fine_tune_epochs"]
    start = time.perf_counter()
    first = build(name, "multiclass", defaults, weights, size)
    cache = training.build_activation_cache(first, data[("multiclass", "train")], data[("multiclass", "val")],
                                            defaults["fine_tune_from"] if fine_tune else None, flip=not original)
    cache_s = clock.step(f"{name}: activation cache ({len(cache.x_train)} train, {len(cache.x_val)} val)", start)
    to_bin = pipeline.label_ids(list(datasets.get_dataset("sartaj").class_names), "binary", "sartaj")
    out = {}
    for task in tasks:
        start = time.perf_counter()
        training.set_seed(args.seed)
        model = first if task == "multiclass" else build(name, task, defaults, weights, size)
        task_cache = cache if task == "multiclass" else cache.relabel(to_bin)
        weight = training.compute_class_weight(task_cache.y_train) if task == "binary" and not original else None
        result = training.transfer_learn(
            model, cache=task_cache, head_epochs=defaults["head_epochs"] if not original else args.original_epochs,
            fine_tune_epochs=fine_tune, head_learning_rate=1e-3, patience=5 if not original else 3,
            fine_tune_learning_rate=defaults["fine_tune_learning_rate"], class_weight=weight, seed=args.seed,
            verbose=args.verbose)
        result.info["activation_cache_seconds_shared_by_tasks"] = cache_s
        out[task] = (model, result, clock.step(f"{name} {task}: training", start) + cache_s / len(tasks))
    return out


def fit_cnn(name: str, task: str, data, defaults: dict, size: int, args, clock: Clock):
    start = time.perf_counter()
    training.set_seed(args.seed)
    model = build(name, task, defaults, None, size)
    original = name == "original_cnn"
    epochs = args.original_epochs if original else defaults["cnn_epochs"]
    steps = epochs * sum(1 for _ in data[(task, "train")])
    lr = 1e-3 if original else __import__("keras").optimizers.schedules.CosineDecay(defaults["cnn_learning_rate"], steps)
    training.compile_for_task(model, lr)
    weight = training.compute_class_weight(args.split_df, task) if task == "binary" and not original else None
    monitor = defaults["cnn_monitor_binary"] if task == "binary" and not original else "val_loss"
    result = training.train(model, data[(task, "train")], data[(task, "val")], epochs=epochs, class_weight=weight,
                            patience=defaults["cnn_patience"] if not original else 3, monitor=monitor,
                            verbose=args.verbose)
    return model, result, clock.step(f"{name} {task}: training", start)


def assess(key: str, model, result, seconds: float, task: str, data, nav, args, clock: Clock) -> dict:
    """Test metrics, external check, efficiency; saves the model under the artifacts folder."""
    start = time.perf_counter()
    entry = {"model": key.rsplit("_", 1)[0], "task": task, "train": result.to_dict(), "train_seconds": seconds}
    entry["test"] = evaluation.evaluate(model, data[(task, "test")], split="test", task=task, n_boot=args.n_boot,
                                        seed=args.seed)
    if task == "binary" and nav is not None:
        entry["external_navoneel"] = evaluation.evaluate(model, nav, split="test", dataset="navoneel", task="binary",
                                                         n_boot=args.n_boot, seed=args.seed)
    path = artifacts.save_run_item("model", key, model, args.artifacts_dir)
    entry["efficiency"] = evaluation.efficiency(model, saved_path=path, repeats=3, training_time=seconds)
    clock.step(f"{key}: evaluation + efficiency", start)
    acc = entry["test"]["accuracy"]
    print(f"  {key}: test accuracy {evaluation.format_metric(acc)}, balanced "
          f"{evaluation.format_metric(entry['test']['balanced_accuracy'])}", flush=True)
    return entry


def check_targets(runs: dict, total_s: float) -> list[dict]:
    """Each target: value, CI, met or not, and by how much it is missed."""
    rows = []
    for key, metric, target in TARGETS:
        if key not in runs:
            continue
        m = runs[key]["test"][metric]
        low, high = m["ci"]
        rows.append({"run": key, "metric": metric, "target": target, "value": round(m["value"], 4),
                     "ci": [round(low, 4), round(high, 4)], "met": m["value"] >= target,
                     "missed_by": round(max(0.0, target - m["value"]), 4), "target_inside_ci": low <= target <= high})
    rows.append({"run": "whole benchmark", "metric": "wall seconds", "target": TIME_TARGET_S, "value": round(total_s),
                 "met": total_s <= TIME_TARGET_S, "missed_by": round(max(0.0, total_s - TIME_TARGET_S))})
    return rows


def _fmt(result: dict, metric: str) -> str:
    return evaluation.format_metric(result[metric]) if metric in result and result[metric] else "-"


def write_markdown(report: dict) -> str:
    """results.md: metrics with CIs, targets, external check, efficiency, steps, machine."""
    m, runs = report["machine"], report["runs"]
    lines = [f"# BrainXpert benchmark{' (QUICK SMOKE RUN: not results)' if report['settings']['quick'] else ''}", "",
             f"Finished {report['finished_utc']} UTC in {report['total_seconds'] / 60:.1f} min on {m['cpu']} "
             f"({m['cores']} cores, shared with other jobs: see the load column below), TensorFlow {m['tensorflow']}, "
             f"Keras {m['keras']}. Seed {report['seed']}, split `{report['split']}` (grouped by duplicate group, "
             "stratified); metrics on its held-out **test** part, 95% bootstrap CIs "
             f"({report['settings']['n_boot']} resamples).", ""]
    if "parts" in report:
        lines += ["Run as parallel processes (parts): " + "; ".join(
            f"{k}: {', '.join(v['models'])} ({', '.join(v['tasks'])}) {v['seconds'] / 60:.1f} min"
            for k, v in report["parts"].items()) + f". Wall time = first start to last finish; the parts' "
            f"times add up to {report['sum_of_part_seconds'] / 60:.1f} min.", ""]
    lines += ["## Test metrics (Sartaj, held-out test split)", "",
             "| model | task | n | accuracy | balanced acc. | ROC-AUC | macro F1 | sensitivity | specificity |",
             "| --- | --- | ---: | --- | --- | --- | --- | --- | --- |"]
    for key, run in runs.items():
        t = run["test"]
        lines.append(f"| {run['model']} | {run['task']} | {t['n']} | {_fmt(t, 'accuracy')} | "
                     f"{_fmt(t, 'balanced_accuracy')} | {_fmt(t, 'roc_auc')} | {_fmt(t, 'macro_f1')} | "
                     f"{_fmt(t, 'sensitivity')} | {_fmt(t, 'specificity')} |")
    lines += ["", "## Targets", "", "| run | metric | target | value [95% CI] | met | missed by |",
              "| --- | --- | ---: | --- | --- | ---: |"]
    for row in report["targets"]:
        value = f"{row['value']} [{row['ci'][0]}, {row['ci'][1]}]" if "ci" in row else f"{row['value']}"
        lines.append(f"| {row['run']} | {row['metric']} | {row['target']} | {value} | "
                     f"{'yes' if row['met'] else 'NO'} | {row['missed_by'] or ''} |")
    lines += ["", "## External check: Navoneel yes/no (cross-dataset duplicates removed)", "",
              "| model | n | accuracy | balanced acc. | sensitivity | specificity | ROC-AUC |",
              "| --- | ---: | --- | --- | --- | --- | --- |"]
    for key, run in runs.items():
        if "external_navoneel" in run:
            e = run["external_navoneel"]
            lines.append(f"| {run['model']} | {e['n']} | {_fmt(e, 'accuracy')} | {_fmt(e, 'balanced_accuracy')} | "
                         f"{_fmt(e, 'sensitivity')} | {_fmt(e, 'specificity')} | {_fmt(e, 'roc_auc')} |")
    lines += ["", "## Efficiency (this machine)", "",
              "| model | task | params (trainable) | size MB | train s | epochs | ms/image b1 | ms/image b32 |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for key, run in runs.items():
        e = run["efficiency"]
        lines.append(f"| {run['model']} | {run['task']} | {e['params_total']:,} ({e['params_trainable']:,}) | "
                     f"{e['size_mb']} | {run['train_seconds']} | {len(run['train']['epoch_times'])} | "
                     f"{e['ms_per_image_batch1']} | {e['ms_per_image_batch32']} |")
    if "efficiency_remeasured" in report:
        lines += ["", f"Efficiency re-measured after training on a quieter machine "
                  f"(load {report['efficiency_remeasured']['load_avg_1min']}), median of 5 calls."]
    lines += ["", "## Steps", "", "| part | step | seconds | load avg (1 min) |", "| --- | --- | ---: | ---: |"]
    lines += [f"| {s.get('part', '')} | {s['step']} | {s['seconds']} | {s['load_avg_1min']} |" for s in report["steps"]]
    lines += ["", "## Settings", "", "```", json.dumps(report["settings"], indent=1, default=str), "```", "",
              "See benchmarks/README.md for the protocol, what limits the missed targets, and how to rerun.", ""]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder with the datasets (default $BRAINXPERT_DATA_DIR)")
    parser.add_argument("--only", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--seed", type=int, default=config.DEFAULTS["seed"])
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--original-epochs", type=int, default=10, help="epochs of the original course's models")
    parser.add_argument("--original-cnn-size", type=int, default=128,
                        help="image size of the original CNN (its protocol says 224; 128 fits the time budget)")
    parser.add_argument("--original-cnn-tasks", nargs="+", choices=TASKS, default=["binary"],
                        help="the original course's CNN was binary (Dense(1)); add multiclass if time allows")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (a few images, 1 epoch); not results")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--artifacts-dir", default=None, help="where the trained models go (default artifacts/benchmark)")
    parser.add_argument("--part", default=None,
                        help="write results_part_<PART>.json only (run parts in parallel, then --merge)")
    parser.add_argument("--merge", action="store_true", help="combine results_part_*.json into results.json/.md")
    parser.add_argument("--remeasure-efficiency", action="store_true",
                        help="time the saved models again (quiet machine) and rewrite results.json/.md")
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)
    args.artifacts_dir = args.artifacts_dir or str(config.artifacts_dir() / "benchmark")
    return args


def _setting_used(key: str, models_run) -> bool:
    """Whether a settings key matters for these models (a part's unrelated defaults are left out)."""
    if key.startswith("cnn_"):
        return "custom_cnn" in models_run
    if key.startswith("original_"):
        return any(m.startswith("original_") for m in models_run)
    if key in ("image_size", "mobilenet_alpha", "head_dropout", "head_epochs") or key.startswith("fine_tune"):
        return "mobilenet" in models_run
    return True


def merge_parts(out: Path) -> dict:
    """One report from parts run in parallel: wall time from the first start to the last finish."""
    parts = [json.loads(p.read_text()) for p in sorted(out.glob("results_part_*.json"))]
    if not parts:
        raise SystemExit(f"no results_part_*.json in {out}: run with --part first")
    report = dict(parts[0], runs={}, steps=[], settings={})
    for part in parts:
        report["runs"].update(part["runs"])
        report["steps"] += [dict(step, part=part["part"]) for step in part["steps"]]
        for key, value in part["settings"].items():  # keep the settings of the models a part ran
            if _setting_used(key, part["models"]):
                report["settings"].setdefault(key, {})[part["part"]] = value
    for key, values in report["settings"].items():  # one value, or {part: value} where parts differ
        if len({json.dumps(v) for v in values.values()}) == 1:
            report["settings"][key] = next(iter(values.values()))
    report["total_seconds"] = round(max(p["finished_at"] for p in parts) - min(p["started_at"] for p in parts), 1)
    report["parts"] = {p["part"]: {"models": p["models"], "tasks": sorted({r["task"] for r in p["runs"].values()}),
                                   "seconds": p["total_seconds"]} for p in parts}
    report["sum_of_part_seconds"] = round(sum(p["total_seconds"] for p in parts), 1)
    report["targets"] = check_targets(report["runs"], report["total_seconds"])
    report["finished_utc"] = max(p["finished_utc"] for p in parts)
    return report


def remeasure_efficiency(out: Path, artifacts_dir: str) -> dict:
    """Efficiency of the saved models again (timings under contention are not the models' speed)."""
    report = json.loads((out / "results.json").read_text())
    import keras

    for key, run in report["runs"].items():
        path = artifacts.run_item_path("model", key, artifacts_dir)
        model = keras.models.load_model(path)
        run["efficiency"] = evaluation.efficiency(model, saved_path=path, repeats=5, training_time=run["train_seconds"])
        print(f"{key}: {run['efficiency']['ms_per_image_batch1']} ms/image (batch 1)", flush=True)
    report["efficiency_remeasured"] = {"utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                                       "load_avg_1min": round(os.getloadavg()[0], 2)}
    return report


def write_report(report: dict, out: Path, stem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1, default=artifacts._plain))
    if not stem.startswith("results_part_"):
        (out / f"{stem}.md").write_text(write_markdown(report))
    print(f"wrote {out / stem}.json ({report['total_seconds']} s)")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.merge or args.remeasure_efficiency:
        report = merge_parts(args.out) if args.merge else remeasure_efficiency(args.out, args.artifacts_dir)
        write_report(report, args.out, "results")
        return 0
    started_at = time.time()
    clock = Clock()
    defaults = dict(config.DEFAULTS)
    limit = None
    if args.quick:
        defaults.update(cnn_epochs=1, head_epochs=1, fine_tune_epochs=1)
        args.original_epochs, args.n_boot, limit = 1, 50, 64
    weights = models.resolve_mobilenet_weights(defaults["mobilenet_alpha"])
    args.split_df = splits.load_split()
    folder = datasets.dataset_dir("sartaj", args.data_dir)
    start = time.perf_counter()
    sizes = {"mobilenet": defaults["image_size"], "original_mobilenet": 224, "custom_cnn": defaults["cnn_image_size"],
             "original_cnn": args.original_cnn_size}
    data = {s: sartaj_data(args.split_df, folder, s, limit, args.seed) for s in sorted({sizes[m] for m in args.only})}
    for d in data.values():
        for ds in (d[("multiclass", s)] for s in ("train", "val", "test")):
            for _ in ds:  # decode + cache now, so training times do not include decoding
                pass
    nav = {s: navoneel_data(s, args.data_dir, limit) for s in data} if "binary" in args.tasks else {}
    clock.step("decode + resize images (all sizes)", start)
    runs = {}
    for name in args.only:
        size = sizes[name]
        if name in ("mobilenet", "original_mobilenet"):
            trained = fit_transfer(name, args.tasks, data[size], defaults, weights, size, args, clock)
        else:
            tasks = [t for t in args.tasks if name != "original_cnn" or t in args.original_cnn_tasks]
            trained = {task: fit_cnn(name, task, data[size], defaults, size, args, clock) for task in tasks}
        for task, (model, result, seconds) in trained.items():
            runs[f"{name}_{task}"] = assess(f"{name}_{task}", model, result, seconds, task, data[size],
                                            nav.get(size), args, clock)
    total = round(time.perf_counter() - clock.start, 1)
    settings = {k: v for k, v in defaults.items()}
    settings.update(original_epochs=args.original_epochs, original_cnn_size=args.original_cnn_size,
                    original_cnn_tasks=args.original_cnn_tasks,
                    n_boot=args.n_boot, quick=args.quick)
    report = {"seed": args.seed, "split": "data/splits/sartaj_split_seed0.csv", "settings": settings,
              "machine": machine_info(), "total_seconds": total, "steps": clock.steps,
              "targets": check_targets(runs, total), "runs": runs, "part": args.part, "models": args.only,
              "started_at": started_at, "finished_at": time.time(),
              "finished_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
    stem = "results_quick" if args.quick else f"results_part_{args.part}" if args.part else "results"
    write_report(report, args.out, stem)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
