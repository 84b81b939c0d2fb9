"""streamrec: a production recommendation system for a video-streaming service."""

__version__ = "0.1.0"
