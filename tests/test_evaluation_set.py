"""The published evaluation set: its checksum file (data/evaluation_set.json), the provenance
generate_pt.py records beside the cache, and `generate_pt.py --verify`. Fake sets of a few
224x224 PNGs stand in for the real one; hashes are recomputed here with hashlib and PIL."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import PUBLISHED_SET, ROOT, load_script
from labench.compute.data import (CHECKSUMS_PATH, build_dataset, cached_pixels, describe_evaluation_set, load_dataset,
                          read_checksums, write_checksums)

LABELS = [5, 17, 999, 0, 17]


def png_digest(path):
    """The oracle: SHA-256 of the PNG's decoded RGB bytes, first 32 hex digits."""
    return hashlib.sha256(np.asarray(Image.open(path).convert("RGB")).tobytes()).hexdigest()[:32]


def write_set(folder, n=len(LABELS), labels=LABELS, seed=0):
    """n random 224x224 PNGs and their labels, the published layout (labels beside the PNGs)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    torch.save(torch.tensor(labels[:n]), folder / "label_batch.pt")
    return folder


@pytest.fixture
def published(tmp_path):
    """(PNG folder, checksum file) of a fake published set of five images."""
    pngs = write_set(tmp_path / "published")
    return pngs, write_checksums(pngs, path=tmp_path / "evaluation_set.json", source="a test set")


def verify(data_dir, checksums, capsys):
    """(exit status, the one line printed) of `generate_pt.py --verify`."""
    script = load_script("generate_pt")
    code = 0
    try:
        script.main(["--verify", "--data_dir", str(data_dir), "--checksums", str(checksums)])
    except SystemExit as stop:
        code = stop.code
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    return code, out[0]


def provenance(data_dir):
    return json.loads((data_dir / "provenance.json").read_text())


def test_checksum_file_holds_pixel_digests_and_labels(published):
    pngs, path = published
    sums = json.loads(path.read_text())
    assert sums["images"] == [png_digest(pngs / f"{i}.png") for i in range(5)]
    assert sums["labels"] == LABELS and sums["image_shape"] == [224, 224, 3]
    assert sums["labels_sha256"] == hashlib.sha256(np.array(LABELS, dtype="<i8").tobytes()).hexdigest()


def test_cache_of_the_whole_set_verifies(published, tmp_path, capsys):
    pngs, sums = published
    build_dataset(pngs, tmp_path / "data", checksums=sums)
    record = provenance(tmp_path / "data")
    assert record["published_evaluation_set"] == "all" and record["first_difference"] is None and record["images"] == 5
    code, line = verify(tmp_path / "data", sums, capsys)
    assert code == 0 and "the published evaluation set: all 5 images with their labels" in line


def test_a_leading_part_of_the_set_is_recorded_and_passes(published, tmp_path, capsys):
    pngs, sums = published
    part = tmp_path / "part"
    part.mkdir()
    for i in range(3):
        shutil.copy(pngs / f"{i}.png", part)
    torch.save(torch.tensor(LABELS[:3]), part / "label_batch.pt")
    build_dataset(part, tmp_path / "data", checksums=sums)
    assert provenance(tmp_path / "data")["published_evaluation_set"] == "first 3"
    code, line = verify(tmp_path / "data", sums, capsys)
    assert code == 0 and "the first 3 of the 5 images of the published evaluation set" in line


def test_first_differing_image_is_named(published, tmp_path, capsys):
    pngs, sums = published
    changed = tmp_path / "changed"
    shutil.copytree(pngs, changed)
    for i in (3, 4):  # one value of one pixel, in images 3 and 4: image 3 is named
        pixels = np.asarray(Image.open(changed / f"{i}.png")).copy()
        pixels[100, 7, 1] ^= 1
        Image.fromarray(pixels).save(changed / f"{i}.png")
    build_dataset(changed, tmp_path / "data", checksums=sums)
    record = provenance(tmp_path / "data")
    assert record["published_evaluation_set"] == "no" and record["first_difference"] == "image 3 differs from the published 3.png"
    code, line = verify(tmp_path / "data", sums, capsys)
    assert code == 1 and line.endswith("not the published evaluation set: image 3 differs from the published 3.png "
                                       f"(checked against {sums})")


def test_first_differing_label_is_named_before_a_later_image(published, tmp_path, capsys):
    pngs, sums = published
    pngs.joinpath("4.png").write_bytes(pngs.joinpath("0.png").read_bytes())  # image 4 differs too
    torch.save(torch.tensor([5, 16, 999, 0, 17]), pngs / "label_batch.pt")
    build_dataset(pngs, tmp_path / "data", checksums=sums)
    code, line = verify(tmp_path / "data", sums, capsys)
    assert code == 1 and "label 1 is 16, the published label is 17" in line
    assert provenance(tmp_path / "data")["first_difference"] == "label 1 is 16, the published label is 17"


def test_more_images_than_the_set_or_another_set_is_not_it(published, tmp_path, capsys):
    pngs, sums = published
    longer = tmp_path / "longer"
    shutil.copytree(pngs, longer)
    shutil.copy(pngs / "0.png", longer / "5.png")
    torch.save(torch.tensor([*LABELS, 1]), longer / "label_batch.pt")
    build_dataset(longer, tmp_path / "data", checksums=sums)
    assert verify(tmp_path / "data", sums, capsys) == (
        1, f"the cache in {tmp_path / 'data'} is not the published evaluation set: image 5 is beyond the published "
           f"set's 5 images (checked against {sums})")
    build_dataset(write_set(tmp_path / "other", seed=1), tmp_path / "data", checksums=sums)
    assert provenance(tmp_path / "data")["first_difference"] == "image 0 differs from the published 0.png"


def test_re_encoded_pngs_and_re_saved_labels_still_verify(published, tmp_path, capsys):
    """The digests cover decoded pixels and label values, not file bytes."""
    pngs, sums = published
    copy = tmp_path / "re-encoded"
    copy.mkdir()
    for i in range(5):
        Image.open(pngs / f"{i}.png").save(copy / f"{i}.png", compress_level=0)
        assert (copy / f"{i}.png").read_bytes() != (pngs / f"{i}.png").read_bytes()
    torch.save(torch.tensor(LABELS, dtype=torch.int32), copy / "label_batch.pt")
    build_dataset(copy, tmp_path / "data", checksums=sums)
    assert verify(tmp_path / "data", sums, capsys)[0] == 0


def test_cached_values_round_back_to_their_pixels():
    pixels = torch.arange(256, dtype=torch.uint8).view(1, 16, 16).expand(3, 16, 16)
    for dtype in (torch.float32, torch.float64):
        image = pixels.to(dtype) / 255
        assert np.array_equal(cached_pixels(image), pixels.permute(1, 2, 0).numpy())


def test_report_sentence_describes_the_images_a_run_used(published, tmp_path):
    pngs, sums = published
    build_dataset(pngs, tmp_path / "data", checksums=sums)
    assert describe_evaluation_set(tmp_path / "data", 2, sums) == (
        f"The images are the first 2 of the 5 images of the published evaluation set, with their labels "
        f"(checked against {sums}).")
    assert "not checked" in describe_evaluation_set(tmp_path / "data", None, tmp_path / "missing.json")


def test_missing_or_damaged_checksum_file(published, tmp_path, capsys):
    pngs, sums = published
    build_dataset(pngs, tmp_path / "data", checksums=tmp_path / "missing.json")
    assert provenance(tmp_path / "data")["published_evaluation_set"] == "unknown"
    damaged = json.loads(sums.read_text())
    damaged["labels"][0] += 1  # no longer matches labels_sha256
    (tmp_path / "damaged.json").write_text(json.dumps(damaged))
    script = load_script("generate_pt")
    from labench.errors import UserError

    with pytest.raises(UserError, match="is damaged"):
        script.main(["--verify", "--data_dir", str(tmp_path / "data"), "--checksums", str(tmp_path / "damaged.json")])
    with pytest.raises(UserError, match="drop --png_dir"):
        script.main(["--verify", "--png_dir", str(pngs)])


def test_shipped_checksum_file_is_small_and_consistent():
    assert CHECKSUMS_PATH.stat().st_size < 60_000
    sums = read_checksums()
    assert len(sums["images"]) == len(sums["labels"]) == 1000 and sums["image_shape"] == [224, 224, 3]


@pytest.mark.skipif(PUBLISHED_SET is None, reason="LABENCH_PUBLISHED_SET names no local copy of the published set")
def test_shipped_checksum_file_matches_the_published_images(tmp_path, capsys):
    sums = read_checksums()
    labels = torch.load(PUBLISHED_SET / "label_batch.pt", weights_only=True)
    assert sums["labels"] == labels.tolist()
    first = tmp_path / "first50"
    first.mkdir()
    for i in range(50):
        shutil.copy(PUBLISHED_SET / "visualized_imgs" / f"{i}.png", first)
        assert png_digest(first / f"{i}.png") == sums["images"][i]
    torch.save(labels[:50].clone(), first / "label_batch.pt")
    build_dataset(first, tmp_path / "data")
    assert provenance(tmp_path / "data")["published_evaluation_set"] == "first 50"
    code, line = verify(tmp_path / "data", CHECKSUMS_PATH, capsys)
    assert code == 0 and "the first 50 of the 1000 images" in line
    assert len(load_dataset(tmp_path / "data")[1]) == 50
