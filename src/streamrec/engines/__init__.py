"""Compute engines behind the training-engine seam: the embedded one lives in features/, models/, training/; Spark here."""
