"""The dev/test split of the shared YCB objects (bench/ycb_split.json): disjoint and complete."""

from __future__ import annotations

import json

from conftest import REPO, YCB_DIR, need_shared


def test_split_is_disjoint_and_covers_the_shared_objects():
    split = json.loads((REPO / "bench" / "ycb_split.json").read_text())
    dev, test = set(split["dev"]), set(split["test"])
    assert not dev & test and len(dev) == 12 and len(test) == 13
    folder = need_shared(YCB_DIR)
    assert dev | test == {p.name for p in folder.iterdir() if p.is_dir()}
