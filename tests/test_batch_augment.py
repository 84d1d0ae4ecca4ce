"""The batched augmentation: each image gets its own draw, with torchvision's geometry."""

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from osal.data.batch_augment import BatchAugment, random_crop, rotate

from conftest import compose_config, open_set


def _images(n=64, c=3, size=8, seed=0):
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_no_augmentation_is_exactly_the_test_transform():
    x = _images()
    out = BatchAugment([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])(x, torch.Generator().manual_seed(0))
    expected = TF.normalize(x.float() / 255, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3])
    torch.testing.assert_close(out, expected)


def test_crop_is_a_window_of_the_zero_padded_image_with_offsets_spread_per_image():
    x, pad = _images(n=200, size=6), 2
    out = random_crop(x, pad, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    offsets = []
    for image, crop in zip(padded, out):
        matches = [(t, left) for t in range(2 * pad + 1) for left in range(2 * pad + 1)
                   if torch.equal(image[:, t:t + 6, left:left + 6], crop)]
        assert matches, "every crop is a window of its padded image"
        offsets.append(matches[0])
    assert len(set(offsets)) == (2 * pad + 1) ** 2  # all 25 offsets occur over 200 images


def test_flip_flips_about_half_the_images_and_only_left_right():
    x = _images(n=400)
    out = BatchAugment([0.0] * 3, [1.0] * 3, hflip=True)(x, torch.Generator().manual_seed(2)) * 255
    out = out.round().to(torch.uint8)
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert (flipped | kept).all() and 150 < int(flipped.sum()) < 250


@pytest.mark.parametrize("angle", [90.0, 30.0, -15.0, 7.5])
def test_rotation_matches_torchvision(angle):
    x = _images(n=4, size=16)
    expected = TF.rotate(x, angle).float() / 255
    out = rotate(x.float() / 255, torch.full((4,), angle))
    assert (out == expected).float().mean() > 0.99  # nearest-pixel ties may round the other way


def test_rotation_angles_differ_per_image_within_the_range():
    x = torch.zeros(300, 1, 9, 9, dtype=torch.uint8)
    x[:, :, 4, :] = 255  # a horizontal line through the centre
    out = BatchAugment([0.0], [1.0], rotation=40)(x, torch.Generator().manual_seed(3))
    # a horizontal line rotated by a different angle lights up a different set of pixels
    assert len({tuple(o.flatten().tolist()) for o in out}) > 20
    assert not torch.equal(out, x.float() / 255)


def test_same_generator_seed_same_batch_other_seed_other_batch():
    aug = BatchAugment([0.5] * 3, [0.5] * 3, crop_padding=4, hflip=True, rotation=15)
    x = _images(size=32)
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    c = aug(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_batched_and_per_sample_pipelines_feed_the_same_examples_in_the_same_order():
    batches = {}
    for pipeline in ("batched", "per_sample"):
        dm = open_set(["mismatch=0.4", f"data.pipeline={pipeline}"])[1]
        dm.begin_fit(11, with_invalid=False)
        batches[pipeline] = [(y, i) for _, y, i in dm.training_batches()]
        # without augmentation (digits) the images are the same too
        images = torch.cat([x for x, _, _ in dm.training_batches()])
        batches[pipeline + "_x"] = images
    for (y1, i1), (y2, i2) in zip(batches["batched"], batches["per_sample"]):
        assert torch.equal(y1, y2) and torch.equal(i1, i2)
    torch.testing.assert_close(batches["batched_x"], batches["per_sample_x"])


def test_unknown_pipeline_is_one_clear_error():
    from osal.build import build
    from osal.errors import ConfigError
    with pytest.raises(ConfigError, match="data.pipeline='fast'"):
        from osal.data.active_pool import ActivePool
        build(compose_config(["data.pipeline=fast"]).data)(images=_images(4).numpy(), pool=ActivePool(4, 2))
