"""trainer: a Hydra-composed experiment framework for fine-tuning causal language models.

Importing the package is cheap on purpose: torch and transformers load only when a run starts.
"""

__version__ = "0.1.0"
