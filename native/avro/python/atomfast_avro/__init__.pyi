from ._native import Encoder as Encoder, __version__ as __version__

__all__ = ["Encoder", "__version__"]
