"""BatchNorm folded into the convolution before it: one op instead of two, the same outputs (eval mode)."""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d into the Conv2d before it, in place; returns ``module``.

    Handles the two patterns used by the BGMv2 modules: ``Sequential(conv, bn, ...)`` and sibling
    attributes ``convN``/``bnN``. A folded BatchNorm is replaced by ``nn.Identity`` so forward code
    that still calls it keeps working.
    """
    for child in module.children():
        fold_batchnorm(child)
    children = list(module.named_children())
    pairs = list(zip(children, children[1:], strict=False)) if isinstance(module, nn.Sequential) else []
    for name, child in children:
        if name.startswith("conv") and isinstance(child, nn.Conv2d):
            bn_name = "bn" + name[len("conv") :]
            bn = getattr(module, bn_name, None)
            if isinstance(bn, nn.BatchNorm2d):
                pairs.append(((name, child), (bn_name, bn)))
    for (conv_name, conv), (bn_name, bn) in pairs:
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(module, conv_name, fuse_conv_bn_eval(conv.eval(), bn.eval()))
            setattr(module, bn_name, nn.Identity())
    return module
