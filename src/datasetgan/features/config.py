"""Which generator taps make up a pixel's feature vector, and how they are upsampled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from datasetgan.core.errors import UserError

UpsampleMode = Literal["bilinear", "nearest"]


@dataclass(frozen=True)
class FeatureConfig:
    """``layers``: tap names (``G.feature_spec`` names, or resolutions such as
    ``"64"`` meaning every tap at 64x64); empty = every tap, as the reference.
    ``mode``: how each map is brought to the label resolution (the reference
    release uses bilinear, ``align_corners=False``)."""

    layers: tuple[str, ...] = ()
    mode: UpsampleMode = "bilinear"


@dataclass(frozen=True)
class SelectedFeatures:
    """The taps that form a pixel's feature vector, in generator order.

    ``indices`` index the list that ``G.synthesis(..., return_features=True)``
    returns; ``offsets[i]`` is where tap ``i``'s channels start in the vector.
    """

    indices: tuple[int, ...]
    names: tuple[str, ...]
    resolutions: tuple[int, ...]
    channels: tuple[int, ...]
    mode: UpsampleMode

    @property
    def width(self) -> int:
        """Length of one pixel's feature vector."""
        return sum(self.channels)

    @property
    def offsets(self) -> tuple[int, ...]:
        out, total = [], 0
        for c in self.channels:
            out.append(total)
            total += c
        return tuple(out)

    def pick(self, feature_maps: Sequence) -> list:
        """The selected maps out of the generator's full list."""
        return [feature_maps[i] for i in self.indices]

    def to_dict(self) -> dict:
        return {"layers": list(self.names), "mode": self.mode}


def select_features(feature_spec, config: FeatureConfig, flag: str = "--layers") -> SelectedFeatures:
    """Resolve ``config`` against a generator's ``FeatureSpec`` (a sequence of
    ``FeatureMap(name, resolution, channels)``); unknown names are a ``UserError``."""
    maps = list(feature_spec)
    if not maps:
        raise UserError("the generator exposes no feature maps")
    if config.mode not in ("bilinear", "nearest"):
        raise UserError(f"--upsample {config.mode!r}: expected bilinear or nearest")
    if not config.layers:
        chosen = list(range(len(maps)))
    else:
        names = {m.name: i for i, m in enumerate(maps)}
        chosen_set: set[int] = set()
        for layer in config.layers:
            if layer in names:
                chosen_set.add(names[layer])
            elif layer.isdigit() and any(m.resolution == int(layer) for m in maps):
                chosen_set.update(i for i, m in enumerate(maps) if m.resolution == int(layer))
            else:
                known = ", ".join(m.name for m in maps)
                raise UserError(f"{flag}: no feature map {layer!r} in this generator (known: {known}, "
                                "or a resolution)")
        chosen = sorted(chosen_set)
    return SelectedFeatures(
        indices=tuple(chosen),
        names=tuple(maps[i].name for i in chosen),
        resolutions=tuple(int(maps[i].resolution) for i in chosen),
        channels=tuple(int(maps[i].channels) for i in chosen),
        mode=config.mode,
    )
