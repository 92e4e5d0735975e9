"""Stand-ins for the original networks' classes (ermongroup/ncsn CondRefineNetDilated, ermongroup/ncsnv2 NCSNv2),
for testing ncsn_fast.accelerate: the same class names, attribute names, module structure, call signatures and
arithmetic as the originals (read from their code; written here for the tests), so that the original
checkpoints in tests/fixtures load into them strictly and they give the original outputs. Not shipped."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

_ELU, _RELU = nn.ELU(), nn.ReLU()  # the originals' default activations


def namespace(d):
    """The originals' dict2namespace."""
    return SimpleNamespace(**{k: namespace(v) if isinstance(v, dict) else v for k, v in d.items()})


def conv3x3(cin, cout, bias=False):
    return nn.Conv2d(cin, cout, 3, stride=1, padding=1, bias=bias)


def dilated3x3(cin, cout, dilation, bias=True):
    return nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=bias)


class ConvMeanPool(nn.Module):
    def __init__(self, cin, cout, kernel_size=3):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=1, padding=kernel_size // 2, bias=True)

    def forward(self, x):
        out = self.conv(x)
        return sum([out[:, :, ::2, ::2], out[:, :, 1::2, ::2], out[:, :, ::2, 1::2], out[:, :, 1::2, 1::2]]) / 4.


def _plus_stats(x):
    means = torch.mean(x, dim=(2, 3))
    m, v = torch.mean(means, dim=-1, keepdim=True), torch.var(means, dim=-1, keepdim=True)
    return (means - m) / torch.sqrt(v + 1e-5)


class InstanceNorm2dPlus(nn.Module):  # ncsnv2 models/normalization.py
    def __init__(self, num_features, bias=True):
        super().__init__()
        self.num_features, self.bias = num_features, bias
        self.instance_norm = nn.InstanceNorm2d(num_features, affine=False, track_running_stats=False)
        self.alpha = nn.Parameter(torch.zeros(num_features).normal_(1, 0.02))
        self.gamma = nn.Parameter(torch.zeros(num_features).normal_(1, 0.02))
        self.beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x):
        means = _plus_stats(x)
        h = self.instance_norm(x) + means[..., None, None] * self.alpha[..., None, None]
        return self.gamma.view(-1, self.num_features, 1, 1) * h + self.beta.view(-1, self.num_features, 1, 1)


class ConditionalInstanceNorm2dPlus(nn.Module):  # ncsn models/cond_refinenet_dilated.py
    def __init__(self, num_features, num_classes, bias=True):
        super().__init__()
        self.num_features, self.bias = num_features, bias
        self.instance_norm = nn.InstanceNorm2d(num_features, affine=False, track_running_stats=False)
        self.embed = nn.Embedding(num_classes, num_features * 3)

    def forward(self, x, y):
        means = _plus_stats(x)
        gamma, alpha, beta = self.embed(y).chunk(3, dim=-1)
        h = self.instance_norm(x) + means[..., None, None] * alpha[..., None, None]
        return gamma.view(-1, self.num_features, 1, 1) * h + beta.view(-1, self.num_features, 1, 1)


class _Residual(nn.Module):
    def _build(self, cin, cout, norm, act, resample, dilation):
        self.non_linearity, self.input_dim, self.output_dim, self.resample = act, cin, cout, resample
        if resample == "down":
            if dilation:
                self.conv1, self.normalize2 = dilated3x3(cin, cin, dilation), norm(cin)
                self.conv2, shortcut = dilated3x3(cin, cout, dilation), partial(dilated3x3, dilation=dilation)
            else:
                self.conv1, self.normalize2 = nn.Conv2d(cin, cin, 3, stride=1, padding=1), norm(cin)
                self.conv2, shortcut = ConvMeanPool(cin, cout, 3), partial(ConvMeanPool, kernel_size=1)
        else:
            if dilation:
                shortcut = partial(dilated3x3, dilation=dilation)
                self.conv1, self.normalize2 = dilated3x3(cin, cout, dilation), norm(cout)
                self.conv2 = dilated3x3(cout, cout, dilation)
            else:
                shortcut = partial(nn.Conv2d, kernel_size=1)
                self.conv1, self.normalize2 = nn.Conv2d(cin, cout, 3, stride=1, padding=1), norm(cout)
                self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1)
        if cout != cin or resample is not None:
            self.shortcut = shortcut(cin, cout)
        self.normalize1 = norm(cin)

    def _shortcut(self, x):
        return x if self.output_dim == self.input_dim and self.resample is None else self.shortcut(x)


class ResidualBlock(_Residual):  # ncsnv2: forward(x)
    def __init__(self, cin, cout, resample=None, act=_ELU, normalization=InstanceNorm2dPlus, dilation=None):
        super().__init__()
        self._build(cin, cout, normalization, act, resample, dilation)

    def forward(self, x):
        out = self.conv1(self.non_linearity(self.normalize1(x)))
        out = self.conv2(self.non_linearity(self.normalize2(out)))
        return self._shortcut(x) + out


class ConditionalResidualBlock(_Residual):  # ncsn: forward(x, y)
    def __init__(self, cin, cout, num_classes, resample=None, act=_ELU,
                 normalization=ConditionalInstanceNorm2dPlus, dilation=None):
        super().__init__()
        self._build(cin, cout, lambda c: normalization(c, num_classes), act, resample, dilation)

    def forward(self, x, y):
        out = self.conv1(self.non_linearity(self.normalize1(x, y)))
        out = self.conv2(self.non_linearity(self.normalize2(out, y)))
        return self._shortcut(x) + out


class RCUBlock(nn.Module):
    def __init__(self, features, n_blocks, n_stages, act=_RELU):
        super().__init__()
        for i in range(n_blocks):
            for j in range(n_stages):
                setattr(self, f"{i + 1}_{j + 1}_conv", conv3x3(features, features))
        self.n_blocks, self.n_stages, self.act = n_blocks, n_stages, act

    def forward(self, x):
        for i in range(self.n_blocks):
            residual = x
            for j in range(self.n_stages):
                x = getattr(self, f"{i + 1}_{j + 1}_conv")(self.act(x))
            x += residual
        return x


class CondRCUBlock(nn.Module):
    def __init__(self, features, n_blocks, n_stages, num_classes, normalizer, act=_RELU):
        super().__init__()
        for i in range(n_blocks):
            for j in range(n_stages):
                setattr(self, f"{i + 1}_{j + 1}_norm", normalizer(features, num_classes, bias=True))
                setattr(self, f"{i + 1}_{j + 1}_conv", conv3x3(features, features))
        self.n_blocks, self.n_stages, self.act = n_blocks, n_stages, act

    def forward(self, x, y):
        for i in range(self.n_blocks):
            residual = x
            for j in range(self.n_stages):
                x = getattr(self, f"{i + 1}_{j + 1}_norm")(x, y)
                x = getattr(self, f"{i + 1}_{j + 1}_conv")(self.act(x))
            x += residual
        return x


class CRPBlock(nn.Module):
    def __init__(self, features, n_stages, act=_RELU):
        super().__init__()
        self.convs = nn.ModuleList([conv3x3(features, features) for _ in range(n_stages)])
        self.n_stages, self.act = n_stages, act
        self.pool = nn.MaxPool2d(kernel_size=5, stride=1, padding=2)

    def forward(self, x):
        x = self.act(x)
        path = x
        for i in range(self.n_stages):
            path = self.convs[i](self.pool(path))
            x = path + x
        return x


class CondCRPBlock(nn.Module):
    def __init__(self, features, n_stages, num_classes, normalizer, act=_RELU):
        super().__init__()
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        for _ in range(n_stages):
            self.norms.append(normalizer(features, num_classes, bias=True))
            self.convs.append(conv3x3(features, features))
        self.n_stages, self.act = n_stages, act
        self.maxpool = nn.AvgPool2d(kernel_size=5, stride=1, padding=2)

    def forward(self, x, y):
        x = self.act(x)
        path = x
        for i in range(self.n_stages):
            path = self.convs[i](self.maxpool(self.norms[i](path, y)))
            x = path + x
        return x


class MSFBlock(nn.Module):
    def __init__(self, in_planes, features):
        super().__init__()
        self.convs = nn.ModuleList([conv3x3(c, features, bias=True) for c in in_planes])
        self.features = features

    def forward(self, xs, shape):
        sums = torch.zeros(xs[0].shape[0], self.features, *shape, device=xs[0].device)
        for i in range(len(self.convs)):
            sums += F.interpolate(self.convs[i](xs[i]), size=shape, mode="bilinear", align_corners=True)
        return sums


class CondMSFBlock(nn.Module):
    def __init__(self, in_planes, features, num_classes, normalizer):
        super().__init__()
        self.convs, self.norms, self.features = nn.ModuleList(), nn.ModuleList(), features
        for c in in_planes:
            self.convs.append(conv3x3(c, features, bias=True))
            self.norms.append(normalizer(c, num_classes, bias=True))

    def forward(self, xs, y, shape):
        sums = torch.zeros(xs[0].shape[0], self.features, *shape, device=xs[0].device)
        for i in range(len(self.convs)):
            h = self.convs[i](self.norms[i](xs[i], y))
            sums += F.interpolate(h, size=shape, mode="bilinear", align_corners=True)
        return sums


class RefineBlock(nn.Module):
    def __init__(self, in_planes, features, act=_RELU, start=False, end=False):
        super().__init__()
        self.n_blocks = len(in_planes)
        self.adapt_convs = nn.ModuleList([RCUBlock(c, 2, 2, act) for c in in_planes])
        self.output_convs = RCUBlock(features, 3 if end else 1, 2, act)
        if not start:
            self.msf = MSFBlock(in_planes, features)
        self.crp = CRPBlock(features, 2, act)

    def forward(self, xs, output_shape):
        hs = [self.adapt_convs[i](x) for i, x in enumerate(xs)]
        h = self.msf(hs, output_shape) if self.n_blocks > 1 else hs[0]
        return self.output_convs(self.crp(h))


class CondRefineBlock(nn.Module):
    def __init__(self, in_planes, features, num_classes, normalizer, act=_RELU, start=False, end=False):
        super().__init__()
        self.n_blocks = len(in_planes)
        self.adapt_convs = nn.ModuleList([CondRCUBlock(c, 2, 2, num_classes, normalizer, act) for c in in_planes])
        self.output_convs = CondRCUBlock(features, 3 if end else 1, 2, num_classes, normalizer, act)
        if not start:
            self.msf = CondMSFBlock(in_planes, features, num_classes, normalizer)
        self.crp = CondCRPBlock(features, 2, num_classes, normalizer, act)

    def forward(self, xs, y, output_shape):
        hs = [self.adapt_convs[i](x, y) for i, x in enumerate(xs)]
        h = self.msf(hs, y, output_shape) if self.n_blocks > 1 else hs[0]
        return self.output_convs(self.crp(h, y), y)


class NCSNv2(nn.Module):
    def __init__(self, config, extra: nn.Module | None = None):
        super().__init__()
        self.logit_transform, self.rescaled = config.data.logit_transform, config.data.rescaled
        self.norm, f = InstanceNorm2dPlus, config.model.ngf
        self.num_classes = config.model.num_classes
        self.act = act = nn.ELU()
        sig = torch.exp(torch.linspace(torch.log(torch.tensor(config.model.sigma_begin)),
                                       torch.log(torch.tensor(config.model.sigma_end)), config.model.num_classes))
        self.register_buffer("sigmas", sig.float())
        self.config = config
        self.begin_conv = nn.Conv2d(config.data.channels, f, 3, stride=1, padding=1)
        self.normalizer = self.norm(f, self.num_classes)
        self.end_conv = nn.Conv2d(f, config.data.channels, 3, stride=1, padding=1)
        rb = partial(ResidualBlock, act=act, normalization=self.norm)
        self.res1 = nn.ModuleList([rb(f, f), rb(f, f)])
        self.res2 = nn.ModuleList([rb(f, 2 * f, resample="down"), rb(2 * f, 2 * f)])
        self.res3 = nn.ModuleList([rb(2 * f, 2 * f, resample="down", dilation=2), rb(2 * f, 2 * f, dilation=2)])
        self.res4 = nn.ModuleList([rb(2 * f, 2 * f, resample="down", dilation=4), rb(2 * f, 2 * f, dilation=4)])
        self.refine1 = RefineBlock([2 * f], 2 * f, act=act, start=True)
        self.refine2 = RefineBlock([2 * f, 2 * f], 2 * f, act=act)
        self.refine3 = RefineBlock([2 * f, 2 * f], f, act=act)
        self.refine4 = RefineBlock([f, f], f, act=act, end=True)
        if extra is not None:  # a local change: one more layer before the head
            self.extra = extra

    def forward(self, x, y):
        h = 2 * x - 1. if not self.logit_transform and not self.rescaled else x
        out = self.begin_conv(h)
        layers = []
        for block in (self.res1, self.res2, self.res3, self.res4):
            for m in block:
                out = m(out)
            layers.append(out)
        ref = self.refine1([layers[3]], layers[3].shape[2:])
        ref = self.refine2([layers[2], ref], layers[2].shape[2:])
        ref = self.refine3([layers[1], ref], layers[1].shape[2:])
        out = self.refine4([layers[0], ref], layers[0].shape[2:])
        if hasattr(self, "extra"):
            out = self.extra(out)
        out = self.end_conv(self.act(self.normalizer(out)))
        return out / self.sigmas[y].view(x.shape[0], *([1] * len(x.shape[1:])))


class CondRefineNetDilated(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.logit_transform = config.data.logit_transform
        self.norm, f = ConditionalInstanceNorm2dPlus, config.model.ngf
        self.num_classes = n = config.model.num_classes
        self.act = act = nn.ELU()
        self.config = config
        self.begin_conv = nn.Conv2d(config.data.channels, f, 3, stride=1, padding=1)
        self.normalizer = self.norm(f, n)
        self.end_conv = nn.Conv2d(f, config.data.channels, 3, stride=1, padding=1)
        rb = partial(ConditionalResidualBlock, num_classes=n, act=act, normalization=self.norm)
        self.res1 = nn.ModuleList([rb(f, f), rb(f, f)])
        self.res2 = nn.ModuleList([rb(f, 2 * f, resample="down"), rb(2 * f, 2 * f)])
        self.res3 = nn.ModuleList([rb(2 * f, 2 * f, resample="down", dilation=2), rb(2 * f, 2 * f, dilation=2)])
        self.res4 = nn.ModuleList([rb(2 * f, 2 * f, resample="down", dilation=4), rb(2 * f, 2 * f, dilation=4)])
        self.refine1 = CondRefineBlock([2 * f], 2 * f, n, self.norm, act=act, start=True)
        self.refine2 = CondRefineBlock([2 * f, 2 * f], 2 * f, n, self.norm, act=act)
        self.refine3 = CondRefineBlock([2 * f, 2 * f], f, n, self.norm, act=act)
        self.refine4 = CondRefineBlock([f, f], f, n, self.norm, act=act, end=True)

    def forward(self, x, y):
        if not self.logit_transform:
            x = 2 * x - 1.
        out = self.begin_conv(x)
        layers = []
        for block in (self.res1, self.res2, self.res3, self.res4):
            for m in block:
                out = m(out, y)
            layers.append(out)
        ref = self.refine1([layers[3]], y, layers[3].shape[2:])
        ref = self.refine2([layers[2], ref], y, layers[2].shape[2:])
        ref = self.refine3([layers[1], ref], y, layers[1].shape[2:])
        out = self.refine4([layers[0], ref], y, layers[0].shape[2:])
        return self.end_conv(self.act(self.normalizer(out, y)))
