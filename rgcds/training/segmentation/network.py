"""The small 3D U-Net (torch, imported inside :func:`build_unet`)."""

from __future__ import annotations

from typing import Any


def build_unet(in_channels: int = 4, n_classes: int = 4, base: int = 16, levels: int = 4) -> Any:
    """A small 3D U-Net: ``levels`` resolutions, ``base * 2**i`` channels, instance norm."""
    import torch
    from torch import nn

    def block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.InstanceNorm3d(cout, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(cout, cout, 3, padding=1, bias=False),
            nn.InstanceNorm3d(cout, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
        )

    class UNet3D(nn.Module):  # type: ignore[misc,unused-ignore]
        def __init__(self) -> None:
            super().__init__()
            widths = [min(base * 2**i, 320) for i in range(levels)]
            self.down = nn.ModuleList(
                [block(in_channels, widths[0])]
                + [block(widths[i - 1], widths[i], stride=2) for i in range(1, levels)]
            )
            self.up = nn.ModuleList(
                [nn.ConvTranspose3d(widths[i], widths[i - 1], 2, stride=2)
                 for i in range(levels - 1, 0, -1)]
            )
            self.dec = nn.ModuleList(
                [block(2 * widths[i - 1], widths[i - 1]) for i in range(levels - 1, 0, -1)]
            )
            self.head = nn.Conv3d(widths[0], n_classes, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for layer in self.down:
                x = layer(x)
                skips.append(x)
            skips.pop()
            for up, dec in zip(self.up, self.dec, strict=True):
                x = dec(torch.cat([skips.pop(), up(x)], dim=1))
            out: torch.Tensor = self.head(x)
            return out

    return UNet3D()
