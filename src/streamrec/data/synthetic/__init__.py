"""The synthetic streaming world: titles, users and events drawn from a ground-truth taste model."""

from streamrec.data.synthetic.config import SIZE_PRESETS, WorldConfig
from streamrec.data.synthetic.taste import GroundTruth, Response, ResponseParams
from streamrec.data.synthetic.world import generate_world

__all__ = ["SIZE_PRESETS", "GroundTruth", "Response", "ResponseParams", "WorldConfig", "generate_world"]
