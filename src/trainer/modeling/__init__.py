"""Modeling: build or load the model and its tokenizer."""
