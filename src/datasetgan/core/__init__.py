"""Pieces shared by every stage, one module each: ``errors`` (the errors users see), ``fileio``
(atomic files, JSON), ``config`` and ``options`` (config files and flags), ``training_state``
(resumable training), ``weights``, ``images``, ``devices``, ``progress``, ``signals``, ``seeds``,
``report``, ``memory``.

Only the errors are exported here: importing them must stay cheap (the ``datasetgan``
command imports this package before it knows what it will run), and the other modules
import torch, PIL or tqdm.
"""

from datasetgan.core.errors import CheckpointError, LabelError, UserError, require_file

__all__ = ["CheckpointError", "LabelError", "UserError", "require_file"]
