"""The detector's low-temperature loss (Eq. 3-4) and the two modules' shapes."""

import functools

import pytest
import torch
import torch.nn.functional as F

from osal.models.modules import ClassifierModule, DetectorModule
from osal.models.network import build_network
from osal.models.resnet import resnet18_encoder
from osal.models.small_cnn import SmallCNNEncoder


def network_factory(in_channels=1, bottleneck_dim=None):
    encoder = functools.partial(SmallCNNEncoder, in_channels=in_channels, width=8)
    return functools.partial(build_network, encoder=encoder, bottleneck_dim=bottleneck_dim)


def module(cls, k=3, **kwargs):
    return cls(k, network_factory(), functools.partial(torch.optim.SGD, lr=0.1), None, **kwargs)


def logit_gradient(temperature, logits, target):
    logits = logits.clone().requires_grad_(True)
    F.cross_entropy(logits / temperature, target).backward()
    return logits.grad


def test_gradient_matches_eq4():
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.3]])
    target = torch.tensor([3])
    for t in (0.5, 1.0, 2.0):
        expected = (torch.softmax(logits / t, dim=1) - F.one_hot(target, 4)) / t
        assert torch.allclose(logit_gradient(t, logits, target), expected, atol=1e-6)


def test_lower_temperature_pushes_harder_on_undecided_examples():
    # an example whose true class (the unknown output) is not yet the largest activation
    logits = torch.tensor([[1.5, 0.2, -0.5, 1.0]])
    target = torch.tensor([3])
    norms = [logit_gradient(t, logits, target).norm().item() for t in (0.5, 1.0, 2.0)]
    assert norms[0] > norms[1] > norms[2]


def test_detector_has_k_plus_one_outputs_and_divides_by_t_in_the_loss_only():
    detector = module(DetectorModule, k=3)
    assert detector.temperature == 0.5
    x = torch.randn(4, 1, 8, 8)
    logits = detector(x)
    assert logits.shape == (4, 4)
    target = torch.tensor([0, 1, 2, 3])
    assert torch.allclose(detector.loss(logits, target), F.cross_entropy(logits / 0.5, target))


def test_classifier_has_k_outputs_and_plain_cross_entropy():
    classifier = module(ClassifierModule, k=3)
    logits = classifier(torch.randn(2, 1, 8, 8))
    assert logits.shape == (2, 3)
    target = torch.tensor([0, 2])
    assert torch.allclose(classifier.loss(logits, target), F.cross_entropy(logits, target))


def test_temperature_must_be_positive():
    with pytest.raises(ValueError):
        module(DetectorModule, temperature=0.0)


def test_bottleneck_head_reproduces_the_authors_2d_features():
    net = network_factory(bottleneck_dim=2)(num_outputs=5)
    features, logits = net.forward_features(torch.randn(3, 1, 8, 8))
    assert features.shape == (3, 2) and logits.shape == (3, 5)


@pytest.mark.parametrize("size, channels", [(32, 3), (28, 1), (64, 3)])
def test_resnet18_takes_any_input_size(size, channels):
    encoder = resnet18_encoder(in_channels=channels, width=8)
    assert encoder(torch.randn(2, channels, size, size)).shape == (2, encoder.out_dim)


def test_resnet18_at_full_width_has_the_standard_parameter_count():
    net = build_network(functools.partial(resnet18_encoder, in_channels=3), num_outputs=10)
    n = sum(p.numel() for p in net.parameters())
    assert 11_100_000 < n < 11_200_000  # CIFAR ResNet18: about 11.17 M parameters


def test_binary_detector_learns_known_against_unknown():
    from osal.models.modules import BinaryDetectorModule
    detector = module(BinaryDetectorModule, k=3)
    logits = detector(torch.randn(4, 1, 8, 8))
    assert logits.shape == (4, 2)
    targets = torch.tensor([0, 2, 3, 3])  # classes 0..2 are known, 3 (= K) is the invalid set
    expected = F.cross_entropy(logits / 0.5, torch.tensor([0, 0, 1, 1]))
    assert torch.allclose(detector.loss(logits, targets), expected)


def test_mc_dropout_samples_differ_but_batchnorm_stays_in_eval():
    net = network_factory()(num_outputs=3)
    net.dropout = torch.nn.Dropout(0.5)
    net.eval()
    x = torch.randn(4, 1, 8, 8)
    samples = net.mc_dropout_logits(x, 6)
    assert samples.shape == (6, 4, 3)
    assert not torch.allclose(samples[0], samples[1])
    assert not net.training  # eval mode kept: BatchNorm uses running statistics
    assert torch.allclose(net(x), net(x))  # and plain forward stays deterministic


def test_scheduler_none_gives_a_constant_learning_rate():
    from hydra.utils import instantiate

    from conftest import compose_config
    cfg = compose_config(["scheduler=none"])
    classifier = instantiate(cfg.classifier)(num_known=3)
    assert isinstance(classifier.configure_optimizers(), torch.optim.SGD)
    stepped = instantiate(compose_config([]).classifier)(num_known=3).configure_optimizers()
    assert isinstance(stepped["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)


@pytest.mark.slow
def test_compile_option_compiles_the_training_forward_and_a_run_completes(tmp_path):
    from osal.build import build
    from osal.loop.experiment import Experiment

    from conftest import FAST, compose_config

    overrides = FAST + ["model.compile=true", "+model.compile_options.backend=eager", "al.rounds=1",
                        "trainer.max_epochs=2"]
    cfg = compose_config(overrides)
    network = build(cfg.model)(num_outputs=4)
    assert network._compiled_call_impl is not None  # torch.compile wrapped the module in place
    assert list(network.state_dict()) == list(build(compose_config(FAST).model)(num_outputs=4).state_dict())
    summary = Experiment(cfg, tmp_path).run()
    assert summary["rows"] == 2 and 0.0 <= summary["final"]["test_accuracy"] <= 1.0


@pytest.mark.parametrize("setting, expected", [("null", False), ("true", True), ("false", False)])
def test_model_channels_last_decides_the_training_memory_format(setting, expected):
    """null keeps the default (channels_last on CUDA only: on a CPU the ResNet18 trains slower in it)."""
    from osal.build import build

    from conftest import compose_config
    cfg = compose_config(["trainer=cpu", f"model.channels_last={setting}"])
    module = build(cfg.classifier)(num_known=2)
    module.on_fit_start()
    conv = next(m for m in module.net.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) == expected
    assert module._memory_format == (torch.channels_last if expected else torch.contiguous_format)
