"""The published layout's utils.py: the helpers a user calls from a notebook or a script of their
own, re-exported from where they live (labench.nets.models, labench.compute.data, labench.store.files,
labench.compute.memory, labench.errors). Nothing inside the project imports this module.

    python utils.py class-index     # rebuild imagenet_class_index.json from installed packages
"""
from labench.compute.data import CLASS_INDEX_PATH, class_names, load_dataset, write_class_index  # noqa: F401
from labench.errors import UserError, run_cli  # noqa: F401
from labench.store.files import atomic_path, load_npy, save_npy, save_tensor, upsert_csv_row  # noqa: F401
from labench.spec.identity import OutputId  # noqa: F401
from labench.compute.memory import auto_rows  # noqa: F401
from labench.nets.models import (FastPath, Normalize, exact_model, load_model, resolve_device,  # noqa: F401
                            with_speed_modes)
from saliency import probability_model  # noqa: F401

if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["class-index"]:
        print(f"wrote {write_class_index()}")
    else:
        print(__doc__)
