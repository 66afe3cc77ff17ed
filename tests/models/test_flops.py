"""count_flops against the multiply-accumulate counts papers publish."""

from __future__ import annotations

import pytest

from portaclass.models import create_model
from portaclass.models.flops import count_flops


@pytest.mark.parametrize("name,gmacs", [("resnet18", 1.814), ("mobilenet_v2", 0.30)])
def test_flops_match_published_counts(name, gmacs):
    model = create_model(name, 1000, (224, 224, 3))
    assert count_flops(model) / 1e9 == pytest.approx(gmacs, rel=0.02)


def test_flops_count_attention():
    small = count_flops(create_model("vit_tiny", 10, (32, 32, 3), depth=1))
    deeper = count_flops(create_model("vit_tiny", 10, (32, 32, 3), depth=2))
    # one block at 64 tokens, dim 192: 4 projections + 2 attention matmuls + MLP
    tokens, dim = 64, 192
    block = tokens * dim * dim * 4 + 2 * tokens * tokens * dim + 2 * tokens * dim * 4 * dim
    assert deeper - small == block
