"""model.compile=true against the eager network: with the same weights, the same outputs on a fixed batch.

osal compiles in `osal.models.network.build_network` (conf/model/*.yaml: `compile`, `compile_options`) with
`nn.Module.compile` in place: the network keeps its type and state-dict keys, and calling it (`forward`: the
logits) runs the torch.compile'd graph, with the default backend (inductor, which on a CPU generates and builds
C++ with the machine's compiler). `forward_features` and `mc_dropout_logits` are plain methods and stay eager, as
build_network's docstring says (inference reads features eagerly). Each case compiles a network from scratch:
about 10 s with a warm inductor cache, up to a minute or more with a cold one, hence `slow`.
"""

import pytest
import torch
from torch._dynamo.utils import counters

from osal.build import build
from osal.models.network import Network

from conftest import compose_config

NUM_OUTPUTS = 5


def randomise_batch_norm(network, generator):
    """Running statistics and affine parameters away from (0, 1): eval-mode BatchNorm then really transforms."""
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(0.2 * torch.randn(c, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(c, generator=generator))
            module.weight.copy_(1.0 + 0.2 * torch.randn(c, generator=generator))
            module.bias.copy_(0.1 * torch.randn(c, generator=generator))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["small_cnn", "resnet18"])  # resnet18 at its configured width 64, on 8x8 inputs
def test_compiled_network_gives_the_eager_logits_in_eval_mode(model):
    torch._dynamo.reset()
    counters.clear()
    cfg = compose_config([f"model={model}"])
    assert cfg.model.compile is False  # the configs' default: eager
    torch.manual_seed(0)
    eager = build(cfg.model)(num_outputs=NUM_OUTPUTS)
    compiled = build(compose_config([f"model={model}", "model.compile=true"]).model)(num_outputs=NUM_OUTPUTS)

    # osal's compile path: the same module type, wrapped in place, the same state-dict keys
    assert type(compiled) is Network and compiled._compiled_call_impl is not None
    assert eager._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(eager.state_dict())
    with torch.no_grad():
        randomise_batch_norm(eager, torch.Generator().manual_seed(1))
    compiled.load_state_dict(eager.state_dict())
    eager.eval()
    compiled.eval()

    x = torch.randn(6, cfg.dataset.channels, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected_features, expected = eager.forward_features(x)
        logits = compiled(x)
        again = compiled(x)  # served by the compiled graph, no recompile
        features, features_logits = compiled.forward_features(x)

    # the compiled forward really was compiled: one whole graph, no graph break (which would run parts eagerly)
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"]
    assert expected.shape == (6, NUM_OUTPUTS) and expected.abs().max() > 0.1  # logits that are not all ~0
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(again, logits, rtol=1e-6, atol=1e-6)
    assert torch.equal(logits.argmax(dim=1), expected.argmax(dim=1))
    # the features osal's inference reads: eager on the compiled network too, hence exactly the eager ones
    assert torch.equal(features, expected_features) and torch.equal(features_logits, expected)
    torch.testing.assert_close(features_logits, logits, rtol=1e-4, atol=1e-4)
