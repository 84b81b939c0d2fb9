"""The Spark engine: ingestion into Parquet, features, MLlib ALS and batch scoring (pyspark is imported lazily)."""
