from interp.patching.engine.core import *  # noqa: F401,F403  (temporary; split next)
from interp.patching.engine.core import plan_passes  # noqa: F401
