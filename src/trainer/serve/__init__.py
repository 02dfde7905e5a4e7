"""`python -m trainer.serve`: a small inference server for remote previews (and for trying a
trained model), speaking OpenAI-compatible chat completions and the seed system's /generate."""
