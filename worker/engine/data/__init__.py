"""Data sets for the engine: every data kind becomes a :class:`Dataset` of tensors."""

from optimlab.worker.engine.data.dataset import Dataset, DatasetSource
from optimlab.worker.engine.data.loading import load_dataset
from optimlab.worker.engine.data.preparation import Split, prepare_split

__all__ = ["Dataset", "DatasetSource", "Split", "load_dataset", "prepare_split"]
