"""Data stage: the generator, CSV ingest with quarantine, and bulk loading into the store."""
