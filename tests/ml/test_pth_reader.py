"""ml.pth_reader: legacy torch.save files read without torch, and nothing in a file can run code."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from ml.pretrained import imagenet_pth
from ml.pth_reader import PthError, read_pth
from tests.fixtures.pth import Strided, calling_pickle, legacy_pth_bytes, write_legacy_pth

LITE0_TENSORS = 296  # 4,694,024 values with the classifier, plus 49 num_batches_tracked counters


@pytest.fixture(scope="module")
def lite0_bytes() -> bytes:
    return imagenet_pth(0).read_bytes()


def test_reads_back_known_tensors_views_and_offsets(tmp_path):
    rng = np.random.default_rng(0)
    conv = rng.standard_normal((3, 2, 3, 3)).astype("float32")
    base = rng.standard_normal((4, 6)).astype("float32")
    flat = base.ravel()
    state = {
        "conv.weight": conv,
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        # A transposed tensor (column-major strides) and one that starts mid-storage with a step.
        "transposed": Strided(base, offset=0, size=(6, 4), stride=(1, 6)),
        "sliced": Strided(base, offset=7, size=(2, 3), stride=(6, 2)),
    }
    read = read_pth(write_legacy_pth(tmp_path / "known.pth", state))
    assert list(read) == list(state)
    np.testing.assert_array_equal(read["conv.weight"], conv)
    assert read["bn.num_batches_tracked"].dtype == np.int64 and int(read["bn.num_batches_tracked"]) == 7
    np.testing.assert_array_equal(read["transposed"], base.T)
    expected = np.array([[flat[7 + 6 * i + 2 * j] for j in range(3)] for i in range(2)])
    np.testing.assert_array_equal(read["sliced"], expected)
    assert all(a.flags.writeable and a.flags.owndata for a in read.values())


def test_reads_the_lite0_imagenet_file():
    state = read_pth(imagenet_pth(0))
    assert len(state) == LITE0_TENSORS
    assert next(iter(state)) == "_conv_stem.weight" and state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    values = [a for k, a in state.items() if not k.endswith("num_batches_tracked")]
    assert sum(a.size for a in values) == 4_694_024
    assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in values)
    assert all((state[k] >= 0).all() for k in state if k.endswith("running_var"))  # some channels died


@pytest.mark.parametrize(
    ("module", "name"), [("os", "system"), ("builtins", "eval"), ("builtins", "exec"), ("posix", "system")]
)
def test_a_pickle_that_calls_anything_else_is_refused_and_runs_nothing(tmp_path, module, name):
    marker = tmp_path / "ran"
    shell, python = f"touch {marker}", f"open({str(marker)!r}, 'w').write('ran')"
    argument = shell if name == "system" else python
    hostile = legacy_pth_bytes(
        {"w": np.zeros(2, "float32")}, state_pickle=calling_pickle(module, name, argument)
    )
    path = tmp_path / "hostile.pth"
    path.write_bytes(hostile)
    with pytest.raises(PthError) as info:
        read_pth(path)
    assert info.value.code == "refused_global"
    assert f"{module}.{name}" in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_the_hostile_payload_is_live_so_the_refusal_test_means_something(tmp_path):
    # The same bytes through a plain unpickler do run code: what read_pth refuses is real.
    marker = tmp_path / "ran"
    pickle.loads(calling_pickle("builtins", "exec", f"open({str(marker)!r}, 'w').write('ran')"))
    assert marker.read_text() == "ran"


def test_a_hostile_first_pickle_is_refused_before_the_magic_number(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "hostile.pth"
    path.write_bytes(calling_pickle("builtins", "exec", f"open({str(marker)!r}, 'w').write('ran')"))
    with pytest.raises(PthError, match="builtins.exec") as info:
        read_pth(path)
    assert info.value.code == "refused_global" and not marker.exists()


@pytest.mark.parametrize("keep", [0, 100, 40_000, 5_000_000, -1])
def test_a_truncated_file_is_a_clean_error(tmp_path, lite0_bytes, keep):
    # 0: empty; 100 / 40,000: inside the pickles; 5 MB: inside the storages; -1: one byte short.
    path = tmp_path / "efficientnet-lite0.pth"  # no hash in the name, so the cut itself is what is found
    path.write_bytes(lite0_bytes[:keep])
    with pytest.raises(PthError, match="truncated") as info:
        read_pth(path)
    assert info.value.code == "truncated" and str(path) in str(info.value)


def test_a_sha256_that_disagrees_with_the_name_is_refused(tmp_path, lite0_bytes):
    path = tmp_path / "efficientnet-lite0-deadbeef.pth"
    path.write_bytes(lite0_bytes)
    with pytest.raises(PthError, match="deadbeef") as info:
        read_pth(path)
    assert info.value.code == "checksum"
    renamed = path.rename(tmp_path / "efficientnet-lite0-57934424.pth")
    assert len(read_pth(renamed)) == LITE0_TENSORS


def test_a_tensor_reaching_past_its_storage_is_refused(tmp_path):
    base = np.arange(24, dtype="float32")
    state = {"w": Strided(base, offset=20, size=(2, 3), stride=(3, 1))}  # last element 25 of 24
    with pytest.raises(PthError, match="past its storage") as info:
        read_pth(write_legacy_pth(tmp_path / "bad.pth", state))
    assert info.value.code == "malformed"


@pytest.mark.parametrize(
    ("size", "stride"),
    [
        ((4096, 4096), (0, 0)),  # one stored float repeated 16 million times (64 MB from a tiny file)
        ((4096, 4096), (1, 1)),  # overlapping rows: each a step along the same 8,191 floats
    ],
)
def test_a_tensor_may_not_make_more_elements_than_its_storage_holds(tmp_path, size, stride):
    base = np.arange(8191, dtype="float32")
    path = write_legacy_pth(tmp_path / "tiny.pth", {"w": Strided(base, offset=0, size=size, stride=stride)})
    assert path.stat().st_size < 40_000
    with pytest.raises(PthError, match="makes 16777216 elements from a storage of 8191") as info:
        read_pth(path)
    assert info.value.code == "malformed"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"PK\x03\x04" + b"\x00" * 100, "zip_format"),
        (pickle.dumps(12345, 2) + pickle.dumps(1001, 2), "not_torch"),
        (b"\x00\x01garbage" * 10, "malformed"),
    ],
)
def test_other_files_are_named_for_what_they_are(tmp_path, content, code):
    path = tmp_path / "other.pth"
    path.write_bytes(content)
    with pytest.raises(PthError) as info:
        read_pth(path)
    assert info.value.code == code and "\n" not in str(info.value)


def test_a_missing_file_is_unreadable(tmp_path: Path):
    with pytest.raises(PthError) as info:
        read_pth(tmp_path / "nope.pth")
    assert info.value.code == "unreadable"
