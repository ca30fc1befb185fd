"""Online prediction service: BentoML app, champion loading and hot reload, prediction logging."""
