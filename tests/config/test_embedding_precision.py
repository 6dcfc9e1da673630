"""EMBEDDING_PRECISION=auto (the default) picks int8 where the CPU has int8 dot-product instructions,
and the int8 export's calibration photos follow the choice; tests themselves run float."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from ml.cpu_int8 import has_int8_dot_product

PRINT = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([s.EMBEDDING_PRECISION_SETTING, s.EMBEDDING_PRECISION, s.INT8_CALIBRATION_PHOTOS]))"
)


def _settings(**env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("EMBEDDING_PRECISION", "INT8_CALIBRATION_PHOTOS")
    }
    environ.update(DJANGO_SETTINGS_MODULE="config.settings.base", **env)
    return subprocess.run(
        [sys.executable, "-c", PRINT], env=environ, capture_output=True, text=True, timeout=120
    )


def test_the_default_follows_the_cpu() -> None:
    done = _settings()
    assert done.returncode == 0, done.stderr[-2000:]
    int8 = has_int8_dot_product()
    assert json.loads(done.stdout.splitlines()[-1]) == [
        "auto",
        "int8" if int8 else "float",
        250 if int8 else 0,
    ]


@pytest.mark.parametrize(("value", "photos"), [("int8", 250), ("float", 0)])
def test_a_set_precision_wins_and_its_calibration_photos_follow(value: str, photos: int) -> None:
    done = _settings(EMBEDDING_PRECISION=value)
    assert json.loads(done.stdout.splitlines()[-1]) == [value, value, photos]
    assert (
        json.loads(
            _settings(EMBEDDING_PRECISION=value, INT8_CALIBRATION_PHOTOS="40").stdout.splitlines()[-1]
        )[2]
        == 40
    )


def test_exports_behind_tf_serving_make_no_int8_file_by_default() -> None:
    # TF Serving serves the float files: quantizing for it would only slow every export.
    done = _settings(EMBEDDING_PRECISION="int8", TF_SERVING_TARGET="127.0.0.1:8500")
    assert json.loads(done.stdout.splitlines()[-1])[2] == 0


def test_an_unknown_precision_is_refused() -> None:
    done = _settings(EMBEDDING_PRECISION="fast")
    assert done.returncode != 0 and "EMBEDDING_PRECISION must be 'auto', 'int8' or 'float'" in done.stderr


def test_tests_run_the_float_model() -> None:
    assert settings.EMBEDDING_PRECISION == "float" and settings.INT8_CALIBRATION_PHOTOS == 0


def test_a_batch_size_below_one_is_refused() -> None:
    done = _settings(LITERT_BATCH_SIZE="0")
    assert done.returncode != 0 and "LITERT_BATCH_SIZE must be at least 1" in done.stderr
