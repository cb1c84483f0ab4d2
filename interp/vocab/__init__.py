from interp.vocab.projection import *  # noqa: F401,F403  (temporary; split next)
from interp.vocab.projection import __all__  # noqa: F401
