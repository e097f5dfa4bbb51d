"""Which generator taps make up a pixel's feature vector, and how they are upsampled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from datasetgan.core.errors import UserError
from datasetgan.generator.features import IMAGE_TAP

UpsampleMode = Literal["bilinear", "nearest"]


@dataclass(frozen=True)
class FeatureConfig:
    """``layers``: tap names (``G.feature_spec`` names, or resolutions such as
    ``"64"`` meaning every tap at 64x64, or ``"all"``); empty = every tap, as the
    reference. ``"img"`` adds the generated image itself: a pixel's own colour,
    sharp where the 64 px convolutions carry only a few channels (``"all,img"``).
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
    image: bool = False    # the image is the last tap (after the maps that ``indices`` pick)

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

    def pick(self, feature_maps: Sequence, image=None) -> list:
        """The selected maps out of the generator's full list, then ``image`` (the
        generated image, ``G.synthesis``'s first output) if the selection takes it."""
        picked = [feature_maps[i] for i in self.indices]
        if self.image:
            if image is None:
                raise ValueError(f"this feature selection takes the generated image ({IMAGE_TAP!r}); "
                                 "pass it to pick()")
            picked.append(image)
        return picked

    def to_dict(self) -> dict:
        return {"layers": list(self.names), "mode": self.mode}


def select_features(feature_spec, config: FeatureConfig, flag: str = "--layers") -> SelectedFeatures:
    """Resolve ``config`` against a generator's ``FeatureSpec`` (a sequence of
    ``FeatureMap(name, resolution, channels)``, and its ``image``); unknown names
    are a ``UserError``."""
    maps = list(feature_spec)
    if not maps:
        raise UserError("the generator exposes no feature maps")
    if config.mode not in ("bilinear", "nearest"):
        raise UserError(f"--upsample {config.mode!r}: expected bilinear or nearest")
    names = {m.name: i for i, m in enumerate(maps)}
    chosen_set: set[int] = set()
    wants_image = IMAGE_TAP in config.layers
    image = getattr(feature_spec, "image", None) if wants_image else None
    if wants_image and image is None:
        raise UserError(f"{flag}: this generator does not offer its image as a feature tap ({IMAGE_TAP!r})")
    for layer in config.layers or ("all",):
        if layer == "all":
            chosen_set.update(range(len(maps)))
        elif layer == IMAGE_TAP:
            continue
        elif layer in names:
            chosen_set.add(names[layer])
        elif layer.isdigit() and any(m.resolution == int(layer) for m in maps):
            chosen_set.update(i for i, m in enumerate(maps) if m.resolution == int(layer))
        else:
            known = ", ".join(m.name for m in maps)
            raise UserError(f"{flag}: no feature map {layer!r} in this generator (known: {known}, "
                            f"a resolution, 'all' or {IMAGE_TAP!r})")
    chosen = sorted(chosen_set)
    taps = [maps[i] for i in chosen] + ([image] if image is not None else [])
    return SelectedFeatures(
        indices=tuple(chosen),
        names=tuple(m.name for m in taps),
        resolutions=tuple(int(m.resolution) for m in taps),
        channels=tuple(int(m.channels) for m in taps),
        mode=config.mode,
        image=image is not None,
    )
