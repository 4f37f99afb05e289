"""Training machinery: trainer, pipeline, datamanager and image cache, cameras per step, ranks."""
