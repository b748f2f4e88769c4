"""The STOP recipe: training, search, metrics, inference."""
