"""asr_kd: Kaldi-style knowledge distillation of speech acoustic models.

A layered library: every import points to a lower layer. The layers are the import-linter contract
``layers`` in pyproject.toml (enforced by tests/test_architecture.py), drawn with their numbers in
README.md's "Layout"; that test also checks the drawing and each package's "Layer N" against the
contract.
"""

__version__ = "0.1.0"
