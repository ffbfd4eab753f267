import pytest
import torch
import torch.nn.functional as F

from cleanplate.models.guided.pool import box, downsample, max3

SHAPES = [(1, 1, 7, 5), (1, 3, 64, 96), (2, 4, 37, 53)]


@pytest.mark.parametrize("shape", [(1, 3, 64, 96), (2, 3, 37, 53)])
@pytest.mark.parametrize("step", [1, 2, 3, 4, 6, 8])
def test_downsample_is_average_pooling(shape: tuple[int, ...], step: int) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(step))
    assert torch.allclose(downsample(x, step), F.avg_pool2d(x, step), atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_max3_is_max_pooling(shape: tuple[int, ...]) -> None:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    assert torch.equal(max3(x), F.max_pool2d(x, 3, 1, 1))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("r", [1, 2])
def test_box_is_a_mean_over_the_replicated_border(shape: tuple[int, ...], r: int) -> None:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(r))
    want = F.avg_pool2d(F.pad(x, (r, r, r, r), mode="replicate"), 2 * r + 1, stride=1)
    assert torch.allclose(box(x, r), want, atol=1e-6)


def test_pooling_keeps_its_gradients() -> None:
    x = torch.randn(1, 2, 9, 11, requires_grad=True)
    (box(x, 1).sum() + max3(x).sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
