"""Which feature maps a generator exposes: derived from the network, never typed in."""

from __future__ import annotations

from dataclasses import dataclass


IMAGE_TAP = "img"   # the name that selects the generated image as a feature tap


@dataclass(frozen=True)
class FeatureMap:
    """One style-modulated conv's output: ``[N, channels, resolution, resolution]``."""

    name: str        # NVIDIA module path below ``synthesis``, e.g. "b8.conv0"
    resolution: int
    channels: int


@dataclass(frozen=True)
class FeatureSpec:
    """The maps ``synthesis(ws, return_features=True)`` returns, in the same order.

    ``image``: the generated image itself (``"img"``), which an interpreter may take as a
    further tap; it is not one of ``maps``, so iterating, ``len`` and ``total_channels``
    see the convolutions only.
    """

    maps: tuple[FeatureMap, ...]
    image: FeatureMap | None = None

    @property
    def total_channels(self) -> int:
        """Length of the per-pixel feature vector when all maps are concatenated."""
        return sum(m.channels for m in self.maps)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.maps)

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(m.resolution for m in self.maps)

    @property
    def max_resolution(self) -> int:
        return max(m.resolution for m in self.maps)

    def offsets(self) -> tuple[int, ...]:
        """Start of each map's channels in the concatenated feature vector."""
        out, start = [], 0
        for m in self.maps:
            out.append(start)
            start += m.channels
        return tuple(out)

    def __len__(self) -> int:
        return len(self.maps)

    def __iter__(self):
        return iter(self.maps)

    def __getitem__(self, index: int) -> FeatureMap:
        return self.maps[index]

    def to_dict(self) -> list[dict]:
        """The maps, then the image tap (if any) as one more entry named ``"img"``."""
        taps = self.maps + ((self.image,) if self.image is not None else ())
        return [{"name": m.name, "resolution": m.resolution, "channels": m.channels} for m in taps]

    @classmethod
    def from_dict(cls, items: list[dict]) -> "FeatureSpec":
        taps = [FeatureMap(str(d["name"]), int(d["resolution"]), int(d["channels"])) for d in items]
        image = next((m for m in taps if m.name == IMAGE_TAP), None)
        return cls(tuple(m for m in taps if m.name != IMAGE_TAP), image=image)
