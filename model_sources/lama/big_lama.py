"""The big-lama inpainting generator (LaMa, "Resolution-robust Large Mask Inpainting with Fourier
Convolutions", Suvorov et al. 2021), written for this project.

Architecture = the ``generator`` section of the public ``configs/training/big-lama.yaml``: an FFC
ResNet with 4 input channels (RGB with the hole zeroed + the mask), ``ngf`` 64, 3 stride-2
downsamplings, 18 residual blocks of Fast Fourier Convolutions with 75% of the channels in the
global (spectral) branch, no local Fourier unit, reflect padding, batch norm, 3 transposed-conv
upsamplings and a sigmoid RGB output. Module and parameter names follow the published checkpoint
(``generator.model.<i>...`` in ``best.ckpt``'s ``state_dict``), so it loads with ``strict=True``.

Only what the published configs use is implemented (stride-2 global branches, gates, the local
Fourier unit and spatial transforms are not).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BIG_LAMA = {"input_nc": 4, "output_nc": 3, "ngf": 64, "n_downsampling": 3, "n_blocks": 18,
            "ratio_g": 0.75, "max_features": 1024}


class FourierUnit(nn.Module):
    """1x1 convolution in the frequency domain: rfft2 -> conv(real|imag) -> BN -> ReLU -> irfft2."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv_layer = nn.Conv2d(2 * channels, 2 * channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(2 * channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        spec = torch.fft.rfft2(x.float(), norm="ortho")                  # (b, c, h, w//2+1)
        z = torch.stack((spec.real, spec.imag), dim=2).flatten(1, 2)      # channel 2*i+{0: re, 1: im}
        z = F.relu(self.bn(self.conv_layer(z.to(x.dtype))))
        z = z.unflatten(1, (c, 2)).float()
        out = torch.fft.irfft2(torch.complex(z[:, :, 0], z[:, :, 1]), s=(h, w), norm="ortho")
        return out.to(x.dtype)


class SpectralTransform(nn.Module):
    """Global-to-global path of an FFC: 1x1 conv to half width, Fourier unit (residual), 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        half = out_channels // 2
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, half, kernel_size=1, bias=False),
                                   nn.BatchNorm2d(half), nn.ReLU(inplace=True))
        self.fu = FourierUnit(half)
        self.conv2 = nn.Conv2d(half, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(x + self.fu(x))


def _split(channels: int, ratio: float) -> tuple[int, int]:
    """(local, global) channel counts, as the reference computes them."""
    global_ch = int(channels * ratio)
    return channels - global_ch, global_ch


class FFC(nn.Module):
    """Fast Fourier Convolution: four paths between the local and global channel groups."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float,
                 ratio_gout: float, stride: int = 1, padding: int = 0, dilation: int = 1):
        super().__init__()
        in_l, in_g = _split(in_channels, ratio_gin)
        out_l, out_g = _split(out_channels, ratio_gout)
        if in_g and out_g and stride != 1:
            raise ValueError("stride-2 global branches are not used by big-lama and not implemented")

        def conv(cin: int, cout: int) -> nn.Module | None:
            if not (cin and cout):
                return None
            return nn.Conv2d(cin, cout, kernel_size, stride, padding, dilation, bias=False, padding_mode="reflect")

        self.convl2l = conv(in_l, out_l)
        self.convl2g = conv(in_l, out_g)
        self.convg2l = conv(in_g, out_l)
        self.convg2g = SpectralTransform(in_g, out_g) if (in_g and out_g) else None
        self.out_l, self.out_g = out_l, out_g

    def forward(self, x_l: torch.Tensor | None, x_g: torch.Tensor | None):
        out_l = out_g = None
        if self.out_l:
            parts = []
            if self.convl2l is not None and x_l is not None:
                parts.append(self.convl2l(x_l))
            if self.convg2l is not None and x_g is not None:
                parts.append(self.convg2l(x_g))
            out_l = sum(parts[1:], parts[0])
        if self.out_g:
            parts = []
            if self.convl2g is not None and x_l is not None:
                parts.append(self.convl2g(x_l))
            if self.convg2g is not None and x_g is not None:
                parts.append(self.convg2g(x_g))
            out_g = sum(parts[1:], parts[0])
        return out_l, out_g


class FFCBnAct(nn.Module):
    """FFC followed by batch norm and ReLU on each non-empty branch (``ffc``, ``bn_l``, ``bn_g``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float,
                 ratio_gout: float, stride: int = 1, padding: int = 0, dilation: int = 1):
        super().__init__()
        self.ffc = FFC(in_channels, out_channels, kernel_size, ratio_gin, ratio_gout, stride, padding, dilation)
        out_l, out_g = _split(out_channels, ratio_gout)
        self.bn_l = nn.BatchNorm2d(out_l) if ratio_gout != 1 else None
        self.bn_g = nn.BatchNorm2d(out_g) if ratio_gout != 0 else None

    def forward(self, x):
        x_l, x_g = x if isinstance(x, tuple) else (x, None)
        y_l, y_g = self.ffc(x_l, x_g)
        if y_l is not None and self.bn_l is not None:
            y_l = F.relu(self.bn_l(y_l))
        if y_g is not None and self.bn_g is not None:
            y_g = F.relu(self.bn_g(y_g))
        return y_l, y_g


class FFCResnetBlock(nn.Module):
    """Two FFC-BN-ReLU layers (3x3, reflect padding) with a residual connection per branch."""

    def __init__(self, dim: int, ratio: float, dilation: int = 1):
        super().__init__()
        self.conv1 = FFCBnAct(dim, dim, 3, ratio, ratio, padding=dilation, dilation=dilation)
        self.conv2 = FFCBnAct(dim, dim, 3, ratio, ratio, padding=dilation, dilation=dilation)

    def forward(self, x):
        x_l, x_g = x
        y_l, y_g = self.conv2(self.conv1((x_l, x_g)))
        return (x_l + y_l if x_l is not None else y_l), (x_g + y_g if x_g is not None else y_g)


class ConcatBranches(nn.Module):
    """(local, global) -> one tensor, local channels first."""

    def forward(self, x):
        x_l, x_g = x
        if x_g is None:
            return x_l
        if x_l is None:
            return x_g
        return torch.cat((x_l, x_g), dim=1)


class FFCResNetGenerator(nn.Module):
    """The big-lama generator; ``forward(x)`` takes (B, input_nc, H, W) with H, W multiples of
    ``2 ** n_downsampling`` and returns (B, output_nc, H, W) in [0, 1]."""

    def __init__(self, input_nc: int = 4, output_nc: int = 3, ngf: int = 64, n_downsampling: int = 3,
                 n_blocks: int = 18, ratio_g: float = 0.75, max_features: int = 1024):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), FFCBnAct(input_nc, ngf, 7, 0, 0)]
        for i in range(n_downsampling):
            cin = min(max_features, ngf * 2 ** i)
            cout = min(max_features, ngf * 2 ** (i + 1))
            gout = ratio_g if i == n_downsampling - 1 else 0
            layers.append(FFCBnAct(cin, cout, 3, 0, gout, stride=2, padding=1))
        bottleneck = min(max_features, ngf * 2 ** n_downsampling)
        layers += [FFCResnetBlock(bottleneck, ratio_g) for _ in range(n_blocks)]
        layers.append(ConcatBranches())
        for i in range(n_downsampling):
            cin = min(max_features, ngf * 2 ** (n_downsampling - i))
            cout = min(max_features, int(ngf * 2 ** (n_downsampling - i) / 2))
            layers += [nn.ConvTranspose2d(cin, cout, kernel_size=3, stride=2, padding=1, output_padding=1),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7), nn.Sigmoid()]
        self.model = nn.Sequential(*layers)
        self.multiple = 2 ** n_downsampling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LamaInpainter(nn.Module):
    """Inference wrapper with the calling convention of the published TorchScript ``big-lama.pt``:
    ``forward(image, mask)``, image (B, 3, H, W) in [0, 1], mask (B, 1, H, W) with 1 = hole, H and W
    multiples of 8; returns the inpainted image in [0, 1] (known pixels copied from the input)."""

    def __init__(self, generator: FFCResNetGenerator):
        super().__init__()
        self.generator = generator

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        masked = image * (1 - mask)
        predicted = self.generator(torch.cat([masked, mask], dim=1))
        return mask * predicted + (1 - mask) * image


def new_generator(**arch) -> FFCResNetGenerator:
    """A generator of ``BIG_LAMA`` updated with ``arch`` (build it under ``torch.device("meta")``
    to skip the random initialisation when weights are assigned next)."""
    unknown = set(arch) - set(BIG_LAMA)
    if unknown:
        raise ValueError(f"unknown LaMa architecture keys: {sorted(unknown)}")
    return FFCResNetGenerator(**{**BIG_LAMA, **arch})


def generator_state(state: dict) -> dict:
    """The generator's tensors of ``state``: its own state dict, or a Lightning checkpoint
    ``state_dict`` whose generator keys carry the ``generator.`` prefix (other keys are dropped)."""
    if any(k.startswith("generator.") for k in state):
        return {k[len("generator."):]: v for k, v in state.items() if k.startswith("generator.")}
    return state


def generator_from_state_dict(state: dict, **arch) -> FFCResNetGenerator:
    """Build a generator (``BIG_LAMA`` updated with ``arch``) without random initialisation and
    assign ``state`` (see :func:`generator_state`) strictly; on the tensors' device."""
    with torch.device("meta"):
        generator = new_generator(**arch)
    generator.load_state_dict(generator_state(state), strict=True, assign=True)
    return generator.eval()


# ---------------------------------------------------------------------------------------------
# Checkpoint reading. The published best.ckpt is a PyTorch Lightning checkpoint whose
# non-tensor entries (hyper-parameters, callback states) pickle classes from packages the
# serving image does not have (omegaconf, pytorch_lightning), so torch's weights-only loader
# refuses it. The file is read by Python's C unpickler restricted to torch's own weights-only
# allowlist (``torch._weights_only_unpickler``, the globals a tensor needs); every other global
# is replaced by an inert stub, so no code from the file is ever executed and no extra package is
# needed. One reader for every file: trying ``weights_only=True`` first unpickled a whole
# Lightning state dict in torch's pure-Python unpickler before failing at its hyper-parameters
# (then read it again), and the C unpickler takes half the time of torch's on the same records.

import functools  # noqa: E402
import pickle  # noqa: E402
import types  # noqa: E402


class _Inert:
    """Stand-in for a class the checkpoint references but that is not needed (never called)."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self._state = state


@functools.cache
def _allowed_globals() -> dict:
    from torch import _weights_only_unpickler as wou

    allowed = dict(wou._get_allowed_globals())
    allowed.update(getattr(wou, "_get_user_allowed_globals", dict)())
    return allowed


class _StubUnpickler(pickle.Unpickler):
    _stubs: dict = {}

    def find_class(self, module: str, name: str):
        obj = _allowed_globals().get(f"{module}.{name}")
        if obj is not None:
            return obj
        if (module, name) == ("collections", "OrderedDict"):
            import collections

            return collections.OrderedDict
        key = (module, name)
        if key not in self._stubs:
            self._stubs[key] = type(name, (_Inert,), {"__module__": f"_inert.{module}"})
        return self._stubs[key]


_stub_pickle = types.ModuleType("_lama_stub_pickle")
_stub_pickle.Unpickler = _StubUnpickler
_stub_pickle.load = lambda f, **kw: _StubUnpickler(f, **kw).load()
_stub_pickle.__name__ = "_lama_stub_pickle"


def read_state_dict(path: str) -> dict:
    """Tensors of a ``.ckpt``/``.pth`` file, memory-mapped: a Lightning checkpoint's
    ``state_dict`` or a bare state dict, read by the inert-stub unpickler (above)."""
    obj = torch.load(path, map_location="cpu", mmap=True, weights_only=False, pickle_module=_stub_pickle)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: not a state dict or a checkpoint with a 'state_dict'")
    return obj
