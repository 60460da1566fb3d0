"""Loading N city configs in one process, with and without the folder-wide ``registry.model_name`` check.

Run with ``.venv/bin/python benchmarks/config_load.py`` (``--cities 1000``; ``--explicit`` gives every city its own
``registry.model_name: "tip_usd_{city}"`` as ``airflow-ml init`` writes it, instead of the default's name). It
generates N copies of berlin's YAML and loads them all in one process, as a DagBag fill does (``--repeat`` times, the
first load of the files reported apart), once with ``config/loading.py: model_name_problems`` and once with it
replaced by a no-op; then one city's load with cold caches, what each DAG-processor child pays for its one file.
Run it from another checkout's folder to compare versions: it imports the package of the checkout it lives in.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's airflow_ml_provider, not the venv's editable install

from airflow_ml_provider.config import loading  # noqa: E402

CACHES = ("_TEXT_CACHE", "_NAME_CACHE", "_FOLDER_CACHE", "_defaults_cache")


def write_cities(folder: Path, cities: int, explicit: bool) -> list[str]:
    source = ROOT / "dags" / "configs"
    shutil.copy(source / "_defaults.yaml", folder / "_defaults.yaml")
    text = (source / "berlin.yaml").read_text()
    if explicit:
        text += 'registry:\n  model_name: "tip_usd_{city}"\n'
    names = [f"city{i:04d}" for i in range(cities)]
    for name in names:
        (folder / f"{name}.yaml").write_text(text.replace("berlin", name))
    return names


def clear_caches() -> None:
    for name in CACHES:
        getattr(loading, name, {}).clear()


def load_every_city(folder: Path) -> float:
    started = time.perf_counter()
    for city in loading.city_names(folder):
        loading.load_city_config(city, folder)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cities", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--explicit", action="store_true", help="every city sets registry.model_name itself")
    args = parser.parse_args()
    check = loading.model_name_problems
    with tempfile.TemporaryDirectory(prefix="config-load-") as tmp:
        folder = Path(tmp)
        names = write_cities(folder, args.cities, args.explicit)
        kind = "explicit names" if args.explicit else "default names"
        print(f"{args.cities} cities ({kind}), package from {ROOT}")
        for label, replacement in (("with the check", check), ("without it", lambda *_: [])):
            loading.model_name_problems = replacement
            clear_caches()
            first = load_every_city(folder)
            rest = min(load_every_city(folder) for _ in range(max(args.repeat - 1, 1)))
            print(
                f"  all cities {label}: first {first:.3f} s, then {rest:.3f} s ({rest / args.cities * 1e3:.2f} ms/city)"
            )
        for label, replacement in (("with the check", check), ("without it", lambda *_: [])):
            loading.model_name_problems = replacement
            singles = []
            for _ in range(args.repeat):
                clear_caches()
                started = time.perf_counter()
                loading.load_city_config(names[len(names) // 2], folder)
                singles.append(time.perf_counter() - started)
            print(f"  one city {label}, cold caches (a DAG-processor child's one file): {min(singles) * 1e3:.1f} ms")
        loading.model_name_problems = check


if __name__ == "__main__":
    main()
