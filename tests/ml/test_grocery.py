"""The one reader of the Grocery Store Dataset's layout, on a tiny generated checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.grocery import GroceryLayoutError, dataset_dir, iconic_items, read_classes, split_items


def _checkout(root: Path) -> Path:
    ds = root / "dataset"
    (ds / "iconic-images-and-descriptions" / "Fruit" / "Apple").mkdir(parents=True)
    (ds / "classes.csv").write_text(
        "Class Name (str),Class ID (int),Coarse Class Name (str),Coarse Class ID (int),"
        "Iconic Image Path (str),Product Description Path (str)\n"
        "Granny-Smith,0,Apple,0,/iconic-images-and-descriptions/Fruit/Apple/gs.jpg,/d/gs.txt\n"
        "Pink-Lady,1,Apple,0,/iconic-images-and-descriptions/Fruit/Apple/pl.jpg,/d/pl.txt\n"
    )
    (ds / "train.txt").write_text("train/Fruit/Apple/a.jpg, 0, 0\ntrain/Fruit/Apple/b.jpg, 1, 0\n")
    return ds


def test_reads_classes_splits_and_catalog_images(tmp_path: Path) -> None:
    ds = _checkout(tmp_path)
    assert dataset_dir(tmp_path) == dataset_dir(ds) == ds
    classes = read_classes(tmp_path)
    assert [(c.class_id, c.name, c.coarse_name) for c in classes] == [
        (0, "Granny-Smith", "Apple"),
        (1, "Pink-Lady", "Apple"),
    ]
    assert split_items(tmp_path, "train") == [
        (str(ds / "train/Fruit/Apple/a.jpg"), "Granny-Smith"),
        (str(ds / "train/Fruit/Apple/b.jpg"), "Pink-Lady"),
    ]
    assert iconic_items(tmp_path)[1] == (
        str(ds / "iconic-images-and-descriptions/Fruit/Apple/pl.jpg"),
        "Pink-Lady",
    )


def test_layout_errors_say_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(GroceryLayoutError, match="contains dataset/"):
        dataset_dir(tmp_path)
    _checkout(tmp_path)
    with pytest.raises(GroceryLayoutError, match="Unknown split"):
        split_items(tmp_path, "holdout")
    with pytest.raises(GroceryLayoutError, match="no split file"):
        split_items(tmp_path, "test")
