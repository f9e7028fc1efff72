"""Wall time of the data layer on the real datasets: scan, duplicate groups, split (and the pipeline).

    python benchmarks/bench_data.py [--data-dir ../shared/datasets] [--pipeline]

Prints one line per step. Reads the datasets only; writes nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import pandas as pd

from brainxpert_utils import datasets, dedup, splits
from brainxpert_utils.scan import scan_folder


def timed(label: str, func, *args, **kwargs):
    """Run ``func`` and print how long it took."""
    start = time.perf_counter()
    result = func(*args, **kwargs)
    print(f"{label:<46} {time.perf_counter() - start:7.2f} s")
    return result


def pipeline_pass(split: pd.DataFrame, folder, image_size: int) -> int:
    """One full pass over train+val+test at ``image_size`` (decode, resize, batch); number of images."""
    from brainxpert_utils import pipeline

    ds = pipeline.make_dataset(split, folder, None, image_size=image_size, shuffle=False, cache=False, verbose=False)
    return sum(int(y.shape[0]) for _, y in ds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="folder holding the dataset folders")
    parser.add_argument("--pipeline", action="store_true", help="also time one tf.data pass at 224 px")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    folders = {name: datasets.dataset_dir(name, args.data_dir) for name in ("sartaj", "navoneel")}
    scans = {name: timed(f"scan {name} (with fingerprints)", scan_folder, folder, dataset=name,
                         fingerprints=True) for name, folder in folders.items()}
    sartaj_groups = timed("duplicate groups, sartaj alone", dedup.find_duplicate_groups,
                          folders["sartaj"], scans["sartaj"])
    both = pd.concat(scans.values(), ignore_index=True)
    groups = timed("duplicate groups, sartaj + navoneel together", dedup.find_duplicate_groups, folders, both)
    split = timed("grouped stratified split, sartaj", splits.make_split, scans["sartaj"], sartaj_groups)
    timed("check_split (sha256 of the used files)", splits.check_split, split, folders["sartaj"])
    print(f"sartaj: {len(scans['sartaj'])} files, {sartaj_groups['group'].nunique()} distinct images; "
          f"both: {len(both)} files, {groups['group'].nunique()} groups")
    if args.pipeline:
        n = timed("tf.data pass over the sartaj split at 224 px", pipeline_pass, split, folders["sartaj"], 224)
        print(f"  ({n} images)")


if __name__ == "__main__":
    main()
