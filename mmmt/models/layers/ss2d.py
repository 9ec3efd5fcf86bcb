"""SS2D: the paper's Mamba-based feature extractor (MFE), built on a 2-D selective scan.

Two variants exist in MTMamba (docs/differences.md):

* gated (``gated=True``, used by the STM block): ``in_proj`` produces the main branch ``x`` and a
  gate ``z``; the output is ``out_proj(LN(scan(x)) * SiLU(z))`` with the input's width;
* ungated (``gated=False``, used inside the CTM block): ``in_proj`` produces only ``x``; the output
  is ``LN(scan(x))`` with width ``d_inner`` and there is no ``out_proj``.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmmt.ops import selective_scan_fn
from mmmt.registry import MODELS

__all__ = ['SS2D', 'cross_scan', 'cross_merge']

#: Number of scan directions: row-major, column-major and both reversed.
NUM_DIRECTIONS = 4


def cross_scan(x: torch.Tensor) -> torch.Tensor:
    """Unfold a (B, C, H, W) map into the four scan sequences (B, 4, C, H*W).

    Order: row-major, column-major, reversed row-major, reversed column-major.
    """
    row = x.flatten(2)
    col = x.transpose(2, 3).flatten(2)
    seqs = torch.stack([row, col], dim=1)
    return torch.cat([seqs, seqs.flip(-1)], dim=1)


def cross_merge(y: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`cross_scan` followed by a sum over directions.

    Args:
        y (Tensor): (B, 4, C, L) outputs of the four scans, L = height * width.
        height (int): Height of the feature map the scans came from.
        width (int): Its width.

    Returns:
        Tensor: (B, C, L) in row-major order, each pixel the sum of its four direction outputs.
    """
    batch, _, channels, length = y.shape
    forward = y[:, :2] + y[:, 2:].flip(-1)  # un-reverse directions 2 and 3
    col = forward[:, 1].reshape(batch, channels, width, height).transpose(2, 3)
    return forward[:, 0] + col.reshape(batch, channels, length)


def _scan_param(p: torch.Tensor) -> torch.Tensor:
    """A, D and the delta bias for the scan: float32 (half-precision weights widened, as the
    reference), or float64 for a float64 module, whose scan runs in float64."""
    return p if p.dtype == torch.float64 else p.float()


@MODELS.register_module()
class SS2D(nn.Module):
    """Four-direction selective scan over a 2-D feature map.

    Args:
        embed_dims (int): Width C of the block this operator serves; ``d_inner = ssm_ratio * C``
            and ``dt_rank = ceil(C / 16)`` derive from it.
        in_channels (int, optional): Input width, if it differs from ``embed_dims`` (the CTM's
            shared operator reads all T tasks, T*C channels). Defaults to ``embed_dims``.
        d_state (int): SSM state size N. Defaults to 16.
        ssm_ratio (int): Expansion factor alpha. Defaults to 2.
        dt_rank (int | str): Rank of the low-rank delta projection, or ``'auto'`` for
            ``ceil(embed_dims / 16)``. Defaults to 'auto'.
        d_conv (int): Depthwise convolution kernel size. Defaults to 3.
        gated (bool): Build the gated variant (SiLU(z) gate and ``out_proj``). Defaults to True.
        dt_min (float): Lower end of the log-uniform initial step size. Defaults to 0.001.
        dt_max (float): Upper end of the log-uniform initial step size. Defaults to 0.1.
        dt_init_floor (float): Floor of the initial step size. Defaults to 1e-4.

    Shape:
        Input (B, H, W, in_channels) NHWC; output (B, H, W, embed_dims) if gated else
        (B, H, W, d_inner).
    """

    def __init__(self,
                 embed_dims: int,
                 in_channels: Optional[int] = None,
                 d_state: int = 16,
                 ssm_ratio: int = 2,
                 dt_rank='auto',
                 d_conv: int = 3,
                 gated: bool = True,
                 dt_min: float = 0.001,
                 dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4) -> None:
        super().__init__()
        if int(ssm_ratio) != ssm_ratio:
            raise ValueError(f'ssm_ratio must be an integer, got {ssm_ratio}')
        in_channels = in_channels or embed_dims
        self.embed_dims = embed_dims
        self.d_state = d_state
        self.d_inner = int(ssm_ratio * embed_dims)
        self.dt_rank = math.ceil(embed_dims / 16) if dt_rank == 'auto' else int(dt_rank)
        self.gated = gated
        d_inner, k = self.d_inner, NUM_DIRECTIONS

        # Raw parameters first, then submodules: this is also the reference state_dict order.
        self.x_proj_weight = nn.Parameter(torch.empty(k, self.dt_rank + 2 * d_state, d_inner))
        self.dt_projs_weight = nn.Parameter(torch.empty(k, d_inner, self.dt_rank))
        self.dt_projs_bias = nn.Parameter(torch.empty(k, d_inner))
        self.A_logs = nn.Parameter(torch.empty(k * d_inner, d_state))
        self.Ds = nn.Parameter(torch.empty(k * d_inner))

        self.in_proj = nn.Linear(in_channels, d_inner * (2 if gated else 1), bias=False)
        self.conv2d = nn.Conv2d(
            d_inner, d_inner, kernel_size=d_conv, padding=(d_conv - 1) // 2, groups=d_inner)
        self.act = nn.SiLU()
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, embed_dims, bias=False) if gated else None
        self.reset_ssm_parameters(dt_min, dt_max, dt_init_floor)

    @torch.no_grad()
    def reset_ssm_parameters(self,
                             dt_min: float = 0.001,
                             dt_max: float = 0.1,
                             dt_init_floor: float = 1e-4) -> None:
        """Initialise the SSM parameters as Mamba/VMamba do (docs/differences.md)."""
        # x_proj: one nn.Linear(d_inner, dt_rank + 2N) default init per direction.
        for weight in self.x_proj_weight:
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        # dt_proj weight: U(-dt_rank^-0.5, dt_rank^-0.5).
        bound = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_projs_weight, -bound, bound)
        # dt bias: softplus(bias) log-uniform in [dt_min, dt_max], stored as inverse softplus.
        dt = torch.exp(
            torch.rand_like(self.dt_projs_bias) * (math.log(dt_max) - math.log(dt_min)) +
            math.log(dt_min)).clamp(min=dt_init_floor)
        self.dt_projs_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        # S4D-real: A[d, n] = -(n + 1), stored as log.
        n = torch.arange(1, self.d_state + 1, dtype=torch.float32)
        self.A_logs.copy_(torch.log(n).expand_as(self.A_logs))
        self.Ds.fill_(1.0)

    def scan(self, u: torch.Tensor, source: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Run the four directional selective scans and merge them.

        Args:
            u (Tensor): (B, d_inner, H, W) scanned input.
            source (Tensor, optional): (B, d_inner, H, W) map that delta, B and C are projected
                from; ``u`` itself when None (MTMamba++'s cross-task SS2D passes a shared map).

        Returns:
            Tensor: (B, H, W, d_inner) after ``out_norm``.
        """
        batch, d_inner, height, width = u.shape
        length = height * width
        xs = cross_scan(u)
        src = xs if source is None else cross_scan(source)
        x_dbl = torch.einsum('bkdl,kcd->bkcl', src, self.x_proj_weight)
        dts, b_s, c_s = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum('bkrl,kdr->bkdl', dts, self.dt_projs_weight)
        y = selective_scan_fn(
            xs.reshape(batch, -1, length),
            dts.reshape(batch, -1, length),
            -torch.exp(_scan_param(self.A_logs)),
            b_s.contiguous(),
            c_s.contiguous(),
            _scan_param(self.Ds),
            delta_bias=_scan_param(self.dt_projs_bias).flatten(),
            delta_softplus=True,
        ).reshape(batch, NUM_DIRECTIONS, d_inner, length)
        y = cross_merge(y, height, width)
        y = y.transpose(1, 2).reshape(batch, height, width, d_inner)
        return self.out_norm(y)

    def _conv_branch(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, d_inner) -> depthwise conv + SiLU -> (B, d_inner, H, W)."""
        return self.act(self.conv2d(x.permute(0, 3, 1, 2).contiguous()))

    def split_input(self, x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``in_proj`` followed by the split into the main branch and the gate (or None)."""
        xz = self.in_proj(x)
        if not self.gated:
            return xz, None
        return xz.chunk(2, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C_in) -> (B, H, W, C) if gated, else (B, H, W, d_inner)."""
        x, z = self.split_input(x)
        y = self.scan(self._conv_branch(x))
        if not self.gated:
            return y
        return self.out_proj(y * F.silu(z))
