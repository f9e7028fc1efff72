"""BrainXpert: helper package for an honest course in deep learning for brain MRI.

Modules are imported lazily (``from brainxpert_utils import data``-style imports are cheap):
importing the package does not import TensorFlow.
"""

__version__ = "0.1.0"
