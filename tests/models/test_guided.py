"""The plate-guided model: its feature path, the untrained model as a keyer, shapes, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cleanplate.models.checkpoint import inspect_checkpoint, load_checkpoint, save_checkpoint
from cleanplate.models.guided import GuidedMatting, net
from cleanplate.models.guided import features as feat


def _scene(h: int = 96, w: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A textured plate, a flat-coloured disk in front of it, and the true alpha."""
    g = torch.Generator().manual_seed(seed)
    plate = torch.nn.functional.interpolate(torch.rand(1, 3, h // 8, w // 8, generator=g), (h, w), mode="bilinear")
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    alpha = (((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (h / 4) ** 2).float()[None, None]
    colour = torch.tensor([0.9, 0.1, 0.6]).view(1, 3, 1, 1)
    src = alpha * colour + (1 - alpha) * plate
    return src, plate, alpha


def test_tone_fit_recovers_exposure_drift_despite_the_subject() -> None:
    src, plate, alpha = _scene()
    drifted = (plate * torch.tensor([1.15, 0.95, 1.05]).view(1, 3, 1, 1) + 0.02).clamp(0, 1)
    frame = alpha * src + (1 - alpha) * drifted
    beta, weights = feat.fit_tone(frame, plate)
    matched = feat.apply_tone(plate, beta)
    bg = alpha[0, 0] < 0.5
    assert (matched - drifted).abs()[0, :, bg].mean() < 0.01
    assert (plate - drifted).abs()[0, :, bg].mean() > 0.03
    assert weights[0, 0][~bg].mean() < 0.2 < weights[0, 0][bg].mean()  # the subject drops out of the fit


def test_a_large_grid_is_fitted_on_a_subsample_with_the_same_curve(monkeypatch) -> None:
    """Above FIT_PIXELS the curve comes from every 2nd row and column, the weights from every pixel."""
    src, plate, alpha = _scene(h=384, w=512)
    drifted = (plate * torch.tensor([1.15, 0.95, 1.05]).view(1, 3, 1, 1) + 0.02).clamp(0, 1)
    frame = alpha * src + (1 - alpha) * drifted
    beta_sub, w_sub = feat.fit_tone(frame, plate)
    monkeypatch.setattr(feat, "FIT_PIXELS", 10**9)
    beta_all, w_all = feat.fit_tone(frame, plate)
    assert not torch.equal(beta_sub, beta_all)  # a different sample ...
    assert (beta_sub - beta_all).abs().max() < 2e-3  # ... the same curve
    assert w_sub.shape == w_all.shape == (1, 1, 384, 512)
    assert (w_sub - w_all).abs().mean() < 2e-3


def test_tone_fit_keeps_the_identity_for_an_unrelated_plate() -> None:
    src, _, _ = _scene(seed=1)
    other = 1 - src  # inverted: no monotone curve maps one to the other
    beta, _ = feat.fit_tone(src, other)
    assert (feat.apply_tone(other, beta) - other).abs().max() < 0.03  # not bent to fit another scene


def test_keyed_alpha_finds_the_subject() -> None:
    src, plate, alpha = _scene()
    f = feat.plate_features(src, plate)
    assert f["stack"].shape[1] == feat.IN_CHANNELS
    assert (f["keyed"] - alpha).abs().mean() < 0.03
    assert f["noise"].item() < 0.01


def test_untrained_model_is_the_keyer_and_sizes_round_trip() -> None:
    src, plate, alpha = _scene(90, 130)  # not a multiple of anything
    model = GuidedMatting(backbone_scale=0.5).eval()
    with torch.no_grad():
        pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm = model(src, plate)
    assert pha.shape == (1, 1, 90, 130) and fgr.shape == (1, 3, 90, 130)
    assert pha_sm.shape[-2:] == err_sm.shape[-2:] == ref_sm.shape[-2:]
    assert (pha - alpha).abs().mean() < 0.03
    inside = alpha[0, 0] > 0.5
    assert (fgr[0, :, inside].mean(1) - torch.tensor([0.9, 0.1, 0.6])).abs().max() < 0.05
    assert float(err_sm.abs().max()) == 0.0  # zero-initialised head


@pytest.mark.parametrize(("subpixel", "scale"), [(False, 0.5), (True, 0.5), (True, 0.25)])
def test_batch_equals_single_frames(subpixel: bool, scale: float) -> None:
    a, pa, _ = _scene(seed=2)
    b, pb, _ = _scene(seed=3)
    model = GuidedMatting(backbone_scale=scale, subpixel=subpixel).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.net.head.weight, std=0.01)  # a non-trivial correction
        both = model(torch.cat([a, b]), torch.cat([pa, pb]))[0]
        one = model(b, pb)[0]
    assert torch.allclose(both[1:], one, atol=1e-5)


@pytest.mark.parametrize("subpixel", [False, True])
@pytest.mark.parametrize("scale", [1.0, 0.5, 0.25])
def test_backbone_scale_sets_the_working_grid(scale: float, subpixel: bool) -> None:
    src, plate, _ = _scene(128, 192)
    model = GuidedMatting(backbone_scale=scale, subpixel=subpixel).eval()
    with torch.no_grad():
        pha, _, pha_sm, *_ = model(src, plate)
    assert pha_sm.shape[-1] == pytest.approx(192 * scale, abs=16)
    assert pha.shape[-2:] == src.shape[-2:]


def test_gradients_reach_every_parameter() -> None:
    src, plate, alpha = _scene()
    model = GuidedMatting().train()
    pha, fgr, pha_sm, *_ = model(src, plate)
    ((pha - alpha).abs().mean() + (pha_sm - 0.5).abs().mean()).backward()
    assert model.net.head.weight.grad is not None and model.net.head.weight.grad.abs().sum() > 0


def test_checkpoint_round_trip_keeps_architecture_and_config(tmp_path) -> None:
    model = GuidedMatting(widths=(8, 16, 16, 24, 32)).eval()
    torch.nn.init.normal_(model.net.head.weight, std=0.01)
    path = save_checkpoint(model, tmp_path / "g.pt", half=False, meta={"note": "test"})
    info = inspect_checkpoint(path)
    assert info["architecture"] == "GuidedMatting" and info["backbone"] is None and info["meta"]["note"] == "test"
    loaded, _ = load_checkpoint(path, backbone_scale=0.25)
    assert loaded.widths == (8, 16, 16, 24, 32) and loaded.backbone_scale == 0.25
    src, plate, _ = _scene()
    with torch.no_grad():
        model.backbone_scale = 0.25
        assert torch.allclose(model(src, plate)[0], loaded(src, plate)[0])


def test_bgmv2_options_are_one_line_errors_for_the_guided_model(tmp_path) -> None:
    from cleanplate.errors import InputError

    path = save_checkpoint(GuidedMatting(), tmp_path / "g.pt")
    with pytest.raises(InputError, match="refine_mode do not apply"):
        load_checkpoint(path, refine_mode="full")
    with pytest.raises(InputError, match="no BGMv2 backbone"):
        load_checkpoint(path, backbone="resnet50")


def test_matter_api_runs_the_guided_model(tmp_path) -> None:
    import cleanplate

    path = save_checkpoint(GuidedMatting(), tmp_path / "g.pt")
    src, plate, alpha = _scene(100, 140)
    to_img = lambda t: (t[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)  # noqa: E731
    matte = cleanplate.load(path).matte(to_img(src), to_img(plate))
    assert matte.alpha.shape == (100, 140)
    assert np.abs(matte.alpha - alpha[0, 0].numpy()).mean() < 0.04


def test_optimized_copy_matches_and_leaves_the_model_alone() -> None:
    from cleanplate.models.fast import optimize

    src, plate, _ = _scene(96, 128)
    model = GuidedMatting(backbone_scale=0.25).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.net.head.weight, std=0.02)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial statistics to fold
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
        want = model(src, plate)
        fast = optimize(model)
        got = fast(src, plate)
    assert fast is not model and fast.channels_last and not model.channels_last
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    for g, w in zip(got, want, strict=True):
        assert (g - w).abs().max() < 1e-4


def test_the_error_map_learns_from_its_zero_start() -> None:
    """The error channel starts at exactly zero; its gradient there must not vanish (abs() had 0)."""
    src, plate, alpha = _scene()
    model = GuidedMatting()
    err_sm = model(src, plate)[4]
    assert torch.equal(err_sm, torch.zeros_like(err_sm))
    (err_sm - 0.3).square().mean().backward()
    assert model.net.head.weight.grad[GuidedMatting.ERR_CHANNEL].abs().sum() > 0


def test_widened_subpixel_model_computes_what_the_plain_one_did() -> None:
    """``adapt_state`` pads the new input and output channels with zeros: a fine-tune starts exactly here."""
    torch.manual_seed(0)
    plain = GuidedMatting().eval()
    torch.nn.init.normal_(plain.net.head.weight, std=1e-2)
    sub = GuidedMatting(subpixel=True).eval()
    sub.load_state_dict(sub.adapt_state(plain.state_dict()))
    src, plate, _ = _scene()
    with torch.no_grad():
        for a, b in zip(plain(src, plate), sub(src, plate), strict=True):
            assert torch.equal(a, b)
    # the other way round would drop channels: left for load_state_dict to refuse
    with pytest.raises(RuntimeError):
        plain.load_state_dict(plain.adapt_state(sub.state_dict()))


def test_subpixel_features_see_a_one_pixel_gap() -> None:
    """A one-pixel column where the plate shows through: at the noise level in the sub-pixel
    distance, while the working grid's blurred distance does not reach it."""
    from cleanplate.models.guided.net import _subpixel_features

    g = torch.Generator().manual_seed(3)
    plate = torch.rand(1, 3, 64, 64, generator=g) * 0.5
    src = torch.full_like(plate, 0.9)
    src[..., 31] = plate[..., 31]  # the gap: odd column, the second sample of its working cell
    beta = torch.tensor([0.0, 1.0, 0.0]).expand(1, 3, 3)
    sub = _subpixel_features(src, feat.apply_tone(plate, beta), torch.Size((32, 32)))
    dist = torch.nn.functional.pixel_shuffle(sub[:, :4], 2)[0, 0] / 10  # back to full resolution
    assert dist[:, 31].max() < 1e-3 and dist[:, 30].min() > 0.3
    coarse = feat.plate_features(torch.nn.functional.avg_pool2d(src, 2), torch.nn.functional.avg_pool2d(plate, 2))
    assert coarse["distance"][0, 0, :, 15].min() > 0.1


def test_subpixel_output_lands_on_its_own_pixel() -> None:
    """Output channel 6 + i of the head corrects sample i of each 2×2 cell (row-major), nothing else."""
    src, plate, alpha = _scene()
    model = GuidedMatting(subpixel=True).eval()
    with torch.no_grad():
        base = model(src, plate)[0]
        model.net.head.bias[6 + 3] = -0.5  # bottom-right sample of every cell
        moved = (base - model(src, plate)[0])[0, 0]
    inside = -torch.nn.functional.max_pool2d(-alpha, 9, 1, 4)[0, 0] > 0.5  # the disk, away from its edge
    assert torch.allclose(moved[1::2, 1::2][inside[1::2, 1::2]], torch.tensor(0.5), atol=1e-4)
    assert moved[0::2, :].abs().max() < 1e-6 and moved[:, 0::2].abs().max() < 1e-6


def test_subpixel_checkpoint_round_trip(tmp_path) -> None:
    model = GuidedMatting(widths=(8, 16, 16, 24, 32), subpixel=True).eval()
    torch.nn.init.normal_(model.net.head.weight, std=0.01)
    path = save_checkpoint(model, tmp_path / "s.pt", half=False)
    loaded, _ = load_checkpoint(path)
    assert loaded.subpixel and loaded.widths == (8, 16, 16, 24, 32)
    src, plate, _ = _scene()
    with torch.no_grad():
        assert torch.equal(model(src, plate)[0], loaded(src, plate)[0])


def test_subpixel_features_at_quarter_scale_read_the_frame_averaged_to_half() -> None:
    """At factor 4 (HD) the sub-pixel features see the frame as it was seen at training (factor 2 on
    a smaller image): a frame upscaled 2× gives, at factor 4, the working maps of the original at 2."""
    src, plate, _ = _scene()
    g = torch.Generator().manual_seed(5)
    src = (src + 0.05 * torch.rand(src.shape, generator=g)).clamp(0, 1)  # pixel noise the average must see
    model = GuidedMatting(subpixel=True).eval()
    torch.nn.init.normal_(model.net.head.weight, std=1e-2, generator=g)
    up = lambda x: torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")  # noqa: E731
    with torch.no_grad():
        small = model._forward(src, plate, 2)
        big = model._forward(up(src), up(plate), 4)
    for a, b in zip(small[2:5], big[2:5], strict=True):  # pha_sm, fgr_sm, err_sm
        assert torch.allclose(a, b, atol=1e-5)
    assert (big[0] - up(small[0])).abs().mean() < 0.01  # and the full-resolution matte follows


def test_spread_fills_the_frame_from_the_weighted_pixels_only() -> None:
    g = torch.Generator().manual_seed(3)
    colour = torch.tensor([0.9, 0.1, 0.6]).view(1, 3, 1, 1)
    ramp = torch.linspace(0, 1, 53).view(1, 1, 1, 53).expand(1, 3, 37, 53)
    near = net.spread(ramp, torch.ones(1, 1, 37, 53))  # from half resolution: smooth values survive
    assert near.shape == ramp.shape and (near - ramp)[..., 2:-2].abs().max() < 0.02
    weight = torch.zeros(1, 1, 37, 53)
    weight[..., :10] = 1
    noisy = weight * colour + (1 - weight) * torch.rand(1, 3, 37, 53, generator=g)  # unweighted: ignored
    assert (net.spread(noisy, weight) - colour).abs().max() < 1e-5


def test_the_edge_colour_of_thin_alpha_comes_from_the_interior() -> None:
    red, green = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1), torch.tensor([0.1, 0.8, 0.1]).view(1, 3, 1, 1)
    alpha = torch.zeros(1, 1, 32, 48)
    alpha[..., :20] = 1
    alpha[..., 20:26] = 0.2  # a thin fringe whose coarse colour came out as the plate's (green)
    plate = green.expand(1, 3, 32, 48)
    src = alpha * red + (1 - alpha) * plate
    fgr = torch.where(alpha > 0.5, red, green)
    out = net.interior_colour(src, alpha, fgr, pull=1.0)
    fringe = (alpha > 0.1) & (alpha < 0.5)
    assert (out - red).abs().amax(1, keepdim=True)[fringe].max() < 0.05  # was 0.7 off
    assert (out - red).abs()[:, :, :, :20].max() < 1e-5  # solid: both colours agree
    assert torch.equal(net.interior_colour(src, alpha, fgr, pull=0.0), fgr)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_interior_colour_lowers_the_error_of_soft_edges(seed: int, monkeypatch) -> None:
    h, w = 96, 128
    g = torch.Generator().manual_seed(seed)
    plate = torch.nn.functional.interpolate(torch.rand(1, 3, h // 8, w // 8, generator=g), (h, w), mode="bilinear")
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    radius = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2).float().sqrt()
    alpha = ((h / 4 - radius) / 8 + 0.5).clamp(0, 1)[None, None]  # an 8 px soft edge
    src = alpha * torch.tensor([0.9, 0.1, 0.6]).view(1, 3, 1, 1) + (1 - alpha) * plate
    model = GuidedMatting(backbone_scale=0.5, subpixel=True).eval()
    band = (alpha > 0) & (alpha < 1)
    errors = []
    for pull in (0.0, 1.0):
        monkeypatch.setattr(net, "INTERIOR_PULL", pull)
        with torch.no_grad():
            errors.append(float((model(src, plate)[0] - alpha).abs()[band].mean()))
    assert errors[1] < 0.97 * errors[0]


def test_edge_alpha_reads_the_edge_colour_and_the_foreground_keeps_the_predicted_one() -> None:
    g = torch.Generator().manual_seed(5)
    src, bgr = torch.rand(1, 3, 8, 8, generator=g), torch.rand(1, 3, 8, 8, generator=g)
    alpha_up = torch.full((1, 1, 8, 8), 0.4)
    ones = torch.ones(1, 1, 8, 8)

    def step(predicted: torch.Tensor, edge: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = torch.cat([predicted, ones, torch.zeros(1, 1, 8, 8), edge], dim=1)  # band 1, no trust change
        return net._edge_step(src, bgr, None, alpha_up, maps)

    red, blue = (
        torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1).expand(1, 3, 8, 8),
        torch.tensor([0.1, 0.1, 0.9]).view(1, 3, 1, 1).expand(1, 3, 8, 8),
    )
    pha_a, fgr_a = step(red, blue)
    pha_b, fgr_b = step(blue, blue)
    assert torch.equal(pha_a, pha_b)  # alpha from the edge colour only
    assert (fgr_a - fgr_b).abs().max() > 1e-3  # the foreground's prior is the predicted colour
    pha_c, _ = step(red, red)
    assert (pha_a - pha_c).abs().max() > 1e-3


def test_a_handheld_plate_is_warped_in_the_edge_cells_exactly_as_in_the_whole_frame() -> None:
    from cleanplate.models.guided.net import _blocks, _warped_blocks
    from cleanplate.models.guided.register import warp

    plate = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    theta = torch.tensor([[[1.01, -0.02, 0.03], [0.02, 0.99, -0.05]], [[1.0, 0.0, 0.1], [0.0, 1.0, 0.0]]])
    bi, yi, xi = torch.tensor([0, 1, 1, 0]), torch.tensor([0, 7, 3, 5]), torch.tensor([11, 0, 4, 6])
    want = _blocks(warp(plate, theta), 4)[bi, yi, xi]
    assert torch.equal(_warped_blocks(plate, theta, bi, yi, xi, 4), want)


def test_the_patched_edge_step_with_a_handheld_plate_matches_the_dense_one() -> None:
    """Inference warps the full-resolution plate in the edge cells only; training warps all of it."""
    from cleanplate.models.guided.register import register, warp

    h, w = 384, 512
    g = torch.Generator().manual_seed(4)
    layers = [torch.rand(1, 3, c, c, generator=g) for c in (8, 24, 64)]
    plate = sum(torch.nn.functional.interpolate(x, (h, w), mode="bicubic") for x in layers)
    plate = (plate / 3).clamp(0, 1)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    alpha = (((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (h / 4) ** 2).float()[None, None]
    src = alpha * torch.tensor([0.9, 0.1, 0.6]).view(1, 3, 1, 1) + (1 - alpha) * plate
    theta = torch.tensor([[[1.0, -0.004, 0.02], [0.004, 1.0, -0.015]]])
    moved = warp(plate, torch.linalg.inv(torch.cat([theta[0], torch.tensor([[0.0, 0.0, 1.0]])]))[:2][None])
    small = [torch.nn.functional.avg_pool2d(x, 4) for x in (src, moved)]
    assert not torch.equal(register(*small), torch.eye(2, 3)[None])  # the model will warp the plate
    model = GuidedMatting(backbone_scale=0.25, widths=(8, 16, 16, 24, 32), subpixel=True).eval()
    torch.nn.init.normal_(model.net.head.weight, std=0.01)
    with torch.no_grad():  # alpha as keyed: fractional at the disk's edge only, so few cells are patched
        model.net.head.weight[0].zero_()
        model.net.head.weight[6:].zero_()
        patched = model(src, moved)
    with torch.enable_grad():
        dense = model(src, moved)
    assert (patched[0] - dense[0]).abs().max() < 1e-5
    assert (patched[1] - dense[1]).abs().max() < 1e-5


def _with_trust_head(seed: int = 0, hidden: tuple[int, ...] = (32, 32)) -> GuidedMatting:
    torch.manual_seed(seed)
    model = GuidedMatting(widths=(8, 16, 16, 24, 32), subpixel=True, pixel_trust=True, trust_hidden=hidden).eval()
    torch.nn.init.normal_(model.net.head.weight, std=0.01)
    torch.nn.init.normal_(model.trust.out.weight, std=0.5)
    return model


def test_a_model_given_the_trust_head_computes_what_it_did_without_it() -> None:
    """The head's last layer starts at zero and ``adapt_state`` hands a headless model one: fitting
    the head starts exactly from the trained model's answer."""
    torch.manual_seed(0)
    plain = GuidedMatting(widths=(8, 16, 16, 24, 32), subpixel=True).eval()
    torch.nn.init.normal_(plain.net.head.weight, std=0.01)
    headed = GuidedMatting(widths=(8, 16, 16, 24, 32), subpixel=True, pixel_trust=True).eval()
    headed.load_state_dict(headed.adapt_state(plain.state_dict()))
    src, plate, _ = _scene()
    with torch.no_grad():
        for a, b in zip(plain(src, plate), headed(src, plate), strict=True):
            assert torch.equal(a, b)


def test_the_trust_head_moves_edge_alpha_only_and_the_patched_path_matches_the_dense_one() -> None:
    model = _with_trust_head()
    src, plate, _ = _scene(96, 128)
    off = GuidedMatting(widths=(8, 16, 16, 24, 32), subpixel=True).eval()
    off.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("trust.")})
    with torch.no_grad():
        patched, without = model(src, plate), off(src, plate)
    with torch.enable_grad():
        dense = model(src, plate)
    assert (patched[0] - dense[0]).abs().max() < 1e-5
    assert (patched[1] - dense[1]).abs().max() < 1e-5
    moved = (patched[0] - without[0]).abs()[0, 0] > 1e-4
    assert moved.any()
    pha_sm = patched[2]
    band = net.max3(4 * pha_sm * (1 - pha_sm))
    band = torch.nn.functional.interpolate(band, size=src.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    assert (band == 0).any() and not moved[band == 0].any()  # away from edges: nothing


@pytest.mark.parametrize("hidden", [(32, 32), (8,)])
def test_trust_head_checkpoint_round_trip_and_export(tmp_path, hidden) -> None:
    """Any head width round-trips; the first head's (32, 32) is written without naming it, as
    the checkpoints fitted before widths were configurable were."""
    model = _with_trust_head(1, hidden)
    path = save_checkpoint(model, tmp_path / "t.pt", half=False)
    header = torch.load(path, weights_only=True)
    assert header["config"].get("trust_hidden") == (None if hidden == (32, 32) else list(hidden))
    loaded, _ = load_checkpoint(path)
    assert loaded.trust is not None and loaded.subpixel and loaded.trust.hidden == hidden
    src, plate, _ = _scene()
    with torch.no_grad():
        assert torch.equal(model(src, plate)[0], loaded(src, plate)[0])
    plain = GuidedMatting(widths=(8, 16, 16, 24, 32), subpixel=True).eval()
    with pytest.raises(RuntimeError):  # a headless model does not silently drop a fitted head
        plain.load_state_dict(plain.adapt_state(model.state_dict()))
