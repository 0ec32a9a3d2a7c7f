"""Storage backends, one package per engine; each exposes ``StorageAdapter``."""
