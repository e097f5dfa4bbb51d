"""Labels: what they mean (the spec), how they are stored, and how foreign formats become them.

Every stage from the interpreter on reads and writes labels through this
package; it imports only ``datasetgan.core``, so any stage may import it.

- ``spec``: ``LabelSpec``, ``load_label_spec``, ``save_label_spec``, ``IGNORE``.
- ``masks``: label maps (``read_label_map``, ``write_label_map``).
- ``keypoints``: keypoint files (``read_keypoints``, ``write_keypoints``).
- ``matching``: pairing samples or images with label files by stem.
- ``items``: ``Item``, one labelled image.
- ``weights``: class-frequency loss weights.
- Foreign formats, one module each (import them from there): ``cvat``
  (``labelmap.txt``), ``labelme``, ``labelstudio``, ``helen``; ``cli`` has
  ``import-helen``, ``import-labelme`` and ``import-labelstudio``.
"""

from datasetgan.labels.items import Item
from datasetgan.labels.keypoints import read_keypoints, write_keypoints
from datasetgan.labels.masks import DEFAULT_MAX_OFF_FRACTION, DEFAULT_TOLERANCE, read_label_map, write_label_map
from datasetgan.labels.matching import (IMAGE_SUFFIXES, KEYPOINT_SUFFIXES, LABEL_SUFFIXES, MASK_SUFFIXES,
                                        match_images_labels, match_labels)
from datasetgan.labels.spec import IGNORE, LabelSpec, load_label_spec, save_label_spec
from datasetgan.labels.weights import frequency_weights_from_counts

__all__ = [
    "DEFAULT_MAX_OFF_FRACTION", "DEFAULT_TOLERANCE", "IGNORE", "IMAGE_SUFFIXES", "KEYPOINT_SUFFIXES",
    "LABEL_SUFFIXES", "MASK_SUFFIXES", "Item", "LabelSpec", "frequency_weights_from_counts", "load_label_spec",
    "match_images_labels", "match_labels", "read_keypoints", "read_label_map", "save_label_spec",
    "write_keypoints", "write_label_map",
]
