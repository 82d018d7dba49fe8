"""hf_i3d._validation (the one wording of "not one of the choices" / "not a positive int") and hf_i3d.zoo.label_maps
(the one id2label / label2id builder): exact messages, the values they accept, and that the validator module stays at
the bottom of the package (it imports nothing from hf_i3d)."""

import ast
from pathlib import Path

import numpy as np
import pytest

import hf_i3d
from hf_i3d._validation import check_choice, check_positive_int, is_positive_int
from hf_i3d.zoo import label_maps

PACKAGE = Path(hf_i3d.__file__).parent


def test_check_choice_names_the_field_the_choices_and_the_value():
    check_choice("modality", "video", ("video", "rawframes"))
    with pytest.raises(ValueError, match=r"^modality must be one of \('video', 'rawframes'\), got 'frames'$"):
        check_choice("modality", "frames", ("video", "rawframes"))


@pytest.mark.parametrize("value", [1, 7, np.int64(3)])
def test_positive_ints_pass(value):
    assert is_positive_int(value)
    check_positive_int("short_side", value)


@pytest.mark.parametrize("value", [0, -2, True, 2.0, "3", None])
def test_anything_else_is_refused_with_one_message(value):
    assert not is_positive_int(value)
    with pytest.raises(ValueError, match=rf"^short_side must be a positive int, got {value!r}$".replace("(", r"\(")):
        check_positive_int("short_side", value)


def test_optional_positive_int_lets_none_through_and_says_so():
    check_positive_int("max_views_per_batch", None, optional=True)
    with pytest.raises(ValueError, match=r"^max_views_per_batch must be a positive int or None, got 0$"):
        check_positive_int("max_views_per_batch", 0, optional=True)


def test_the_validator_imports_nothing_from_the_package():
    tree = ast.parse((PACKAGE / "_validation.py").read_text(encoding="utf-8"))
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [name for name in imported if name.startswith("hf_i3d") or name.startswith(".") or name == ""]
    assert all(node.level == 0 for node in ast.walk(tree) if isinstance(node, ast.ImportFrom))


def test_label_maps_are_inverse_in_label_id_order():
    maps = label_maps(("up", "down", "left"))
    assert maps == {"id2label": {0: "up", 1: "down", 2: "left"}, "label2id": {"up": 0, "down": 1, "left": 2}}
    assert label_maps([]) == {"id2label": {}, "label2id": {}}
