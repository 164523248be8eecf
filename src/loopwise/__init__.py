"""loopwise: tune, ship, watch and correct text classifiers with people in the loop."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("loopwise")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
