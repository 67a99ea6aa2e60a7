"""carbonhub: a personal carbon account hub."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("carbonhub")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

# The plugin API version. Plugins declare ``CARBONHUB_API = "MAJOR.MINOR"``; the
# major must equal ours and the minor must not exceed ours.
HUB_API_VERSION = (1, 0)
