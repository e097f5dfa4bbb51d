"""Which feature maps a generator exposes: derived from the network, never typed in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureMap:
    """One style-modulated conv's output: ``[N, channels, resolution, resolution]``."""

    name: str        # NVIDIA module path below ``synthesis``, e.g. "b8.conv0"
    resolution: int
    channels: int


@dataclass(frozen=True)
class FeatureSpec:
    """The maps ``synthesis(ws, return_features=True)`` returns, in the same order."""

    maps: tuple[FeatureMap, ...]

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
        return [{"name": m.name, "resolution": m.resolution, "channels": m.channels} for m in self.maps]

    @classmethod
    def from_dict(cls, items: list[dict]) -> "FeatureSpec":
        return cls(tuple(FeatureMap(str(d["name"]), int(d["resolution"]), int(d["channels"])) for d in items))
