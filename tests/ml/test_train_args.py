"""One definition of the training options for both command lines."""

from __future__ import annotations

import argparse

from django.core.management import load_command_class

from ml.train import _parser
from ml.train_args import add_training_arguments, config_from_args, parse_weights
from ml.train_config import TrainConfig


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings}


def test_both_command_lines_offer_the_same_training_options() -> None:
    shared = argparse.ArgumentParser()
    add_training_arguments(shared, weights_default=None)
    django_parser = load_command_class("search", "train").create_parser("manage.py", "train")
    assert _options(shared) <= _options(_parser())
    assert _options(shared) <= _options(django_parser)


def test_options_map_onto_the_config() -> None:
    parser = argparse.ArgumentParser()
    add_training_arguments(parser, weights_default="imagenet")
    config = config_from_args(
        parser.parse_args(["--epochs", "3", "--no-augment", "--pooling", "avg"]), output_dir="out"
    )
    assert (config.epochs, config.augment, config.pooling, config.weights) == (3, False, "avg", "imagenet")
    defaults = config_from_args(parser.parse_args(["--weights", "none"]), output_dir="out")
    expected = TrainConfig(weights=None, output_dir="out")
    assert defaults == expected
    assert parse_weights("NONE") is None and parse_weights("w.h5") == "w.h5"
