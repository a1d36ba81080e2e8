"""tinylarge: integrate TinyML devices with LargeML edge/cloud models over 6G networks.

The public surface is kept small; reach into the layer packages for the rest:
``tinylarge.data``, ``tinylarge.models``, ``tinylarge.sim``, ``tinylarge.report``,
``tinylarge.config``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
