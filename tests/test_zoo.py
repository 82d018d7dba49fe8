"""The zoo table is the single source: README table, model cards, parameter counts and GFLOPs all agree with it."""

import re
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from hf_i3d import I3DConfig, I3DForVideoClassification
from hf_i3d.configuration_inception_i3d import InceptionI3DConfig
from hf_i3d.flops import count_gflops, zoo_view_shape
from hf_i3d.modelcard import evaluation_protocol, zoo_card_text
from hf_i3d.modeling_inception_i3d import InceptionI3DForVideoClassification
from hf_i3d.zoo import ZOO, canonical_name, kinetics400_labels, zoo_table_markdown

ROOT = Path(__file__).resolve().parents[1]


def meta_model(entry):
    with torch.device("meta"):
        if entry.model_type == "i3d":
            return I3DForVideoClassification(I3DConfig(**entry.config, num_labels=400))
        return InceptionI3DForVideoClassification(InceptionI3DConfig(**entry.config, num_labels=400))


@pytest.mark.parametrize("name", list(ZOO))
def test_params_and_gflops_in_the_table_are_those_of_the_built_model(name):
    entry = ZOO[name]
    model = meta_model(entry)
    assert sum(p.numel() for p in model.parameters()) == entry.params
    assert round(count_gflops(model, zoo_view_shape(entry)), 2) == entry.gflops


def test_gflops_match_the_published_conv_counts():
    # docs/mmaction2-port.md §3: conv+fc MACs of R50-I3D are 33.13G at 32x224x224 and 43.27G at 32x256x256; R34 60.15G at 224.
    assert round(count_gflops(meta_model(ZOO["i3d-r50-kinetics400"]), (1, 32, 3, 224, 224)), 2) == 33.13
    assert round(count_gflops(meta_model(ZOO["i3d-r34-kinetics400"]), (1, 32, 3, 224, 224)), 2) == 60.15


def test_readme_zoo_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- zoo-table:start -->\n(.*?)\n<!-- zoo-table:end -->", readme, re.S)
    assert match, "README.md lost its zoo-table markers"
    assert match.group(1).strip() == zoo_table_markdown().strip(), (
        "README zoo table is stale: paste the output of `hf-i3d zoo` between the markers"
    )


@pytest.mark.parametrize("name", list(ZOO))
def test_committed_model_card_parses_strictly_and_carries_the_table_numbers(name):
    path = ROOT / "model_cards" / f"{name}.md"
    assert path.read_text(encoding="utf-8") == zoo_card_text(name), (
        f"{path} is stale: run `python -m hf_i3d.modelcard model_cards`"
    )
    card = ModelCard.load(path, ignore_metadata_errors=False)
    model_name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    entry = ZOO[name]
    assert model_name == name
    by_metric = {r.metric_config: r for r in results}
    assert by_metric["top1"].metric_value == entry.top1 and by_metric["top5"].metric_value == entry.top5
    assert by_metric["top1"].dataset_name == "Kinetics-400" and by_metric["top1"].dataset_split == entry.eval_split
    assert by_metric["top1"].metric_args == evaluation_protocol(entry)
    assert card.data.pipeline_tag == "video-classification" and card.data.license == "apache-2.0"
    text = card.text
    for section in ("## Usage", "## Architecture", "## Data preprocessing", "## Training recipe",
                    "## Intended use and limitations", "## Provenance and licence", "## Citation"):
        assert section in text, section
    assert f"{entry.params:,}" in text


def test_thirty_view_protocol_of_the_seed_models():
    assert evaluation_protocol(ZOO["i3d-r50-kinetics400"])["views"] == 30
    assert evaluation_protocol(ZOO["i3d-r50-dense-kinetics400"])["views"] == 30  # 10 positions x 3 crops
    assert evaluation_protocol(ZOO["i3d-r50-kinetics400"])["averaging"] == "score"  # 2020 tools/test.py default


def test_aliases_resolve_case_insensitively():
    assert canonical_name("I3D_R50_VIDEO_32x2x1_100e_kinetics400_rgb") == "i3d-r50-video-kinetics400"
    assert canonical_name("i3d_r50_lazy_32x2x1_100e_kinetics400_rgb") == "i3d-r50-fast-kinetics400"
    assert canonical_name("resnet50") is None
    labels = kinetics400_labels()
    assert len(labels) == 400 and labels[0] == "abseiling" and labels[-1] == "zumba"


def test_every_entry_keeps_its_recorded_fields():
    """Every field of every entry, in table order, as ``dataclasses.asdict`` gave it when the entries were first
    written out (``fixtures/zoo/entries.json``): the shared-field helpers of the table change no value. The
    ``repr`` keeps tuples apart from lists. Regenerate only for a deliberate change of the table."""
    import dataclasses
    import json

    recorded = json.loads((Path(__file__).parent / "fixtures" / "zoo" / "entries.json").read_text())
    assert [item["fields"]["name"] for item in recorded] == list(ZOO)
    for item, entry in zip(recorded, ZOO.values()):
        fields = dataclasses.asdict(entry)
        assert json.loads(json.dumps(fields)) == item["fields"], entry.name
        assert repr(fields) == item["repr"], entry.name
