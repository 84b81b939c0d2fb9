"""Training: where the interactions come from, the split, the comparison, and the registered winner."""

from streamrec.training.sources import interactions_from_csv, interactions_from_store
from streamrec.training.train import TrainResult, make_split, train_and_register

__all__ = ["TrainResult", "interactions_from_csv", "interactions_from_store", "make_split", "train_and_register"]
